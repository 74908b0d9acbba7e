/**
 * @module query/context
 * The PolicyContext of one query, reused across queries (reset, not reallocated). Facts are derived
 * once and lazily: the client record only when a policy asks who the client is, the geo lookup
 * only when a policy asks where it is (CoreDNS request.Request style).
 */

import { isIPv4 } from 'node:net'
import { addressText, maskBytes, parseAddress } from '../dns/address.ts'
import type { Query } from '../dns/query.ts'
import type { ClientInfo, GeoInfo, HealthView, PolicyContext, TraceSink } from '../policy/types.ts'

/** What the context needs from the geo layer. */
export interface GeoLookup {
  lookup(address: string): GeoInfo | undefined
  /** Changes whenever lookups may answer differently (a reloaded file); absent = never changes. */
  readonly generation?: number
}

/** Client prefixes the decision cache keys on: IPv4 /24 and IPv6 /56, the usual ECS source prefixes. */
export const KEY_BITS4 = 24
export const KEY_BITS6 = 56

/** Family of a client cache key; UNKNOWN is a client that sent ECS with source prefix 0. */
export const KEY_UNKNOWN = 0
export const KEY_V4 = 4
export const KEY_V6 = 6

const UNKNOWN_CLIENT: ClientInfo = Object.freeze({
  address: '0.0.0.0',
  family: 4,
  sourcePrefix: 0,
  bytes: new Uint8Array(4),
})

/** A client cache key (see QueryContext.keyFamily); filled by clientKey4 / clientKey6. */
export interface ClientKey {
  keyFamily: number
  keyHi: number
  keyLo: number
}

/** The key of an IPv4 client `address` (a uint32) with `prefix` known bits. */
export function clientKey4(out: ClientKey, address: number, prefix: number): void {
  const bits = prefix < KEY_BITS4 ? prefix : KEY_BITS4
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0
  out.keyFamily = KEY_V4
  out.keyHi = 0
  out.keyLo = ((address & mask) >>> 8) * 32 + bits
}

/**
 * The key of an IPv6 client whose address starts at `b[at]`, with `prefix` known bits (bytes past
 * the prefix are masked off, so an ECS address of fewer than 7 bytes may be read in place).
 */
export function clientKey6(out: ClientKey, b: Uint8Array, at: number, prefix: number): void {
  const bits = prefix < KEY_BITS6 ? prefix : KEY_BITS6
  let hi = ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0
  let lo = (b[at + 4]! << 16) | (b[at + 5]! << 8) | b[at + 6]!
  if (bits <= 32) {
    hi = bits === 0 ? 0 : (hi & (0xffffffff << (32 - bits))) >>> 0
    lo = 0
  } else {
    lo &= (0xffffff << (56 - bits)) & 0xffffff
  }
  out.keyFamily = KEY_V6
  out.keyHi = hi
  out.keyLo = lo * 64 + bits
}

export class QueryContext implements PolicyContext {
  #geoDb: GeoLookup | undefined
  #q: Query | undefined
  #source = ''
  #client: ClientInfo | undefined
  #geo: GeoInfo | undefined | null = null
  #viaEcs = false
  health!: HealthView
  trace: TraceSink | undefined
  random: () => number = Math.random
  /** Longest client prefix any step depended on; the ECS scope is this capped by the source prefix. */
  scopeBits = 0
  /**
   * The client as a cache key, filled by `computeKey` without allocating: the address masked to
   * min(source prefix, KEY_BITS4/6) and that prefix length, packed into numbers (IPv4: keyLo only,
   * addr24 * 32 + bits; IPv6: keyHi = first 32 bits, keyLo = next 24 bits * 64 + bits).
   */
  keyFamily = KEY_UNKNOWN
  keyHi = 0
  keyLo = 0

  constructor(geo: GeoLookup | undefined) {
    this.#geoDb = geo
  }

  set geoDatabase(db: GeoLookup | undefined) {
    this.#geoDb = db
  }

  get geoDatabase(): GeoLookup | undefined {
    return this.#geoDb
  }

  reset(q: Query | undefined, source: string, health: HealthView): void {
    this.#q = q
    this.#source = source
    this.#viaEcs = false
    this.#client = undefined
    this.#geo = null
    this.health = health
    this.scopeBits = 0
  }

  /**
   * The client is the ECS subnet when the query carries one (RFC 7871), else the packet source.
   * An ECS source prefix of 0 asks us not to use any client address: the client is then unknown.
   */
  get client(): ClientInfo {
    if (this.#client !== undefined) return this.#client
    const q = this.#q
    if (q !== undefined && q.ecsFamily !== 0) {
      if (q.ecsSourcePrefix === 0) this.#client = UNKNOWN_CLIENT
      else {
        const len = q.ecsFamily === 1 ? 4 : 16
        const bytes = maskBytes(q.ecsAddress.subarray(0, len), q.ecsSourcePrefix)
        this.#client = {
          address: addressText(bytes),
          family: q.ecsFamily === 1 ? 4 : 6,
          sourcePrefix: q.ecsSourcePrefix,
          bytes,
        }
      }
    } else {
      this.#client = sourceClient(this.#source)
    }
    return this.#client
  }

  geo(): GeoInfo | undefined {
    if (this.#geo === null) {
      const c = this.client
      this.#geo = c.sourcePrefix === 0 || this.#geoDb === undefined ? undefined : this.#geoDb.lookup(c.address)
    }
    return this.#geo
  }

  /** Fills keyFamily/keyHi/keyLo for the current query's client (see there). */
  computeKey(): void {
    const q = this.#q
    if (this.#client === undefined && q !== undefined && q.ecsFamily !== 0) {
      const prefix = q.ecsSourcePrefix
      if (prefix === 0) this.keyFamily = KEY_UNKNOWN
      else if (q.ecsFamily === 1) this.#key4(q.ecsAddress.readUInt32BE(0), prefix)
      else this.#key6(q.ecsAddress, prefix)
      return
    }
    if (this.#client === undefined && q !== undefined) {
      const v4 = ipv4Value(this.#source)
      if (v4 >= 0) {
        this.#key4(v4, 32)
        return
      }
    }
    const c = this.client
    if (c.sourcePrefix === 0) this.keyFamily = KEY_UNKNOWN
    else if (c.family === 4)
      this.#key4(((c.bytes[0]! << 24) | (c.bytes[1]! << 16) | (c.bytes[2]! << 8) | c.bytes[3]!) >>> 0, c.sourcePrefix)
    else this.#key6(c.bytes, c.sourcePrefix)
  }

  #key4(address: number, prefix: number): void {
    clientKey4(this, address, prefix)
  }

  #key6(b: Uint8Array, prefix: number): void {
    clientKey6(this, b, 0, prefix)
  }

  scope(bits: number): void {
    if (bits > this.scopeBits) this.scopeBits = bits
  }

  /**
   * Sets up the context for a client given directly (golden tests, `gslb explain`); `viaEcs` says
   * whether the client came as an ECS subnet, which decides whether a scope is reported.
   */
  resetFor(client: ClientInfo, viaEcs: boolean, health: HealthView): void {
    this.reset(undefined, '', health)
    this.#client = client
    this.#viaEcs = viaEcs
  }

  /** The SCOPE PREFIX-LENGTH to return: never more bits than the client sent (RFC 7871 7.2.1). */
  get ecsScope(): number {
    const q = this.#q
    if (q === undefined) return this.#viaEcs ? Math.min(this.scopeBits, this.client.sourcePrefix) : 0
    if (q.ecsFamily === 0) return 0
    return Math.min(this.scopeBits, q.ecsSourcePrefix)
  }
}

/** Client record for an address, optionally narrowed to an ECS-style subnet of `prefix` bits. */
export function clientFromText(text: string, prefix?: number): ClientInfo | undefined {
  const a = parseAddress(text)
  if (!a) return undefined
  const full = a.family === 4 ? 32 : 128
  const bits = prefix === undefined ? full : Math.min(prefix, full)
  if (bits === 0) return UNKNOWN_CLIENT
  const bytes = maskBytes(a.bytes, bits)
  return { address: addressText(bytes), family: a.family, sourcePrefix: bits, bytes }
}

/**
 * The 32-bit value of a dotted-quad IPv4 address (also as ::ffff:a.b.c.d), or -1 for anything
 * else; a character loop, so the per-query key needs no parse objects.
 */
export function ipv4Value(text: string): number {
  let i = text.charCodeAt(0) === 58 /* : */ && text.startsWith('::ffff:') ? 7 : 0
  let value = 0
  let octets = 0
  const n = text.length
  while (i < n) {
    let octet = 0
    let digits = 0
    while (i < n) {
      const c = text.charCodeAt(i)
      if (c < 48 || c > 57) break
      octet = octet * 10 + (c - 48)
      digits++
      i++
    }
    if (digits === 0 || digits > 3 || octet > 255) return -1
    value = value * 256 + octet
    octets++
    if (i === n) break
    if (text.charCodeAt(i) !== 46 /* . */ || octets === 4) return -1
    i++
    if (i === n) return -1
  }
  return octets === 4 ? value : -1
}

function sourceClient(source: string): ClientInfo {
  // IPv4 peers on a dual-stack socket show up as ::ffff:a.b.c.d.
  const text = source.startsWith('::ffff:') && isIPv4(source.slice(7)) ? source.slice(7) : source
  const a = parseAddress(text)
  if (!a) return UNKNOWN_CLIENT
  return { address: text, family: a.family, sourcePrefix: a.family === 4 ? 32 : 128, bytes: a.bytes }
}
