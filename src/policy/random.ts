/**
 * @module policy/random
 * A seedable PRNG for reproducible decisions: golden tests and `gslb explain --seed`. The server
 * itself uses Math.random.
 */

/** mulberry32: tiny, fast, good enough for load-balancing choices (not for secrets). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
