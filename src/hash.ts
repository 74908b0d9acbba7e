/**
 * @module hash
 * Small non-cryptographic hashes shared by the policy steps (client-subnet hashing, rendezvous
 * scores) and the prober's sharding: fast, deterministic on every machine and Node version.
 */

export const FNV_OFFSET = 0x811c9dc5
export const FNV_PRIME = 0x01000193

/** FNV-1a over `bytes[0, length)`, continuing from `seed`. 32-bit, unsigned. */
export function fnv1a(bytes: Uint8Array, length = bytes.length, seed = FNV_OFFSET): number {
  let h = seed >>> 0
  for (let i = 0; i < length; i++) {
    h ^= bytes[i]!
    h = Math.imul(h, FNV_PRIME)
  }
  return h >>> 0
}

/** FNV-1a over the UTF-16 code units of `text`, continuing from `seed`. */
export function hashString(text: string, seed = FNV_OFFSET): number {
  let h = seed >>> 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    h ^= c & 0xff
    h = Math.imul(h, FNV_PRIME)
    if (c > 0xff) {
      h ^= c >>> 8
      h = Math.imul(h, FNV_PRIME)
    }
  }
  return h >>> 0
}

/** murmur3's 32-bit finaliser: full avalanche, so nearby inputs give unrelated outputs. */
export function fmix32(h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}
