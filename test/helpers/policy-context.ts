/**
 * Builders for policy tests: pools and endpoints from a compact spec, and a hand-made
 * PolicyContext with a seeded random source, health from plain sets and maps, and a record of the
 * ECS scope and trace lines a step produced.
 */

import { seededRandom } from '../../src/policy/random.ts'
import type {
  ClientInfo,
  Endpoint,
  GeoInfo,
  GeoPoint,
  HealthView,
  PolicyContext,
  Pool,
  TraceSink,
} from '../../src/policy/types.ts'

export interface PoolSpec {
  /** Number of endpoints, named `<pool>-1` … `<pool>-N` (default 1). */
  readonly endpoints?: number
  /** One weight for all endpoints, or one per endpoint (default 1). */
  readonly weight?: number | readonly number[]
  readonly capacity?: number
  readonly location?: GeoPoint
  readonly upThreshold?: number
  readonly region?: string
}

export interface TestPools {
  /** Pools in spec order (index = position). */
  readonly pools: readonly Pool[]
  /** Every endpoint, pool by pool (index = position). */
  readonly endpoints: readonly Endpoint[]
  pool(name: string): Pool
  endpoint(name: string): Endpoint
  /** The endpoints of the named pools, in spec order. */
  of(...poolNames: string[]): Endpoint[]
}

/** Builds one service's pools: `makePools({ eu: { endpoints: 3, weight: 1, capacity: 1, location } })`. */
export function makePools(spec: Readonly<Record<string, PoolSpec>>): TestPools {
  const pools: Pool[] = []
  const endpoints: Endpoint[] = []
  let poolIndex = 0
  for (const [name, s] of Object.entries(spec)) {
    const members: Endpoint[] = []
    const pool: Pool = {
      index: poolIndex,
      name,
      region: s.region,
      location: s.location,
      capacity: s.capacity ?? 1,
      upThreshold: s.upThreshold ?? 1,
      endpoints: members,
      ttl: undefined,
    }
    const count = s.endpoints ?? (Array.isArray(s.weight) ? s.weight.length : 1)
    for (let i = 0; i < count; i++) {
      const weight = typeof s.weight === 'number' ? s.weight : (s.weight?.[i] ?? 1)
      const address4 = `10.${poolIndex}.${i >> 8}.${i & 0xff}`
      const address6 = `2001:db8:${poolIndex.toString(16)}::${(i + 1).toString(16)}`
      const e: Endpoint = {
        index: endpoints.length,
        name: `${name}-${i + 1}`,
        pool,
        address4,
        address6,
        rdata4: Buffer.from(parseAddress(address4).bytes),
        rdata6: Buffer.from(parseAddress(address6).bytes),
        cname: undefined,
        weight,
      }
      members.push(e)
      endpoints.push(e)
    }
    pools.push(pool)
    poolIndex++
  }
  const byPool = new Map(pools.map((p) => [p.name, p]))
  const byEndpoint = new Map(endpoints.map((e) => [e.name, e]))
  return {
    pools,
    endpoints,
    pool(name) {
      const p = byPool.get(name)
      if (p === undefined) throw new Error(`no pool ${name} in test pools`)
      return p
    },
    endpoint(name) {
      const e = byEndpoint.get(name)
      if (e === undefined) throw new Error(`no endpoint ${name} in test pools`)
      return e
    },
    of(...poolNames) {
      return endpoints.filter((e) => poolNames.includes(e.pool.name))
    },
  }
}

/** mulberry32, the same seedable PRNG golden tests and `gslb explain --seed` use. */
export const mulberry32 = seededRandom

/** Parses an IPv4 or IPv6 address into its bytes. Throws on anything else. */
export function parseAddress(text: string): { family: 4 | 6; bytes: Uint8Array } {
  if (!text.includes(':')) {
    const parts = text.split('.')
    if (parts.length !== 4) throw new Error(`bad IPv4 address ${text}`)
    const bytes = new Uint8Array(parts.map((p) => Number.parseInt(p, 10)))
    return { family: 4, bytes }
  }
  let body = text
  const tail: number[] = []
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(body)
  if (v4 !== null) {
    const b = parseAddress(v4[1]!).bytes
    tail.push((b[0]! << 8) | b[1]!, (b[2]! << 8) | b[3]!)
    body = body.slice(0, -v4[1]!.length)
    if (body.endsWith(':') && !body.endsWith('::')) body = body.slice(0, -1)
  }
  const groups = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => Number.parseInt(g, 16)))
  const halves = body.split('::')
  let words: number[]
  if (halves.length === 2) {
    const head = groups(halves[0]!)
    const rest = [...groups(halves[1]!), ...tail]
    words = [...head, ...new Array<number>(8 - head.length - rest.length).fill(0), ...rest]
  } else {
    words = [...groups(body), ...tail]
  }
  if (words.length !== 8 || words.some((w) => !(w >= 0 && w <= 0xffff))) throw new Error(`bad IPv6 address ${text}`)
  const bytes = new Uint8Array(16)
  words.forEach((w, i) => {
    bytes[2 * i] = w >> 8
    bytes[2 * i + 1] = w & 0xff
  })
  return { family: 6, bytes }
}

/** ClientInfo for `address`, vouched for up to `sourcePrefix` bits (bytes beyond it zeroed). */
export function makeClient(address: string, sourcePrefix?: number): ClientInfo {
  const { family, bytes } = parseAddress(address)
  const bits = sourcePrefix ?? (family === 4 ? 32 : 128)
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - 8 * i))
    bytes[i]! &= (0xff << (8 - keep)) & 0xff
  }
  return { address, family, sourcePrefix: bits, bytes }
}

export interface ContextOptions {
  /** Client address (the ECS address or packet source); default 198.51.100.7. */
  readonly client?: string
  /** ECS source prefix; default the full address. */
  readonly ecsPrefix?: number
  /** What `ctx.geo()` returns. */
  readonly geo?: GeoInfo
  /** Names of endpoints that are down. Read live: tests may change the set between calls. */
  readonly down?: ReadonlySet<string>
  /** Effective weight per endpoint name; the configured weight otherwise. Read live. */
  readonly weights?: ReadonlyMap<string, number>
  /** Measured RTT in ms per vantage, then pool name. Read live. */
  readonly rtt?: ReadonlyMap<string, ReadonlyMap<string, number>>
  /** Names of endpoints in slow start. */
  readonly recovering?: ReadonlySet<string>
  /** Seed of the random source (default 1). */
  readonly seed?: number
  /** Record trace lines (default true); false leaves `ctx.trace` undefined. */
  readonly trace?: boolean
}

export interface TestContext extends PolicyContext {
  /** The largest bits passed to `scope()`, or undefined when never called. */
  readonly scoped: number | undefined
  /** Trace lines, in order (empty when tracing is off). */
  readonly lines: readonly string[]
  /** Number of `geo()` calls. */
  readonly geoCalls: number
}

const EMPTY_SET: ReadonlySet<string> = new Set()

/** Health from plain sets and maps. */
export function makeHealth(options: ContextOptions = {}): HealthView {
  const down = options.down ?? EMPTY_SET
  const recovering = options.recovering ?? EMPTY_SET
  return {
    up: (e) => !down.has(e.name),
    weight: (e) => options.weights?.get(e.name) ?? e.weight,
    recovering: (e) => recovering.has(e.name),
    rtt: (pool, vantage) => options.rtt?.get(vantage)?.get(pool.name),
  }
}

/** A PolicyContext for one decision (or a series of them sharing the random source). */
export function makeContext(options: ContextOptions = {}): TestContext {
  const client = makeClient(options.client ?? '198.51.100.7', options.ecsPrefix)
  const random = mulberry32(options.seed ?? 1)
  const health = makeHealth(options)
  const lines: string[] = []
  const trace: TraceSink | undefined = options.trace === false ? undefined : { note: (text) => lines.push(text) }
  let scoped: number | undefined
  let geoCalls = 0
  return {
    client,
    health,
    trace,
    lines,
    random,
    geo() {
      geoCalls++
      return options.geo
    },
    scope(bits) {
      if (scoped === undefined || bits > scoped) scoped = bits
    },
    get scoped() {
      return scoped
    },
    get geoCalls() {
      return geoCalls
    },
  }
}

/** Names of a step's answer, for readable expectations. */
export function namesOf(endpoints: readonly Endpoint[]): string[] {
  return endpoints.map((e) => e.name)
}

/** A random IPv4 address string from `random`. */
export function randomIPv4(random: () => number): string {
  const n = Math.floor(random() * 4294967296)
  return `${n >>> 24}.${(n >>> 16) & 0xff}.${(n >>> 8) & 0xff}.${n & 0xff}`
}

/** Pearson's chi-square statistic of observed counts against expected proportions (any scale). */
export function chiSquare(observed: readonly number[], expectedRatio: readonly number[]): number {
  const n = observed.reduce((a, b) => a + b, 0)
  const total = expectedRatio.reduce((a, b) => a + b, 0)
  let stat = 0
  observed.forEach((o, i) => {
    const expected = (n * expectedRatio[i]!) / total
    stat += (o - expected) ** 2 / expected
  })
  return stat
}

/** Critical values of the chi-square distribution at p = 0.001, by degrees of freedom (1..10). */
export const CHI2_CRITICAL_P001: readonly number[] = [
  Number.NaN,
  10.828,
  13.816,
  16.266,
  18.467,
  20.515,
  22.458,
  24.322,
  26.124,
  27.877,
  29.588,
]
