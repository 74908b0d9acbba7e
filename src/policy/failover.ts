/**
 * @module policy/failover
 * Priority failover between groups of pools (gdnsd multifo/metafo, Route 53 failover records).
 * Groups are tried in order; the first group with an up pool (at least `upThreshold` members up)
 * answers with the up endpoints of all its up pools, in candidate order. Candidates from pools
 * that no group lists form a last, implicit group.
 *
 * Fail-open: when no group has an up pool, the step returns every candidate of the first group
 * that has any, down members included (gdnsd multifo returns all members when fewer than
 * `up_thresh` are up), and the chain's all-down handling decides from there.
 */

import { sharedTally } from './common.ts'
import type { Endpoint, NamedStep, PolicyContext, Pool, StepConfig } from './types.ts'

export type FailoverConfig = Extract<StepConfig, { kind: 'failover' }>

export function failoverStep(config: FailoverConfig): NamedStep {
  return new Failover(config.groups)
}

/** The step is its own NamedStep (no wrapper object and closure per service). */
class Failover implements NamedStep {
  readonly name = 'failover'
  readonly pure = true
  /** Group number per pool index; pools not listed (or beyond the table) are in the implicit last group. */
  readonly #groupOf: Int32Array
  readonly #implicit: number
  /** The configured groups, for trace lines. */
  readonly #groups: readonly (readonly Pool[])[]

  constructor(groups: readonly (readonly Pool[])[]) {
    let max = -1
    for (const group of groups) for (const pool of group) if (pool.index > max) max = pool.index
    this.#groupOf = new Int32Array(max + 1).fill(-1)
    groups.forEach((group, g) => {
      for (const pool of group) if (this.#groupOf[pool.index] === -1) this.#groupOf[pool.index] = g
    })
    this.#implicit = groups.length
    this.#groups = groups
  }

  /** Pool names of group `g` for trace lines: made only when a trace asks. */
  #label(g: number): string {
    const group = this.#groups[g]
    return group === undefined ? 'unlisted pools' : group.map((p) => p.name).join(',')
  }

  #group(pool: Pool): number {
    const g = pool.index < this.#groupOf.length ? this.#groupOf[pool.index]! : -1
    return g < 0 ? this.#implicit : g
  }

  run(candidates: readonly Endpoint[], ctx: PolicyContext): readonly Endpoint[] {
    if (candidates.length === 0) return candidates
    const tally = sharedTally
    tally.load(candidates, ctx.health)
    let answering = Number.MAX_SAFE_INTEGER
    let first = Number.MAX_SAFE_INTEGER
    for (let i = 0; i < tally.pools.length; i++) {
      const pool = tally.pools[i]!
      const g = this.#group(pool)
      if (g < first) first = g
      if (g < answering && tally.isUp(pool, false)) answering = g
    }

    const out: Endpoint[] = []
    if (answering !== Number.MAX_SAFE_INTEGER) {
      for (let i = 0; i < candidates.length; i++) {
        const e = candidates[i]!
        if (this.#group(e.pool) === answering && tally.isUp(e.pool, false) && ctx.health.up(e)) out.push(e)
      }
      ctx.trace?.note(`failover: group ${answering + 1} (${this.#label(answering)}) is up; ${out.length} up endpoints`)
      return out
    }
    for (let i = 0; i < candidates.length; i++) {
      const e = candidates[i]!
      if (this.#group(e.pool) === first) out.push(e)
    }
    ctx.trace?.note(
      `failover: no group has an up pool; failing open with all ${out.length} candidates of group ${first + 1} (${this.#label(first)})`,
    )
    return out
  }
}
