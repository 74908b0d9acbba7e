/**
 * @module policy/latency
 * Answers from the up pool with the lowest round-trip time from the client's vantage region
 * (Route 53 latency records, NS1 "up" + latency-based filters), with hysteresis against flapping.
 *
 * Vantage: the client's country code if `countryVantages` maps it, else its continent code, else
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

import { allOfPool, sharedTally, upOfPool } from './common.ts'
import type { Endpoint, NamedStep, PolicyContext, Pool, StepConfig } from './types.ts'

export type LatencyConfig = Extract<StepConfig, { kind: 'latency' }>

export function latencyStep(config: LatencyConfig): NamedStep {
  // Pure despite the hysteresis memory: within one health view the memory of a vantage settles at
  // its first decision (the same RTTs give the same keep/switch verdict every time after), and the
  // decision cache is dropped whenever the view changes, so cached answers never disagree with it.
  return new Latency(config)
}

/** How a decision was reached, for the trace line. */
const HOW_FASTEST = 0
const HOW_KEEP = 1
const HOW_SWITCH = 2
const HOW_REPLACE = 3
const HOW_ABSENT = 4
const HOW_DEGRADED = 5

const EMPTY_TABLE: ReadonlyMap<string, number> = new Map()

/** The step is its own NamedStep (no wrapper object and closure per service). */
class Latency implements NamedStep {
  readonly name = 'latency'
  readonly pure = true
  readonly #countries = new Map<string, string>()
  readonly #continents = new Map<string, string>()
  readonly #defaultVantage: string
  readonly #table: ReadonlyMap<string, ReadonlyMap<string, number>>
  readonly #keep: number
  /** Pool name last answered with, per vantage. */
  readonly #current = new Map<string, string>()
  #how = HOW_FASTEST
  #other: Pool | undefined
  #otherName = ''

  constructor(config: LatencyConfig) {
    for (const [code, vantage] of config.countryVantages) this.#countries.set(code.toUpperCase(), vantage)
    for (const [code, vantage] of config.continentVantages) this.#continents.set(code.toUpperCase(), vantage)
    this.#defaultVantage = config.defaultVantage
    this.#table = config.table
    const h = config.hysteresis
    this.#keep = 1 - Math.max(0, Math.min(1, h))
  }

  run(candidates: readonly Endpoint[], ctx: PolicyContext): readonly Endpoint[] {
    if (candidates.length === 0) return candidates
    const tally = sharedTally
    tally.load(candidates, ctx.health)
    const vantage = this.#vantage(ctx)
    const table = this.#table.get(vantage) ?? EMPTY_TABLE

    if (tally.upTotal === 0) {
      const fastest = this.#fastest(ctx, vantage, table, false, true)!
      const all = allOfPool(fastest, candidates)
      ctx.trace?.note(
        `latency: vantage ${vantage}; no candidate up, passing fastest ${fastest.name} (${all.length}) on`,
      )
      return all
    }

    let pool = this.#fastest(ctx, vantage, table, false, false)
    if (pool !== undefined) {
      pool = this.#hold(ctx, vantage, table, pool)
    } else {
      pool = this.#fastest(ctx, vantage, table, true, false)!
      this.#how = HOW_DEGRADED
    }
    const out = upOfPool(pool, candidates, ctx.health)
    if (ctx.trace !== undefined) {
      const rtt = (p: Pool) => {
        const ms = this.#rtt(ctx, vantage, table, p)
        return ms === undefined ? 'no figure' : `${ms} ms`
      }
      const other = this.#other
      let how: string
      switch (this.#how) {
        case HOW_KEEP:
          how = `keeping ${pool.name} (${rtt(pool)}) over ${other!.name} (${rtt(other!)}) within hysteresis`
          break
        case HOW_SWITCH:
          how = `switching from ${other!.name} (${rtt(other!)}) to ${pool.name} (${rtt(pool)})`
          break
        case HOW_REPLACE:
          how = `${this.#otherName} is down or unmeasured; switching to ${pool.name} (${rtt(pool)})`
          break
        case HOW_ABSENT:
          how = `remembered ${this.#otherName} is not a candidate; fastest ${pool.name} (${rtt(pool)})`
          break
        case HOW_DEGRADED:
          how = `no pool has enough members up; fastest degraded ${pool.name} (${rtt(pool)})`
          break
        default:
          how = `fastest ${pool.name} (${rtt(pool)})`
      }
      ctx.trace.note(`latency: vantage ${vantage}; ${how}, ${out.length} up`)
    }
    return out
  }

  /** The client's vantage region; looks up geo data only when some code maps to a vantage. */
  #vantage(ctx: PolicyContext): string {
    if (this.#countries.size === 0 && this.#continents.size === 0) return this.#defaultVantage
    const geo = ctx.geo()
    if (geo === undefined) {
      ctx.scope(ctx.client.sourcePrefix)
      return this.#defaultVantage
    }
    ctx.scope(geo.prefixLength)
    let vantage: string | undefined
    if (geo.country !== undefined) vantage = this.#countries.get(geo.country)
    if (vantage === undefined && geo.continent !== undefined) vantage = this.#continents.get(geo.continent)
    return vantage ?? this.#defaultVantage
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
    const tally = sharedTally
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

  /**
   * Applies hysteresis between the remembered pool and the fastest up one, updating the memory;
   * sets `#how` (and `#other` / `#otherName`, the pool it was compared with) for the trace.
   */
  #hold(ctx: PolicyContext, vantage: string, table: ReadonlyMap<string, number>, fastest: Pool): Pool {
    const tally = sharedTally
    const currentName = this.#current.get(vantage)
    this.#how = HOW_FASTEST
    if (currentName === fastest.name) return fastest
    if (currentName === undefined) {
      this.#current.set(vantage, fastest.name)
      return fastest
    }
    this.#otherName = currentName
    let current: Pool | undefined
    for (let i = 0; i < tally.pools.length; i++) {
      if (tally.pools[i]!.name === currentName) {
        current = tally.pools[i]
        break
      }
    }
    if (current === undefined) {
      this.#how = HOW_ABSENT
      return fastest
    }
    const currentRtt = this.#rtt(ctx, vantage, table, current)
    if (!tally.isUp(current, false) || currentRtt === undefined) {
      this.#current.set(vantage, fastest.name)
      this.#how = HOW_REPLACE
      return fastest
    }
    // Here `current` is up with a figure, so the fastest up pool has a figure too.
    const fastestRtt = this.#rtt(ctx, vantage, table, fastest)
    if (fastestRtt !== undefined && fastestRtt < currentRtt * this.#keep) {
      this.#current.set(vantage, fastest.name)
      this.#how = HOW_SWITCH
      this.#other = current
      return fastest
    }
    this.#how = HOW_KEEP
    this.#other = fastest
    return current
  }
}
