/**
 * @module dns/slab
 * Byte strings that live as long as a compiled zone (response templates) packed into chunks of
 * their own.
 *
 * Node hands small `Buffer`s out of a shared 64 KiB pool (`Buffer.poolSize` in Node 24), so one
 * long-lived template keeps alive a whole pool chunk together with every short-lived buffer that was
 * cut from it around the same time (builder scratch, rdata parts, concat pieces). Loading 100k
 * records that way held ~105 MB of pool chunks for ~15 MB of template bytes. A slab holds only what
 * was copied into it, so a chunk is as full as its owners, and it is freed with them.
 *
 * Chunks start small and double (up to `MAX_CHUNK`), so a zone of a few names does not hold a
 * 64 KiB chunk for a few hundred bytes.
 */

const MIN_CHUNK = 1024
export const MAX_CHUNK = 64 * 1024
/** Larger copies get their own allocation: they would waste too much of a chunk's tail. */
const OWN_ALLOCATION = MAX_CHUNK / 8

export class ByteSlab {
  #chunk: Buffer | undefined
  #used = 0
  #nextSize = MIN_CHUNK

  readonly #placed: Placement = { chunk: Buffer.alloc(0), at: 0 }

  /** A copy of `src[start..end)` that shares its memory with other copies made by this slab only. */
  copy(src: Uint8Array, start = 0, end = src.length): Buffer {
    const p = this.place(src, start, end, this.#placed)
    return p.chunk.subarray(p.at, p.at + end - start)
  }

  /**
   * `copy` without a view: the bytes land at `into.chunk[into.at ..]` (filled in and returned).
   * Long-lived owners keep the chunk and the offset, so a chunk is one object however many copies
   * it holds.
   */
  place(src: Uint8Array, start: number, end: number, into: Placement): Placement {
    const n = end - start
    if (n > OWN_ALLOCATION) {
      const own = Buffer.allocUnsafeSlow(n)
      own.set(src.subarray(start, end))
      into.chunk = own
      into.at = 0
      return into
    }
    let chunk = this.#chunk
    if (chunk === undefined || this.#used + n > chunk.length) {
      chunk = Buffer.allocUnsafeSlow(Math.max(this.#nextSize, n))
      this.#nextSize = Math.min(this.#nextSize * 2, MAX_CHUNK)
      this.#chunk = chunk
      this.#used = 0
    }
    chunk.set(src.subarray(start, end), this.#used)
    into.chunk = chunk
    into.at = this.#used
    this.#used += n
    return into
  }
}

/** Where a copy landed: `chunk[at ..]`. */
export interface Placement {
  chunk: Buffer
  at: number
}
