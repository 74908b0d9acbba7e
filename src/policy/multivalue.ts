/**
 * @module policy/multivalue
 * Several up endpoints at once (Route 53 multivalue answers).
 *
 * - `shuffle: true`: a random subset of up to `count` up endpoints, in random order (a partial
 *   Fisher-Yates shuffle driven by `ctx.random()`), so load spreads over all healthy members.
 * - `shuffle: false`: the first `count` up endpoints in candidate order ("first N"), for a stable
 *   primary/secondary answer.
 *
 * With no candidate up, the candidates pass through unchanged so the chain's all-down handling
 * decides. A `count` below 1 is read as 1.
 */

import { healthy } from './common.ts'
import type { Endpoint, NamedStep, PolicyContext, StepConfig } from './types.ts'

export type MultivalueConfig = Extract<StepConfig, { kind: 'multivalue' }>

export function multivalueStep(config: MultivalueConfig): NamedStep {
  const count = config.count >= 1 ? Math.floor(config.count) : 1
  if (config.shuffle) {
    return {
      name: 'multivalue',
      run: (candidates: readonly Endpoint[], ctx: PolicyContext) => shuffled(candidates, ctx, count),
      unordered: (candidates: readonly Endpoint[], ctx: PolicyContext) => subset(candidates, ctx, count),
    }
  }
  return {
    name: 'multivalue',
    pure: true,
    run: (candidates: readonly Endpoint[], ctx: PolicyContext) => firstN(candidates, ctx, count),
  }
}

function firstN(candidates: readonly Endpoint[], ctx: PolicyContext, count: number): readonly Endpoint[] {
  const health = ctx.health
  const out: Endpoint[] = []
  for (let i = 0; i < candidates.length && out.length < count; i++) {
    const e = candidates[i]!
    if (health.up(e)) out.push(e)
  }
  if (out.length === 0) {
    ctx.trace?.note(`multivalue: no candidate up; passing ${candidates.length} on`)
    return candidates
  }
  ctx.trace?.note(`multivalue: first ${out.length} up of ${candidates.length} candidates (count ${count})`)
  return out
}

/** `shuffled`'s choice without the order: every up candidate when they fit, else a random `count`. */
function subset(candidates: readonly Endpoint[], ctx: PolicyContext, count: number): readonly Endpoint[] {
  const health = ctx.health
  let up = 0
  for (let i = 0; i < candidates.length; i++) if (health.up(candidates[i]!)) up++
  if (up === 0 || up > count) return shuffled(candidates, ctx, count)
  return up === candidates.length ? candidates : healthy(candidates, health)
}

function shuffled(candidates: readonly Endpoint[], ctx: PolicyContext, count: number): readonly Endpoint[] {
  const out = healthy(candidates, ctx.health)
  const n = out.length
  if (n === 0) {
    ctx.trace?.note(`multivalue: no candidate up; passing ${candidates.length} on`)
    return candidates
  }
  const k = Math.min(count, n)
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(ctx.random() * (n - i))
    const tmp = out[i]!
    out[i] = out[j]!
    out[j] = tmp
  }
  out.length = k
  ctx.trace?.note(`multivalue: ${k} of ${n} up endpoints in random order (count ${count})`)
  return out
}
