/**
 * @module dns/rrl
 * Response rate limiting in the manner of BIND and Knot RRL. An authoritative server is a handy
 * amplifier for reflection attacks: the attacker spoofs the victim's address and we send the
 * victim answers much larger than the queries. RRL notices many identical responses going to one
 * network and stops sending most of them.
 *
 * Accounting (BIND's "accounts"): one token bucket per (client prefix, response kind, name key).
 * A bucket earns `rate` credits per second, never holds more than `rate`, and every response
 * costs one credit, sent or not. While the balance is negative responses are limited, and the
 * balance may sink to `-rate * window` ("debt"), so a source that keeps flooding stays limited
 * until it has been quiet for a while instead of getting `rate` answers through every second.
 * Credit is earned continuously (per millisecond) rather than in whole seconds, so there is no
 * burst at second boundaries. A bucket untouched for `window` seconds starts over with full credit
 * (as in BIND), which is also exactly what a fresh bucket gets: that is why idle buckets can be
 * evicted without changing any verdict.
 *
 * Of the limited responses, the first one and then every `slip`th one after it is "slipped": sent
 * as an empty truncated response (see `truncatedResponse`). A real client that was caught up in
 * the flood retries over TCP and gets its answer; a spoofed victim receives a packet no larger
 * than the query, so the amplification is gone. RRL only makes sense for UDP: TCP proves the
 * source address, so the server should not call `check` for TCP queries at all.
 *
 * `check` runs for every UDP response, so it allocates nothing but the key string (built in a
 * reused scratch buffer) and, for a new account, a bucket that usually comes from a free list or
 * from the bucket it evicts. Buckets sit on an intrusive least-recently-used list, so eviction of
 * the oldest and the sweep of idle ones are O(1) per call.
 */

import { ConfigError } from '../errors.ts'
import { FLAG_QR, FLAG_TC } from './template.ts'

export interface RrlConfig {
  /** Answers (positive responses, NODATA, referrals) per second per account; 0 disables the limit. */
  readonly responsesPerSecond: number
  /** Error responses (REFUSED, FORMERR, SERVFAIL, ...) per second per account; 0 disables the limit. */
  readonly errorsPerSecond: number
  /** NXDOMAIN responses per second per account; 0 disables the limit. */
  readonly nxdomainsPerSecond: number
  /** Every `slip`th limited response is sent truncated instead of dropped; 0 never, 1 always (0..10, BIND uses 2). */
  readonly slip: number
  /** Seconds of history: how deep the debt goes and how long an idle account is remembered (1..3600, default 15). */
  readonly window?: number | undefined
  /** Clients in one IPv4 network of this length share accounts (0..32, default 24). */
  readonly ipv4Prefix?: number | undefined
  /** Clients in one IPv6 network of this length share accounts (0..128, default 56). */
  readonly ipv6Prefix?: number | undefined
  /** Most accounts kept; beyond that the least recently used one is forgotten (default 100 000). */
  readonly maxEntries?: number | undefined
}

export const RRL_DEFAULTS = {
  window: 15,
  ipv4Prefix: 24,
  ipv6Prefix: 56,
  maxEntries: 100_000,
} as const

/** What the response was: accounted separately, each with its own rate. */
export type RrlKind = 'answer' | 'nxdomain' | 'error'

/** `slip`: send `truncatedResponse(query)` instead of the real response. */
export type RrlVerdict = 'send' | 'drop' | 'slip'

export interface RrlStats {
  /** Responses that were within their account's rate (or of a kind with no limit). */
  readonly sent: number
  /** Limited responses to drop. */
  readonly dropped: number
  /** Limited responses to send truncated. */
  readonly slipped: number
  /** Accounts currently held. */
  readonly entries: number
}

/** The decision counts of RrlStats, which threads report and the metrics sum. */
export type RrlFigures = Pick<RrlStats, 'sent' | 'dropped' | 'slipped'>

export const NO_RRL_FIGURES: RrlFigures = Object.freeze({ sent: 0, dropped: 0, slipped: 0 })

/** Two limiters' (or threads') decision counts as one. */
export function addRrlFigures(a: RrlFigures, b: RrlFigures): RrlFigures {
  return { sent: a.sent + b.sent, dropped: a.dropped + b.dropped, slipped: a.slipped + b.slipped }
}

/** One account. Mutable and recycled: the hot path never builds a new one when it can reuse one. */
class Bucket {
  key = ''
  /** Credits; negative is debt. */
  balance = 0
  /** `now` of the last response charged here, in ms. */
  last = 0
  /** Limited responses since the last slip, modulo `slip`. */
  slipCount = 0
  /** Neighbours on the LRU list: `prev` was used earlier, `next` later. Also the free-list link. */
  prev: Bucket | null = null
  next: Bucket | null = null
}

/** Key layout: family, kind, the masked prefix bytes, then the name key. */
const KEY_HEAD = 2
const KIND_CODE: Readonly<Record<RrlKind, number>> = { answer: 1, nxdomain: 2, error: 3 }
/** Idle buckets evicted per `check`: more than the one bucket a call can add, so the sweep keeps up. */
const SWEEP_PER_CALL = 2
/** Buckets kept for reuse after an idle sweep; enough to absorb churn, small enough not to hoard memory. */
const FREE_LIST_MAX = 1024

export class ResponseRateLimiter {
  readonly #answerRate: number
  readonly #errorRate: number
  readonly #nxdomainRate: number
  readonly #slip: number
  readonly #windowMs: number
  readonly #maxEntries: number
  /** Whole bytes of the address that take part in the key, and the mask for the last of them. */
  readonly #v4Bytes: number
  readonly #v4LastMask: number
  readonly #v6Bytes: number
  readonly #v6LastMask: number

  readonly #table = new Map<string, Bucket>()
  /** Least recently used bucket; the sweep and capacity eviction start here. */
  #oldest: Bucket | null = null
  #newest: Bucket | null = null
  #free: Bucket | null = null
  #freeCount = 0
  /** Holds the key while it is assembled; grown (rarely) for long name keys. */
  #scratch = Buffer.allocUnsafe(KEY_HEAD + 16 + 256)

  #sent = 0
  #dropped = 0
  #slipped = 0

  constructor(config: RrlConfig) {
    const window = config.window ?? RRL_DEFAULTS.window
    const v4 = config.ipv4Prefix ?? RRL_DEFAULTS.ipv4Prefix
    const v6 = config.ipv6Prefix ?? RRL_DEFAULTS.ipv6Prefix
    const maxEntries = config.maxEntries ?? RRL_DEFAULTS.maxEntries
    const problems: string[] = []
    const rate = (field: string, value: number): void => {
      if (!Number.isFinite(value) || value < 0) problems.push(`${field} must be a number >= 0, got ${value}`)
    }
    const int = (field: string, value: number, min: number, max: number): void => {
      if (!Number.isInteger(value) || value < min || value > max) {
        problems.push(`${field} must be a whole number ${min}..${max}, got ${value}`)
      }
    }
    rate('responsesPerSecond', config.responsesPerSecond)
    rate('errorsPerSecond', config.errorsPerSecond)
    rate('nxdomainsPerSecond', config.nxdomainsPerSecond)
    int('slip', config.slip, 0, 10)
    int('window', window, 1, 3600)
    int('ipv4Prefix', v4, 0, 32)
    int('ipv6Prefix', v6, 0, 128)
    int('maxEntries', maxEntries, 1, 10_000_000)
    if (problems.length > 0) throw new ConfigError(`rate limit: ${problems.join('; ')}`)

    this.#answerRate = config.responsesPerSecond
    this.#errorRate = config.errorsPerSecond
    this.#nxdomainRate = config.nxdomainsPerSecond
    this.#slip = config.slip
    this.#windowMs = window * 1000
    this.#maxEntries = maxEntries
    this.#v4Bytes = (v4 + 7) >> 3
    this.#v4LastMask = lastByteMask(v4)
    this.#v6Bytes = (v6 + 7) >> 3
    this.#v6LastMask = lastByteMask(v6)
  }

  /**
   * Charges one response to its account and says what to do with it.
   *
   * `clientBytes` is the client address (4 bytes for family 4, 16 for family 6; an IPv4-mapped
   * IPv6 address counts as IPv4). `nameKey` picks the account within the client's network; pass
   * a latin1 key such as `Query.key` (code units above 0xff only keep their low byte, which can
   * merge accounts but never splits one). As in BIND: the qname key for answers (append the qtype
   * for BIND's exact granularity), the zone key for NXDOMAIN, so a flood of random names under one
   * zone shares one account, and '' for errors, whose names are just as attacker-chosen. `now` is
   * a millisecond clock; a monotonic one (`performance.now()`) is best, a step backwards earns no
   * credit but does no harm.
   */
  check(clientBytes: Uint8Array, family: 4 | 6, kind: RrlKind, nameKey: string, now: number): RrlVerdict {
    const rate = kind === 'answer' ? this.#answerRate : kind === 'nxdomain' ? this.#nxdomainRate : this.#errorRate
    if (rate === 0) {
      this.#sent++
      return 'send'
    }
    this.#sweep(now, SWEEP_PER_CALL)
    const key = this.#key(clientBytes, family, KIND_CODE[kind], nameKey)
    let b = this.#table.get(key)
    if (b === undefined) {
      b = this.#insert(key)
      b.balance = rate
      b.slipCount = 0
    } else {
      const elapsed = now - b.last
      if (elapsed >= this.#windowMs) {
        b.balance = rate
        b.slipCount = 0
      } else if (elapsed > 0) {
        const balance = b.balance + (rate * elapsed) / 1000
        if (balance >= rate) {
          // Back to full credit ends the limited episode, so the next one slips its first response again.
          b.balance = rate
          b.slipCount = 0
        } else {
          b.balance = balance
        }
      }
      this.#touch(b)
    }
    b.last = now

    const balance = b.balance - 1
    if (balance >= 0) {
      b.balance = balance
      this.#sent++
      return 'send'
    }
    const floor = -rate * (this.#windowMs / 1000)
    b.balance = balance < floor ? floor : balance
    const slip = this.#slip
    if (slip === 0) {
      this.#dropped++
      return 'drop'
    }
    // BIND's order: the first limited response slips, so a real client learns at once to use TCP.
    const count = b.slipCount
    b.slipCount = count + 1 >= slip ? 0 : count + 1
    if (count === 0) {
      this.#slipped++
      return 'slip'
    }
    this.#dropped++
    return 'drop'
  }

  /**
   * Forgets every account idle for `window` seconds (they would start over with full credit
   * anyway). `check` already does this a little at a time; call this from a timer to give memory
   * back after traffic stops. Returns how many were removed.
   */
  prune(now: number): number {
    return this.#sweep(now, Number.POSITIVE_INFINITY)
  }

  stats(): RrlStats {
    return { sent: this.#sent, dropped: this.#dropped, slipped: this.#slipped, entries: this.#table.size }
  }

  /** Builds the account key in the scratch buffer: one string allocation, no intermediate pieces. */
  #key(clientBytes: Uint8Array, family: 4 | 6, kind: number, nameKey: string): string {
    let bytes: number
    let mask: number
    let start = 0
    let fam: number = family
    if (family === 6 && isV4Mapped(clientBytes)) {
      // A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d; under an IPv6 prefix of 96 or
      // less they would all share one account.
      start = 12
      fam = 4
    }
    if (fam === 4) {
      bytes = this.#v4Bytes
      mask = this.#v4LastMask
    } else {
      bytes = this.#v6Bytes
      mask = this.#v6LastMask
    }
    const need = KEY_HEAD + bytes + nameKey.length
    if (need > this.#scratch.length) this.#scratch = Buffer.allocUnsafe(need * 2)
    const s = this.#scratch
    s[0] = fam
    s[1] = kind
    for (let i = 0; i < bytes; i++) s[KEY_HEAD + i] = clientBytes[start + i] ?? 0
    if (bytes > 0) s[KEY_HEAD + bytes - 1]! &= mask
    const end = KEY_HEAD + bytes + s.write(nameKey, KEY_HEAD + bytes, 'latin1')
    return s.toString('latin1', 0, end)
  }

  /** A bucket for a new key, appended as newest: from the free list, the evicted oldest, or new. */
  #insert(key: string): Bucket {
    let b: Bucket
    if (this.#table.size >= this.#maxEntries) {
      b = this.#oldest!
      this.#unlink(b)
      this.#table.delete(b.key)
    } else if (this.#free !== null) {
      b = this.#free
      this.#free = b.next
      this.#freeCount--
    } else {
      b = new Bucket()
    }
    b.key = key
    this.#table.set(key, b)
    this.#append(b)
    return b
  }

  /** Evicts up to `max` buckets idle for at least the window; the LRU order means it stops at the first busy one. */
  #sweep(now: number, max: number): number {
    const idleBefore = now - this.#windowMs
    let n = 0
    let b = this.#oldest
    while (b !== null && n < max && b.last <= idleBefore) {
      this.#unlink(b)
      this.#table.delete(b.key)
      b.key = ''
      if (this.#freeCount < FREE_LIST_MAX) {
        b.next = this.#free
        this.#free = b
        this.#freeCount++
      }
      n++
      b = this.#oldest
    }
    return n
  }

  #touch(b: Bucket): void {
    if (b === this.#newest) return
    this.#unlink(b)
    this.#append(b)
  }

  #append(b: Bucket): void {
    b.prev = this.#newest
    b.next = null
    if (this.#newest === null) this.#oldest = b
    else this.#newest.next = b
    this.#newest = b
  }

  #unlink(b: Bucket): void {
    if (b.prev === null) this.#oldest = b.next
    else b.prev.next = b.next
    if (b.next === null) this.#newest = b.prev
    else b.next.prev = b.prev
    b.prev = null
    b.next = null
  }
}

/** Mask for the last key byte of a prefix: 0xff when the prefix ends on a byte boundary. */
function lastByteMask(prefix: number): number {
  const rest = prefix & 7
  return rest === 0 ? 0xff : (0xff << (8 - rest)) & 0xff
}

function isV4Mapped(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false
  return b[10] === 0xff && b[11] === 0xff
}

/**
 * What a slip sends: the query's header and question with QR and TC set, RCODE NOERROR, RD and CD
 * kept, and no records at all (ARCOUNT 0, so no OPT either). It is no larger than the query, so a
 * spoofed victim gains nothing, while a real client sees TC and retries over TCP, which RRL does
 * not limit. `query` must have passed `parseQuery` (at least a 12-byte header); if its question
 * cannot be walked the response carries none.
 */
export function truncatedResponse(query: Buffer): Buffer {
  if (query.length < 12) throw new RangeError(`a DNS query has a 12-byte header, got ${query.length} bytes`)
  const qLen = query.readUInt16BE(4) === 1 ? questionLength(query) : 0
  const out = Buffer.allocUnsafe(12 + qLen)
  out.writeUInt16BE(query.readUInt16BE(0), 0)
  // Opcode, RD and CD survive (0x7910); AA, RA, AD, Z and the query's RCODE bits do not.
  out.writeUInt16BE(FLAG_QR | FLAG_TC | (query.readUInt16BE(2) & 0x7910), 2)
  out.writeUInt16BE(qLen > 0 ? 1 : 0, 4)
  out.writeUInt32BE(0, 6)
  out.writeUInt16BE(0, 10)
  // Copied byte for byte: clients that randomise the case of the name (0x20 bits) check it.
  if (qLen > 0) query.copy(out, 12, 12, 12 + qLen)
  return out
}

/** Bytes of the question at offset 12 (name, type, class), or 0 when it runs off the packet. */
function questionLength(buf: Buffer): number {
  let i = 12
  for (;;) {
    if (i >= buf.length) return 0
    const len = buf[i]!
    if (len === 0) break
    // Nothing precedes the question, so a compression pointer (or any label type but 0) is bogus.
    if (len > 63) return 0
    i += len + 1
  }
  i += 5
  return i <= buf.length ? i - 12 : 0
}
