/**
 * @module server/peer-names
 * Text forms of peer addresses received as bytes (the batched UDP path), cached.
 *
 * The answerer, the observer and the query log take the client as text, as dgram hands it over.
 * Building that string per datagram would allocate on every query, while real traffic comes from
 * few sources (a handful of resolvers send most queries), so a small direct-mapped cache keyed by
 * the address bytes answers almost every lookup with a string it already has.
 */

import { addressText } from '../dns/address.ts'

const SLOTS = 256

export class PeerNames {
  readonly #keys4 = new Int32Array(SLOTS)
  readonly #names4: (string | undefined)[] = new Array<string | undefined>(SLOTS).fill(undefined)
  readonly #keys6 = new Int32Array(SLOTS * 4)
  readonly #names6: (string | undefined)[] = new Array<string | undefined>(SLOTS).fill(undefined)

  /**
   * The dotted quad of the IPv4 address whose 4 bytes are `bytes`; `key` is the same 4 bytes read
   * as one int32 (any byte order, as long as it is always the same).
   */
  v4(key: number, bytes: Uint8Array): string {
    const slot = (key ^ (key >>> 8) ^ (key >>> 16) ^ (key >>> 24)) & (SLOTS - 1)
    const hit = this.#names4[slot]
    if (hit !== undefined && this.#keys4[slot] === key) return hit
    const name = `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`
    this.#keys4[slot] = key
    this.#names4[slot] = name
    return name
  }

  /** The RFC 5952 text of the IPv6 address in `bytes`; `words[at..at+3]` are its 16 bytes as int32s. */
  v6(words: Int32Array, at: number, bytes: Uint8Array): string {
    const a = words[at]!
    const b = words[at + 1]!
    const c = words[at + 2]!
    const d = words[at + 3]!
    const h = a ^ b ^ c ^ d
    const slot = (h ^ (h >>> 8) ^ (h >>> 16) ^ (h >>> 24)) & (SLOTS - 1)
    const k = slot * 4
    const keys = this.#keys6
    const hit = this.#names6[slot]
    if (hit !== undefined && keys[k] === a && keys[k + 1] === b && keys[k + 2] === c && keys[k + 3] === d) return hit
    const name = addressText(bytes)
    keys[k] = a
    keys[k + 1] = b
    keys[k + 2] = c
    keys[k + 3] = d
    this.#names6[slot] = name
    return name
  }
}
