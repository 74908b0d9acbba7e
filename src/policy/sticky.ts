/**
 * @module policy/sticky
 * Session affinity by client subnet: weighted rendezvous (highest random weight) hashing of the
 * client's /prefix4 or /prefix6 (capped by the ECS source prefix) with each up endpoint's name.
 * Each endpoint scores `-weight / ln(u)`, `u` in (0, 1) from hash(subnet, name); the highest
 * score answers, alone.
 *
 * - The same subnet gets the same endpoint while it stays up; subnets spread in proportion to
 *   weight.
 * - When one of N endpoints goes down only the subnets it held (about 1/N) move, and they come
 *   back when it does. Hashing the name rather than the index keeps the mapping across reloads
 *   that add or reorder endpoints.
 * - Weight-0 endpoints are used only when no up candidate has weight (then all count alike).
 *
 * The answer depends on the first min(prefix, sourcePrefix) bits of the client, which is the ECS
 * scope it reports. With no candidate up, the candidates pass through unchanged.
 */

import { alone, hashSubnet, rendezvousScore, subnetBits } from './common.ts'
import type { Endpoint, NamedStep, PolicyContext, StepConfig } from './types.ts'

export type StickyConfig = Extract<StepConfig, { kind: 'sticky' }>

export function stickyStep(config: StickyConfig): NamedStep {
  const prefix4 = config.prefix4
  const prefix6 = config.prefix6
  return { name: 'sticky', pure: true, run: (candidates, ctx) => sticky(candidates, ctx, prefix4, prefix6) }
}

function sticky(
  candidates: readonly Endpoint[],
  ctx: PolicyContext,
  prefix4: number,
  prefix6: number,
): readonly Endpoint[] {
  const health = ctx.health
  let up = 0
  let weighted = false
  for (let i = 0; i < candidates.length; i++) {
    const e = candidates[i]!
    if (!health.up(e)) continue
    up++
    if (health.weight(e) > 0) weighted = true
  }
  if (up === 0) {
    ctx.trace?.note(`sticky: no candidate up; passing ${candidates.length} on`)
    return candidates
  }

  const bits = subnetBits(ctx.client, prefix4, prefix6)
  ctx.scope(bits)
  const key = hashSubnet(ctx.client, bits)
  let best: Endpoint | undefined
  let bestScore = -1
  for (let i = 0; i < candidates.length; i++) {
    const e = candidates[i]!
    if (!health.up(e)) continue
    const w = weighted ? health.weight(e) : 1
    if (w <= 0) continue
    const score = rendezvousScore(key, e.name, w)
    if (score > bestScore) {
      best = e
      bestScore = score
    }
  }
  const chosen = best!
  ctx.trace?.note(`sticky: ${ctx.client.address}/${bits} hashes to ${chosen.name} among ${up} up`)
  return alone(chosen)
}
