/**
 * @module policy/weighted
 * Weighted choice among the up candidates, by effective weight (`ctx.health.weight`: configured
 * weight after overrides, drain and slow start).
 *
 * - `mode: 'random'`, `by: 'endpoint'`: one endpoint, with probability weight / total.
 * - `mode: 'random'`, `by: 'pool'`: one pool, with probability (sum of its up endpoints' weights) /
 *   total; answers with all of that pool's up endpoints that have weight.
 * - `mode: 'smooth'`: nginx's smooth weighted round-robin, a deterministic sequence (weights 5,1,1
 *   give a a b a c a a). The running state is kept per step instance, keyed by endpoint (or pool)
 *   index; members missing from one decision keep their value and rejoin later, and disjoint
 *   candidate sets (e.g. one per region behind a geo step) each stay balanced on their own.
 *
 * Weight 0 means "never unless all else is down": weight-0 endpoints are used only when no up
 * candidate has a positive weight, and then all up candidates count alike. With no candidate up,
 * the candidates pass through unchanged so the chain's all-down handling decides.
 */

import { alone } from './common.ts'
import type { Endpoint, NamedStep, PolicyContext, StepConfig } from './types.ts'

export type WeightedConfig = Extract<StepConfig, { kind: 'weighted' }>

export function weightedStep(config: WeightedConfig): NamedStep {
  if (config.mode === 'random') {
    return config.by === 'pool'
      ? { name: 'weighted', run: randomByPool }
      : { name: 'weighted', run: randomByEndpoint, draw: true }
  }
  const smooth = new SmoothRoundRobin(config.by === 'pool')
  return { name: 'weighted', run: (candidates, ctx) => smooth.next(candidates, ctx) }
}

/** Sum of positive effective weights of the up candidates, and how many candidates are up. */
interface Totals {
  up: number
  weight: number
}

function totals(candidates: readonly Endpoint[], ctx: PolicyContext, out: Totals): Totals {
  const health = ctx.health
  out.up = 0
  out.weight = 0
  for (let i = 0; i < candidates.length; i++) {
    const e = candidates[i]!
    if (!health.up(e)) continue
    out.up++
    const w = health.weight(e)
    if (w > 0) out.weight += w
  }
  return out
}

// Steps run synchronously and never re-enter, so one scratch record serves every call.
const scratch: Totals = { up: 0, weight: 0 }

/** Weight an up endpoint counts with: its effective weight, or 1 for all when none has weight. */
function weightOf(e: Endpoint, ctx: PolicyContext, uniform: boolean): number {
  if (uniform) return 1
  return Math.max(0, ctx.health.weight(e))
}

/**
 * Draws one up endpoint with probability proportional to its weight (or uniformly when `uniform`).
 * Undefined only when no candidate is up.
 */
function draw(candidates: readonly Endpoint[], ctx: PolicyContext, t: Totals, uniform: boolean): Endpoint | undefined {
  const health = ctx.health
  const target = ctx.random() * (uniform ? t.up : t.weight)
  let acc = 0
  let last: Endpoint | undefined
  for (let i = 0; i < candidates.length; i++) {
    const e = candidates[i]!
    if (!health.up(e)) continue
    const w = weightOf(e, ctx, uniform)
    if (w <= 0) continue
    last = e
    acc += w
    if (target < acc) return e
  }
  return last // only reached through float rounding at the very top of the range
}

function randomByEndpoint(candidates: readonly Endpoint[], ctx: PolicyContext): readonly Endpoint[] {
  const t = totals(candidates, ctx, scratch)
  if (t.up === 0) {
    ctx.trace?.note(`weighted: no candidate up; passing ${candidates.length} on`)
    return candidates
  }
  const uniform = t.weight <= 0
  const total = t.weight
  const chosen = draw(candidates, ctx, t, uniform)!
  if (ctx.trace !== undefined) {
    ctx.trace.note(
      uniform
        ? `weighted: every up candidate has weight 0; picked ${chosen.name} of ${t.up} alike`
        : `weighted: picked ${chosen.name} (weight ${ctx.health.weight(chosen)} of ${total})`,
    )
  }
  return alone(chosen)
}

function randomByPool(candidates: readonly Endpoint[], ctx: PolicyContext): readonly Endpoint[] {
  const t = totals(candidates, ctx, scratch)
  if (t.up === 0) {
    ctx.trace?.note(`weighted: no candidate up; passing ${candidates.length} on`)
    return candidates
  }
  const uniform = t.weight <= 0
  const total = uniform ? t.up : t.weight
  // Drawing an endpoint by weight and taking its pool picks each pool with probability
  // (pool's weight sum) / total, without building per-pool sums.
  const pool = draw(candidates, ctx, t, uniform)!.pool
  const out: Endpoint[] = []
  let poolWeight = 0
  for (let i = 0; i < candidates.length; i++) {
    const e = candidates[i]!
    if (e.pool.index !== pool.index || !ctx.health.up(e)) continue
    const w = weightOf(e, ctx, uniform)
    if (w <= 0) continue
    poolWeight += w
    out.push(e)
  }
  if (ctx.trace !== undefined) {
    ctx.trace.note(`weighted: picked pool ${pool.name} (weight ${poolWeight} of ${total}) with ${out.length} up`)
  }
  return out
}

/**
 * nginx smooth weighted round-robin: each round every member's current value grows by its
 * weight, the largest wins (first in candidate order on ties) and gives back the round's total.
 */
class SmoothRoundRobin {
  readonly #byPool: boolean
  /** Current value per endpoint index (or pool index when by pool). */
  #current = new Float64Array(8)
  /** Per-pool weight sums of one decision, stamped with the decision's generation. */
  #sums = new Float64Array(8)
  #summed = new Uint32Array(8)
  #visited = new Uint32Array(8)
  #generation = 0

  constructor(byPool: boolean) {
    this.#byPool = byPool
  }

  next(candidates: readonly Endpoint[], ctx: PolicyContext): readonly Endpoint[] {
    const t = totals(candidates, ctx, scratch)
    if (t.up === 0) {
      ctx.trace?.note(`weighted: no candidate up; passing ${candidates.length} on`)
      return candidates
    }
    const uniform = t.weight <= 0
    return this.#byPool ? this.#nextPool(candidates, ctx, uniform) : this.#nextEndpoint(candidates, ctx, uniform)
  }

  #nextEndpoint(candidates: readonly Endpoint[], ctx: PolicyContext, uniform: boolean): readonly Endpoint[] {
    const health = ctx.health
    let best: Endpoint | undefined
    let bestValue = 0
    let total = 0
    for (let i = 0; i < candidates.length; i++) {
      const e = candidates[i]!
      if (!health.up(e)) continue
      const w = weightOf(e, ctx, uniform)
      if (w <= 0) continue
      this.#ensure(e.index)
      const value = this.#current[e.index]! + w
      this.#current[e.index] = value
      total += w
      if (best === undefined || value > bestValue) {
        best = e
        bestValue = value
      }
    }
    const chosen = best!
    this.#current[chosen.index]! -= total
    ctx.trace?.note(
      `weighted: smooth round-robin picked ${chosen.name} (weight ${weightOf(chosen, ctx, uniform)} of ${total})`,
    )
    return alone(chosen)
  }

  #nextPool(candidates: readonly Endpoint[], ctx: PolicyContext, uniform: boolean): readonly Endpoint[] {
    const health = ctx.health
    const generation = this.#nextGeneration()
    for (let i = 0; i < candidates.length; i++) {
      const e = candidates[i]!
      if (!health.up(e)) continue
      const p = e.pool.index
      this.#ensure(p)
      if (this.#summed[p] !== generation) {
        this.#summed[p] = generation
        this.#sums[p] = 0
      }
      this.#sums[p]! += weightOf(e, ctx, uniform)
    }
    let best = -1
    let bestValue = 0
    let total = 0
    for (let i = 0; i < candidates.length; i++) {
      const p = candidates[i]!.pool.index
      if (this.#summed[p] !== generation || this.#visited[p] === generation) continue
      this.#visited[p] = generation
      const w = this.#sums[p]!
      if (w <= 0) continue
      const value = this.#current[p]! + w
      this.#current[p] = value
      total += w
      if (best < 0 || value > bestValue) {
        best = p
        bestValue = value
      }
    }
    this.#current[best]! -= total
    const out: Endpoint[] = []
    for (let i = 0; i < candidates.length; i++) {
      const e = candidates[i]!
      if (e.pool.index === best && health.up(e) && weightOf(e, ctx, uniform) > 0) out.push(e)
    }
    if (ctx.trace !== undefined) {
      const pool = out[0]!.pool
      ctx.trace.note(
        `weighted: smooth round-robin picked pool ${pool.name} (weight ${this.#sums[best]} of ${total}) with ${out.length} up`,
      )
    }
    return out
  }

  #nextGeneration(): number {
    this.#generation = (this.#generation + 1) >>> 0
    if (this.#generation === 0) {
      this.#summed.fill(0)
      this.#visited.fill(0)
      this.#generation = 1
    }
    return this.#generation
  }

  #ensure(index: number): void {
    if (index < this.#current.length) return
    let size = this.#current.length * 2
    while (size <= index) size *= 2
    const current = new Float64Array(size)
    current.set(this.#current)
    this.#current = current
    const sums = new Float64Array(size)
    sums.set(this.#sums)
    this.#sums = sums
    const summed = new Uint32Array(size)
    summed.set(this.#summed)
    this.#summed = summed
    const visited = new Uint32Array(size)
    visited.set(this.#visited)
    this.#visited = visited
  }
}
