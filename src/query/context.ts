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
}

const UNKNOWN_CLIENT: ClientInfo = Object.freeze({
  address: '0.0.0.0',
  family: 4,
  sourcePrefix: 0,
  bytes: new Uint8Array(4),
})

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

  constructor(geo: GeoLookup | undefined) {
    this.#geoDb = geo
  }

  set geoDatabase(db: GeoLookup | undefined) {
    this.#geoDb = db
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

function sourceClient(source: string): ClientInfo {
  // IPv4 peers on a dual-stack socket show up as ::ffff:a.b.c.d.
  const text = source.startsWith('::ffff:') && isIPv4(source.slice(7)) ? source.slice(7) : source
  const a = parseAddress(text)
  if (!a) return UNKNOWN_CLIENT
  return { address: text, family: a.family, sourcePrefix: a.family === 4 ? 32 : 128, bytes: a.bytes }
}
