/**
 * @module policy/proximity
 * Answers from the nearest up pool to the client (Route 53 geoproximity, gdnsd's automatic
 * geoip distance ordering).
 *
 * The client's location is `ctx.geo()?.location` (the geo layer already falls back to the country
 * centroid). A pool's effective distance is the great-circle (haversine) distance in km times
 * `1 - bias/100`, with `bias` (-99..99, clamped) configured per pool name: a positive bias draws
 * clients from farther away, a negative one shrinks the pool's area. Pools without a location rank
 * after all located ones, in candidate order. Ties keep candidate order.
 *
 * The nearest up pool (at least `upThreshold` members up) answers with its up endpoints. When the
 * nearest pool is down and `spread` is set, the client is spread over the up pools by capacity
 * (rendezvous hash of its /24 or /56, as in the geo step) instead of all landing on the next
 * nearest; without `spread`, the next nearest up pool answers. With no known location, pools are
 * taken in candidate order. When no pool reaches its threshold the choice is repeated counting any
 * pool with an up member; when no candidate is up, all candidates of the nearest pool are returned.
 *
 * ECS scope: the geo database network's prefix length, or the full source prefix when the
 * database knows nothing of the client; plus the /24 or /56 when spreading.
 */

import { allOfPool, hashSubnet, sharedTally, spreadPick, subnetBits, upOfPool } from './common.ts'
import type { Endpoint, GeoPoint, NamedStep, PolicyContext, Pool, StepConfig } from './types.ts'

export type ProximityConfig = Extract<StepConfig, { kind: 'proximity' }>

export function proximityStep(config: ProximityConfig): NamedStep {
  return new Proximity(config)
}

/** How `#choose` found its pool: the nearest, by spreading, or the next nearest. */
const HOW_NEAREST = 0
const HOW_SPREAD = 1
const HOW_NEXT = 2

const EARTH_RADIUS_KM = 6371.0088
const RAD = Math.PI / 180

/** Great-circle distance in km. */
export function haversineKm(a: GeoPoint, b: GeoPoint): number {
  const dLat = (b.lat - a.lat) * RAD
  const dLon = (b.lon - a.lon) * RAD
  const s = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * RAD) * Math.cos(b.lat * RAD) * Math.sin(dLon / 2) ** 2
  return 2 * EARTH_RADIUS_KM * Math.asin(Math.min(1, Math.sqrt(s)))
}

/** The step is its own NamedStep (no wrapper object and closure per service). */
class Proximity implements NamedStep {
  readonly name = 'proximity'
  readonly pure = true
  /** Distance factor (1 - bias/100) per pool name. */
  readonly #factor = new Map<string, number>()
  readonly #spread: boolean
  #how = HOW_NEAREST
  #down: Pool | undefined

  constructor(config: ProximityConfig) {
    for (const [pool, bias] of config.bias) {
      const clamped = Math.max(-99, Math.min(99, bias))
      this.#factor.set(pool, 1 - clamped / 100)
    }
    this.#spread = config.spread
  }

  /** Effective distance of `pool` from `from`; Infinity when either location is unknown. */
  #distance(pool: Pool, from: GeoPoint | undefined): number {
    if (from === undefined || pool.location === undefined) return Number.POSITIVE_INFINITY
    return haversineKm(from, pool.location) * (this.#factor.get(pool.name) ?? 1)
  }

  run(candidates: readonly Endpoint[], ctx: PolicyContext): readonly Endpoint[] {
    if (candidates.length === 0) return candidates
    const tally = sharedTally
    tally.load(candidates, ctx.health)
    const geo = ctx.geo()
    ctx.scope(geo === undefined ? ctx.client.sourcePrefix : geo.prefixLength)
    const from = geo?.location

    if (tally.upTotal === 0) {
      const nearest = this.#nearest(from, false, true)!
      const all = allOfPool(nearest, candidates)
      ctx.trace?.note(
        `proximity: ${this.#where(from)}; no candidate up, passing nearest ${nearest.name} (${all.length}) on`,
      )
      return all
    }

    let relaxed = false
    let pool = this.#choose(from, ctx, false)
    if (pool === undefined) {
      relaxed = true
      pool = this.#choose(from, ctx, true)!
    }
    const out = upOfPool(pool, candidates, ctx.health)
    if (ctx.trace !== undefined) {
      let how: string
      if (from === undefined) how = 'first up pool in candidate order: '
      else if (this.#how === HOW_NEAREST) how = 'nearest '
      else
        how = `nearest ${this.#down!.name} down, ${this.#how === HOW_SPREAD ? 'spread by capacity to' : 'next nearest'} `
      const km = from === undefined ? '' : ` at ${this.#km(pool, from)} km`
      ctx.trace.note(
        `proximity: ${this.#where(from)}; ${how}${pool.name}${km} (${out.length} up${relaxed ? ', degraded' : ''})`,
      )
    }
    return out
  }

  #where(from: GeoPoint | undefined): string {
    return from === undefined ? 'client location unknown' : `client at ${from.lat.toFixed(2)},${from.lon.toFixed(2)}`
  }

  /** Nearest candidate pool (up ones only unless `anyHealth`); candidate order breaks ties. */
  #nearest(from: GeoPoint | undefined, relaxed: boolean, anyHealth: boolean): Pool | undefined {
    const tally = sharedTally
    let best: Pool | undefined
    let bestDistance = 0
    for (let i = 0; i < tally.pools.length; i++) {
      const pool = tally.pools[i]!
      if (!anyHealth && !tally.isUp(pool, relaxed)) continue
      const d = this.#distance(pool, from)
      if (best === undefined || d < bestDistance) {
        best = pool
        bestDistance = d
      }
    }
    return best
  }

  /**
   * The answering pool under one reading of "up" (threshold, or any member when `relaxed`); sets
   * `#how` (and `#down`, the nearest pool when it is down) for the trace.
   */
  #choose(from: GeoPoint | undefined, ctx: PolicyContext, relaxed: boolean): Pool | undefined {
    const nearestUp = this.#nearest(from, relaxed, false)
    if (nearestUp === undefined) return undefined
    const nearest = this.#nearest(from, relaxed, true)!
    this.#how = HOW_NEAREST
    if (nearest === nearestUp) return nearestUp
    this.#down = nearest
    if (this.#spread && from !== undefined) {
      const bits = subnetBits(ctx.client, 24, 56)
      const picked = spreadPick(sharedTally, relaxed, hashSubnet(ctx.client, bits))
      if (picked !== undefined) {
        ctx.scope(bits)
        this.#how = HOW_SPREAD
        return picked
      }
    }
    this.#how = HOW_NEXT
    return nearestUp
  }

  #km(pool: Pool, from: GeoPoint | undefined): string {
    const d = this.#distance(pool, from)
    return Number.isFinite(d) ? d.toFixed(0) : 'unknown'
  }
}
