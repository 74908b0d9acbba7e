/**
 * @module policy/common
 * Helpers shared by the policy steps: health filters, per-pool tallies, client-subnet hashing and
 * the capacity-weighted spread pick. Nothing here allocates per call except the arrays a step
 * returns; per-pool scratch lives in the `PoolTally` the steps share.
 *
 * Pools are identified by `Pool.index` (their position in the service's pool list), so a step's
 * configured pools and its candidates must come from the same zone load.
 */

import { FNV_OFFSET, FNV_PRIME, fmix32, hashString } from '../hash.ts'
import type { ClientInfo, Endpoint, HealthView, Pool } from './types.ts'

/**
 * `[e]` without a new array per query: weighted, sticky and smooth round-robin pick one endpoint
 * per query, and on the 10k-service scale bench those arrays were ~2% of the time (allocation and
 * the scavenges after it). The list is frozen and shared, so nothing downstream may keep or
 * change it by identity; `ServiceNode` copies what it keeps.
 */
export function alone(e: Endpoint): readonly Endpoint[] {
  return e.alone ?? [e]
}

/** The up candidates, in candidate order. */
export function healthy(candidates: readonly Endpoint[], health: HealthView): Endpoint[] {
  const out: Endpoint[] = []
  for (let i = 0; i < candidates.length; i++) {
    const e = candidates[i]!
    if (health.up(e)) out.push(e)
  }
  return out
}

/** True when at least one candidate is up. */
export function anyUp(candidates: readonly Endpoint[], health: HealthView): boolean {
  for (let i = 0; i < candidates.length; i++) {
    if (health.up(candidates[i]!)) return true
  }
  return false
}

export interface PoolGroup {
  readonly pool: Pool
  readonly endpoints: Endpoint[]
}

/** Candidates grouped by pool: pools in order of first appearance, endpoints in candidate order. */
export function groupByPool(candidates: readonly Endpoint[]): PoolGroup[] {
  const groups: PoolGroup[] = []
  for (let i = 0; i < candidates.length; i++) {
    const e = candidates[i]!
    let group: PoolGroup | undefined
    for (let g = 0; g < groups.length; g++) {
      if (groups[g]!.pool.index === e.pool.index) {
        group = groups[g]
        break
      }
    }
    if (group === undefined) groups.push({ pool: e.pool, endpoints: [e] })
    else group.endpoints.push(e)
  }
  return groups
}

/**
 * Up members a pool needs to count as up. A configured threshold below 1 is read as 1, so an up
 * pool always has something to answer with.
 */
export function upThreshold(pool: Pool): number {
  return Math.max(1, pool.upThreshold)
}

/** Number of up candidates that belong to `pool`. */
export function countUp(pool: Pool, candidates: readonly Endpoint[], health: HealthView): number {
  let n = 0
  for (let i = 0; i < candidates.length; i++) {
    const e = candidates[i]!
    if (e.pool.index === pool.index && health.up(e)) n++
  }
  return n
}

/** A pool is up when at least `pool.upThreshold` (minimum 1) of its candidate endpoints are up. */
export function poolUp(pool: Pool, candidates: readonly Endpoint[], health: HealthView): boolean {
  return countUp(pool, candidates, health) >= upThreshold(pool)
}

/** The up candidates of `pool`, in candidate order. */
export function upOfPool(pool: Pool, candidates: readonly Endpoint[], health: HealthView): Endpoint[] {
  const out: Endpoint[] = []
  for (let i = 0; i < candidates.length; i++) {
    const e = candidates[i]!
    if (e.pool.index === pool.index && health.up(e)) out.push(e)
  }
  return out
}

/** All candidates of `pool`, in candidate order, whatever their health. */
export function allOfPool(pool: Pool, candidates: readonly Endpoint[]): Endpoint[] {
  const out: Endpoint[] = []
  for (let i = 0; i < candidates.length; i++) {
    const e = candidates[i]!
    if (e.pool.index === pool.index) out.push(e)
  }
  return out
}

/**
 * Per-pool counts of one candidate list, computed in one pass and kept in typed arrays indexed by
 * `Pool.index` (generation-stamped, so nothing is cleared or allocated per call once warm). A step
 * calls `load` at the start of each decision; results are valid until the next `load`, so the
 * steps share one (`sharedTally`).
 */
export class PoolTally {
  /** Distinct candidate pools in order of first appearance (scratch: do not keep). */
  readonly pools: Pool[] = []
  /** Up candidates in total. */
  upTotal = 0
  #stamp = new Uint32Array(8)
  #up = new Uint32Array(8)
  #generation = 0

  load(candidates: readonly Endpoint[], health: HealthView): void {
    this.pools.length = 0
    this.upTotal = 0
    this.#generation = (this.#generation + 1) >>> 0
    if (this.#generation === 0) {
      this.#stamp.fill(0)
      this.#generation = 1
    }
    const generation = this.#generation
    for (let i = 0; i < candidates.length; i++) {
      const e = candidates[i]!
      const p = e.pool.index
      if (p >= this.#stamp.length) this.#grow(p)
      if (this.#stamp[p] !== generation) {
        this.#stamp[p] = generation
        this.#up[p] = 0
        this.pools.push(e.pool)
      }
      if (health.up(e)) {
        this.#up[p]!++
        this.upTotal++
      }
    }
  }

  /** True when `pool` has at least one candidate in the loaded list. */
  present(pool: Pool): boolean {
    return pool.index < this.#stamp.length && this.#stamp[pool.index] === this.#generation
  }

  /** Up candidates of `pool` in the loaded list. */
  upCount(pool: Pool): number {
    return this.present(pool) ? this.#up[pool.index]! : 0
  }

  /**
   * Whether `pool` can answer: at least its up threshold of members up, or, when `relaxed` (the
   * fallback pass once no pool meets its threshold), at least one.
   */
  isUp(pool: Pool, relaxed: boolean): boolean {
    const n = this.upCount(pool)
    return relaxed ? n > 0 : n >= upThreshold(pool)
  }

  #grow(index: number): void {
    let size = this.#stamp.length * 2
    while (size <= index) size *= 2
    const stamp = new Uint32Array(size)
    stamp.set(this.#stamp)
    const up = new Uint32Array(size)
    up.set(this.#up)
    this.#stamp = stamp
    this.#up = up
  }
}

/**
 * The tally the steps share. Steps run synchronously, never inside one another, and each loads the
 * tally at the start of a decision and is done with it when it returns, so one serves them all: a
 * tally of its own cost each geo, failover and latency step five objects (two typed arrays and
 * their buffers), kept for the life of the zone set.
 */
export const sharedTally = new PoolTally()

export { fmix32, fnv1a, hashString } from '../hash.ts'

/** The prefix length to use for `client`: `prefix4` or `prefix6` by family, capped by the source prefix. */
export function subnetBits(client: ClientInfo, prefix4: number, prefix6: number): number {
  const wanted = client.family === 4 ? prefix4 : prefix6
  const max = client.family === 4 ? 32 : 128
  return Math.max(0, Math.min(wanted, client.sourcePrefix, max))
}

/**
 * Hash of the first `bits` bits of the client address (family and length mixed in), without
 * copying the address. Two clients in the same /`bits` subnet hash alike.
 */
export function hashSubnet(client: ClientInfo, bits: number): number {
  const bytes = client.bytes
  let h = Math.imul(FNV_OFFSET ^ ((client.family << 8) | bits), FNV_PRIME)
  const whole = bits >>> 3
  for (let i = 0; i < whole && i < bytes.length; i++) {
    h ^= bytes[i]!
    h = Math.imul(h, FNV_PRIME)
  }
  const rest = bits & 7
  if (rest !== 0 && whole < bytes.length) {
    h ^= bytes[whole]! & (0xff << (8 - rest))
    h = Math.imul(h, FNV_PRIME)
  }
  return h >>> 0
}

/**
 * Weighted rendezvous (highest random weight) score of `name` for the client key `key`:
 * `-weight / ln(u)` with `u` in (0, 1) drawn from hash(key, name). The item with the highest score
 * wins; removing an item only moves the keys it had won, and each item wins in proportion to its
 * weight.
 */
export function rendezvousScore(key: number, name: string, weight: number): number {
  const u = (fmix32(hashString(name, key)) + 0.5) / 4294967296
  return -weight / Math.log(u)
}

/**
 * Capacity-weighted, deterministic pick among the tally's up pools for a client key (a subnet
 * hash), by weighted rendezvous on the pool name: a client keeps its pool while that pool stays up,
 * and clients spread over pools in proportion to capacity, each pool's share held to its
 * `spillCap` when it has one (water-filling: what a capped pool cannot take goes to the others in
 * proportion). Pools with capacity 0 are used only when no up pool has capacity (then all count
 * alike). Undefined when no pool is up. Runs only while a region is down, so the small arrays it
 * builds are not on the common path.
 */
export function spreadPick(tally: PoolTally, relaxed: boolean, key: number): Pool | undefined {
  const pools = tally.pools
  let positive = false
  for (let i = 0; i < pools.length; i++) {
    const p = pools[i]!
    if (p.capacity > 0 && tally.isUp(p, relaxed)) {
      positive = true
      break
    }
  }
  const up: Pool[] = []
  const share: number[] = []
  for (let i = 0; i < pools.length; i++) {
    const p = pools[i]!
    if (!tally.isUp(p, relaxed)) continue
    const weight = positive ? p.capacity : 1
    if (weight <= 0) continue
    up.push(p)
    share.push(weight)
  }
  capShares(up, share)
  let best: Pool | undefined
  let bestScore = -1
  for (let i = 0; i < up.length; i++) {
    const score = rendezvousScore(key, up[i]!.name, share[i]!)
    if (score > bestScore) {
      best = up[i]
      bestScore = score
    }
  }
  return best
}

/** Turns weights into shares of 1 that respect each pool's spillCap where the others can absorb the rest. */
function capShares(pools: readonly Pool[], share: number[]): void {
  if (!pools.some((p) => p.spillCap !== undefined)) return
  const fixed = new Array<boolean>(pools.length).fill(false)
  let left = 1
  for (let round = 0; round < pools.length; round++) {
    let total = 0
    for (let i = 0; i < pools.length; i++) if (!fixed[i]) total += share[i]!
    if (total <= 0) return
    let capped = false
    for (let i = 0; i < pools.length; i++) {
      if (fixed[i]) continue
      const cap = pools[i]!.spillCap
      if (cap !== undefined && (left * share[i]!) / total > cap) {
        share[i] = cap
        fixed[i] = true
        left -= cap
        capped = true
      }
    }
    if (!capped || left <= 0 || fixed.every(Boolean)) {
      // Everyone left shares what remains in proportion; if all are capped, caps are the weights.
      for (let i = 0; i < pools.length; i++) if (!fixed[i]) share[i] = (Math.max(left, 0) * share[i]!) / total
      return
    }
  }
}

/** Endpoint names joined by commas, for trace lines. */
export function names(endpoints: readonly Endpoint[]): string {
  let out = ''
  for (let i = 0; i < endpoints.length; i++) out += (i === 0 ? '' : ',') + endpoints[i]!.name
  return out
}
