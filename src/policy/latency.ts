/**
 * @module policy/latency
 * Answers from the up pool with the lowest round-trip time from the client's vantage region
 * (Route 53 latency records, NS1 "up" + latency-based filters), with hysteresis against flapping.
 *
 * Vantage: the client's country code if `vantages` maps it, else its continent code, else
 * `defaultVantage` (one map holds both kinds of code, so a country code that equals a continent
 * code, such as AS or NA, is read as the country first). A pool's RTT is the measured
 * `ctx.health.rtt(pool, vantage)`, else the static `table` figure; pools without either rank last,
 * in candidate order.
 *
 * Hysteresis: the step remembers, per vantage, the pool it answered with. A faster challenger
 * replaces it only when its RTT is below current × (1 − hysteresis), or when the current pool is
 * down (fewer than `upThreshold` members up) or has no figure. When the remembered pool is not
 * among this decision's candidates (a previous step filtered it), the fastest up pool answers and
 * the memory is left alone. When no pool reaches its threshold, the fastest pool with any up member
 * answers (memory untouched); when no candidate is up, all candidates of the fastest pool are
 * returned.
 *
 * ECS scope: the geo database network's prefix length when a geo lookup chose the vantage (the
 * full source prefix when the database knows nothing of the client); none when `vantages` is empty.
 */

import { allOfPool, PoolTally, upOfPool } from './common.ts'
import type { Endpoint, NamedStep, PolicyContext, Pool, StepConfig } from './types.ts'

export type LatencyConfig = Extract<StepConfig, { kind: 'latency' }>

export function latencyStep(config: LatencyConfig): NamedStep {
  const latency = new Latency(config)
  return { name: 'latency', run: (candidates, ctx) => latency.run(candidates, ctx) }
}

const EMPTY_TABLE: ReadonlyMap<string, number> = new Map()

class Latency {
  readonly #vantages = new Map<string, string>()
  readonly #defaultVantage: string
  readonly #table: ReadonlyMap<string, ReadonlyMap<string, number>>
  readonly #keep: number
  /** Pool name last answered with, per vantage. */
  readonly #current = new Map<string, string>()
  readonly #tally = new PoolTally()

  constructor(config: LatencyConfig) {
    for (const [code, vantage] of config.vantages) this.#vantages.set(code.toUpperCase(), vantage)
    this.#defaultVantage = config.defaultVantage
    this.#table = config.table
    const h = config.hysteresis
    this.#keep = 1 - Math.max(0, Math.min(1, h))
  }

  run(candidates: readonly Endpoint[], ctx: PolicyContext): readonly Endpoint[] {
    if (candidates.length === 0) return candidates
    const tally = this.#tally
    tally.load(candidates, ctx.health)
    const vantage = this.#vantage(ctx)
    const table = this.#table.get(vantage) ?? EMPTY_TABLE

    if (tally.upTotal === 0) {
      const fastest = this.#fastest(ctx, vantage, table, false, true)!
      const all = allOfPool(fastest, candidates)
      ctx.trace?.note(`latency: no candidate up; passing fastest pool ${fastest.name}'s ${all.length} on`)
      return all
    }

    let pool = this.#fastest(ctx, vantage, table, false, false)
    if (pool !== undefined) {
      pool = this.#hold(ctx, vantage, table, pool)
    } else {
      pool = this.#fastest(ctx, vantage, table, true, false)!
      ctx.trace?.note(`latency: no pool has enough members up; degraded ${pool.name}`)
    }
    const out = upOfPool(pool, candidates, ctx.health)
    ctx.trace?.note(`latency: answering from pool ${pool.name} with ${out.length} up`)
    return out
  }

  /** The client's vantage region; looks up geo data only when some code maps to a vantage. */
  #vantage(ctx: PolicyContext): string {
    if (this.#vantages.size === 0) return this.#defaultVantage
    const geo = ctx.geo()
    if (geo === undefined) {
      ctx.scope(ctx.client.sourcePrefix)
      ctx.trace?.note(`latency: no geo data; default vantage ${this.#defaultVantage}`)
      return this.#defaultVantage
    }
    ctx.scope(geo.prefixLength)
    let vantage: string | undefined
    if (geo.country !== undefined) vantage = this.#vantages.get(geo.country)
    if (vantage === undefined && geo.continent !== undefined) vantage = this.#vantages.get(geo.continent)
    vantage ??= this.#defaultVantage
    ctx.trace?.note(`latency: country ${geo.country ?? '?'} continent ${geo.continent ?? '?'}: vantage ${vantage}`)
    return vantage
  }

  #rtt(ctx: PolicyContext, vantage: string, table: ReadonlyMap<string, number>, pool: Pool): number | undefined {
    return ctx.health.rtt(pool, vantage) ?? table.get(pool.name)
  }

  /**
   * Lowest-RTT candidate pool that is up (or any, with `anyHealth`); pools without a figure rank
   * last in candidate order, and ties keep candidate order.
   */
  #fastest(
    ctx: PolicyContext,
    vantage: string,
    table: ReadonlyMap<string, number>,
    relaxed: boolean,
    anyHealth: boolean,
  ): Pool | undefined {
    const tally = this.#tally
    let best: Pool | undefined
    let bestRtt = Number.POSITIVE_INFINITY
    for (let i = 0; i < tally.pools.length; i++) {
      const pool = tally.pools[i]!
      if (!anyHealth && !tally.isUp(pool, relaxed)) continue
      const rtt = this.#rtt(ctx, vantage, table, pool) ?? Number.POSITIVE_INFINITY
      if (best === undefined || rtt < bestRtt) {
        best = pool
        bestRtt = rtt
      }
    }
    return best
  }

  /** Applies hysteresis between the remembered pool and the fastest up one, updating the memory. */
  #hold(ctx: PolicyContext, vantage: string, table: ReadonlyMap<string, number>, fastest: Pool): Pool {
    const tally = this.#tally
    const currentName = this.#current.get(vantage)
    if (currentName === fastest.name) return fastest
    if (currentName === undefined) {
      this.#current.set(vantage, fastest.name)
      ctx.trace?.note(`latency: ${fastest.name} is fastest from ${vantage}`)
      return fastest
    }
    let current: Pool | undefined
    for (let i = 0; i < tally.pools.length; i++) {
      if (tally.pools[i]!.name === currentName) {
        current = tally.pools[i]
        break
      }
    }
    if (current === undefined) {
      ctx.trace?.note(`latency: ${currentName} is not a candidate; ${fastest.name} is fastest (kept ${currentName})`)
      return fastest
    }
    const currentRtt = this.#rtt(ctx, vantage, table, current)
    const fastestRtt = this.#rtt(ctx, vantage, table, fastest)
    if (!tally.isUp(current, false) || currentRtt === undefined) {
      this.#current.set(vantage, fastest.name)
      ctx.trace?.note(
        `latency: ${currentName} is ${currentRtt === undefined ? 'unmeasured' : 'down'}; switching to ${fastest.name}`,
      )
      return fastest
    }
    // Here `current` is up with a figure, so the fastest up pool has a figure too.
    if (fastestRtt !== undefined && fastestRtt < currentRtt * this.#keep) {
      this.#current.set(vantage, fastest.name)
      ctx.trace?.note(`latency: switching from ${currentName} (${currentRtt} ms) to ${fastest.name} (${fastestRtt} ms)`)
      return fastest
    }
    ctx.trace?.note(
      `latency: keeping ${currentName} (${currentRtt} ms) over ${fastest.name} (${fastestRtt} ms) within hysteresis`,
    )
    return current
  }
}
