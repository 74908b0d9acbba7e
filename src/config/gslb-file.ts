/**
 * @module config/gslb-file
 * The GSLB half of a YAML zone file: `pools` of endpoints and `services` (load-balanced names with
 * a policy chain). Everything is checked here, once, with file and line for each problem; what
 * comes out is frozen and ready for the query path.
 */

import { isIPv4, isIPv6 } from 'node:net'
import { parseAddress, parseCidr } from '../dns/address.ts'
import { isSubdomain, type Name, nameToString, parseName } from '../dns/name.ts'
import { ByteSlab, type Placement } from '../dns/slab.ts'
import { RCODE, typeNumber } from '../dns/types.ts'
import type { Endpoint, GeoMatch, GeoPoint, GeoRule, Pool, StepConfig } from '../policy/types.ts'
import type { CheckConfig } from '../probe/types.ts'
import { runSync, type Steps } from '../zone/cooperative.ts'
import { MAX_TTL } from '../zone/types.ts'
import { type Interner, isMap, isScalar, isSeq, type YamlSource } from './yaml-util.ts'

export type AllDownMode =
  | { readonly kind: 'fail-open' }
  | { readonly kind: 'nodata' }
  | { readonly kind: 'servfail' }
  | { readonly kind: 'pool'; readonly pool: Pool }
  | { readonly kind: 'address'; readonly v4: readonly string[]; readonly v6: readonly string[] }
  | { readonly kind: 'cname'; readonly target: Name }

export interface GoldenTest {
  readonly line: number
  /** Client address, or the ECS subnet address when `ecsPrefix` is set. */
  readonly client: string
  readonly ecsPrefix: number | undefined
  readonly qtype: 'A' | 'AAAA'
  /** Endpoint names forced down for this case. */
  readonly down: readonly string[]
  readonly expect: readonly string[] | undefined
  readonly expectAnyOf: readonly string[] | undefined
  readonly expectPool: string | undefined
  readonly expectRcode: 'NOERROR' | 'SERVFAIL' | undefined
}

export interface ServiceConfig {
  readonly owner: Name
  readonly line: number
  readonly ttl: number
  /** TTL while a member of the answering pool is down or ramping up (gdnsd halves; configurable). */
  readonly degradedTtl: number
  /** Endpoints of the service's pools, in pool order. */
  readonly endpoints: readonly Endpoint[]
  readonly steps: readonly StepConfig[]
  readonly allDown: AllDownMode
  readonly tests: readonly GoldenTest[]
  /** Worst-case seconds an operator accepts between an endpoint dying and clients moving (issue 4 checks it). */
  readonly failoverTarget: number | undefined
}

/** An endpoint with a health check, before the zone name is known (see probeTargets). */
export interface ProbeSpec {
  readonly endpoint: string
  /** Address probed: the endpoint's `checkAddress`, the check's `address`, or the endpoint's own. */
  readonly address: string
  readonly check: CheckConfig
}

export interface GslbConfig {
  readonly pools: readonly Pool[]
  readonly endpoints: readonly Endpoint[]
  readonly services: readonly ServiceConfig[]
  readonly probes: readonly ProbeSpec[]
}

export const DEFAULT_SERVICE_TTL = 60
/** The modes without settings: one object each, shared by every service that uses it. */
const FAIL_OPEN: AllDownMode = Object.freeze({ kind: 'fail-open' })
const ALL_DOWN_NODATA: AllDownMode = Object.freeze({ kind: 'nodata' })
const ALL_DOWN_SERVFAIL: AllDownMode = Object.freeze({ kind: 'servfail' })
const NO_TESTS: readonly GoldenTest[] = Object.freeze([])
const CONTINENTS = new Set(['AF', 'AN', 'AS', 'EU', 'NA', 'OC', 'SA'])
const POOL_KEYS = ['region', 'location', 'capacity', 'spillCap', 'upThreshold', 'ttl', 'check', 'endpoints']
const ENDPOINT_KEYS = ['address', 'cname', 'weight', 'check', 'checkAddress']
const CHECK_KEYS: Record<string, readonly string[]> = {
  common: ['type', 'interval', 'timeout', 'jitter', 'rise', 'fall', 'address', 'port', 'unknownIs'],
  http: ['method', 'path', 'host', 'sni', 'ca', 'insecure', 'expect', 'body', 'bodyRegex', 'load'],
  tcp: [],
  dns: ['query', 'qtype', 'rcode', 'answer', 'transport'],
}
const SERVICE_KEYS = ['ttl', 'degradedTtl', 'pools', 'chain', 'allDown', 'tests', 'failoverTarget']
const TEST_KEYS = ['client', 'ecs', 'qtype', 'down', 'expect', 'expectAnyOf', 'expectPool', 'expectRcode']
export const STEP_NAMES = [
  'weighted',
  'geo',
  'proximity',
  'latency',
  'failover',
  'multivalue',
  'first',
  'sticky',
] as const

type Mutable<T> = { -readonly [K in keyof T]: T[K] }

/** Pools or services read between two yields of the `...Steps` parsers. */
const ENTRIES_PER_STEP = 2

export function parsePools(
  y: YamlSource,
  node: unknown,
  checks: ReadonlyMap<string, CheckConfig> = new Map(),
): { pools: Pool[]; endpoints: Endpoint[]; probes: ProbeSpec[] } {
  return runSync(parsePoolsSteps(y, node, checks))
}

/** `parsePools` as steps that yield every few pools (see zone/cooperative). */
export function* parsePoolsSteps(
  y: YamlSource,
  node: unknown,
  checks: ReadonlyMap<string, CheckConfig> = new Map(),
): Steps<{ pools: Pool[]; endpoints: Endpoint[]; probes: ProbeSpec[] }> {
  const pools: Pool[] = []
  const endpoints: Endpoint[] = []
  const probes: ProbeSpec[] = []
  const shared = y.shared
  // The address bytes of this file's endpoints, in chunks of their own (dns/slab).
  const slab = new ByteSlab()
  const checkRef = (at: unknown, field: string): CheckConfig | undefined => {
    const n = y.string(at, field)
    if (n === undefined) return undefined
    const c = checks.get(n)
    if (!c) y.error(at, field, `unknown check "${n}"; checks: ${[...checks.keys()].join(', ') || 'none defined'}`)
    return c
  }
  const endpointNames = new Map<string, number>()
  let count = 0
  for (const [poolName, keyNode, body] of y.entries(node, 'pools')) {
    if (++count % ENTRIES_PER_STEP === 0) yield
    const f = `pools.${poolName}`
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(poolName))
      y.error(keyNode, f, 'pool names use letters, digits, "-", "_" and "."')
    const entries = y.entries(body, f)
    y.checkKeys(entries, POOL_KEYS, f)
    const get = (k: string): unknown => entries.find(([key]) => key === k)?.[2]
    const region = get('region') === undefined ? undefined : y.string(get('region'), `${f}.region`)
    const pool: Mutable<Pool> = {
      index: pools.length,
      name: shared.string(poolName),
      region: region === undefined ? undefined : shared.string(region),
      location: get('location') === undefined ? undefined : location(y, get('location'), `${f}.location`),
      capacity:
        get('capacity') === undefined ? 1 : (y.number(get('capacity'), `${f}.capacity`, 0.001, 1e9, false) ?? 1),
      spillCap: get('spillCap') === undefined ? undefined : y.number(get('spillCap'), `${f}.spillCap`, 0.001, 1, false),
      upThreshold:
        get('upThreshold') === undefined ? 1 : (y.number(get('upThreshold'), `${f}.upThreshold`, 1, 1000) ?? 1),
      ttl: get('ttl') === undefined ? undefined : y.number(get('ttl'), `${f}.ttl`, 0, MAX_TTL),
      endpoints: [],
    }
    const poolCheck = get('check') === undefined ? undefined : checkRef(get('check'), `${f}.check`)
    const eps: Endpoint[] = []
    const epNode = get('endpoints')
    if (epNode === undefined) y.error(keyNode, `${f}.endpoints`, 'a pool needs at least one endpoint')
    for (const [epName, epKey, epBody] of epNode === undefined ? [] : y.entries(epNode, `${f}.endpoints`)) {
      const ef = `${f}.endpoints.${epName}`
      const prevLine = endpointNames.get(epName)
      if (prevLine !== undefined) {
        y.error(epKey, ef, `endpoint name "${epName}" is already used on line ${prevLine}; names are unique per zone`)
        continue
      }
      endpointNames.set(epName, y.pos(epKey).line)
      const ep = endpoint(y, epName, epBody, ef, pool, endpoints.length, slab)
      if (ep) {
        eps.push(ep)
        endpoints.push(ep)
        const own = isMap(epBody) ? y.entries(epBody, ef) : []
        const ownCheck = own.find(([k]) => k === 'check')?.[2]
        const check = ownCheck === undefined ? poolCheck : checkRef(ownCheck, `${ef}.check`)
        const addrNode = own.find(([k]) => k === 'checkAddress')?.[2]
        const checkAddress = addrNode === undefined ? undefined : y.string(addrNode, `${ef}.checkAddress`)
        if (checkAddress !== undefined && !isIPv4(checkAddress) && !isIPv6(checkAddress)) {
          y.error(addrNode, `${ef}.checkAddress`, `expected an IP address, got "${checkAddress}"`)
        }
        if (check) {
          const address = checkAddress ?? check.address ?? ep.address4 ?? ep.address6
          if (address === undefined)
            y.error(
              epKey,
              `${ef}.check`,
              'a CNAME endpoint needs checkAddress (or an address in the check) to be probed',
            )
          else probes.push({ endpoint: ep.name, address: shared.string(address), check })
        }
      }
    }
    if (epNode !== undefined && eps.length === 0 && !y.errors.some((e) => e.field.startsWith(`${f}.endpoints.`))) {
      y.error(epNode, `${f}.endpoints`, 'a pool needs at least one endpoint')
    }
    pool.endpoints = Object.freeze(eps)
    pools.push(Object.freeze(pool))
  }
  return { pools, endpoints, probes }
}

/** `5s`, `500ms`, `2m`; a bare number is seconds. */
function duration(y: YamlSource, node: unknown, field: string, minMs: number, maxMs: number): number | undefined {
  const v = y.scalar(node, field)
  if (v === undefined) return undefined
  let ms: number | undefined
  if (typeof v === 'number') ms = v * 1000
  else if (typeof v === 'string') {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(v.trim())
    if (m) ms = Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h']
  }
  if (ms === undefined || !Number.isFinite(ms) || ms < minMs || ms > maxMs) {
    y.error(
      node,
      field,
      `expected a duration from ${minMs}ms to ${maxMs / 1000}s like 5s or 500ms, got ${JSON.stringify(v)}`,
    )
    return undefined
  }
  return Math.round(ms)
}

/** Health checks, by name. Defaults follow HAProxy/gdnsd habits: every 5 s, 2 s timeout, rise 2, fall 3. */
export function parseChecks(y: YamlSource, node: unknown): Map<string, CheckConfig> {
  const out = new Map<string, CheckConfig>()
  for (const [name, , body] of y.entries(node, 'checks')) {
    const f = `checks.${name}`
    const e = y.entries(body, f)
    const get = (k: string): unknown => e.find(([key]) => key === k)?.[2]
    const type = get('type') === undefined ? undefined : y.string(get('type'), `${f}.type`)
    if (type !== 'http' && type !== 'https' && type !== 'tcp' && type !== 'dns') {
      y.error(get('type') ?? body, `${f}.type`, 'expected http, https, tcp or dns')
      continue
    }
    y.checkKeys(e, [...CHECK_KEYS['common']!, ...CHECK_KEYS[type === 'https' ? 'http' : type]!], f)
    const num = (k: string, min: number, max: number, dflt: number, integer = true): number =>
      get(k) === undefined ? dflt : (y.number(get(k), `${f}.${k}`, min, max, integer) ?? dflt)
    const str = (k: string): string | undefined => (get(k) === undefined ? undefined : y.string(get(k), `${f}.${k}`))
    const address = str('address')
    if (address !== undefined && !isIPv4(address) && !isIPv6(address))
      y.error(get('address'), `${f}.address`, `expected an IP address, got "${address}"`)
    const port = get('port') === undefined ? undefined : y.number(get('port'), `${f}.port`, 1, 65535)
    if (type === 'tcp' && port === undefined) y.error(body, `${f}.port`, 'a tcp check needs a port')
    const intervalMs =
      (get('interval') === undefined ? 5000 : duration(y, get('interval'), `${f}.interval`, 100, 3_600_000)) ?? 5000
    const timeoutMs =
      (get('timeout') === undefined
        ? Math.min(2000, intervalMs)
        : duration(y, get('timeout'), `${f}.timeout`, 10, 600_000)) ?? 2000
    if (timeoutMs > intervalMs) y.error(get('timeout'), `${f}.timeout`, 'the timeout must not exceed the interval')
    const unknownIs = str('unknownIs') ?? 'up'
    if (unknownIs !== 'up' && unknownIs !== 'down') y.error(get('unknownIs'), `${f}.unknownIs`, 'expected up or down')
    const common = {
      name,
      unknownIs: unknownIs === 'down' ? ('down' as const) : ('up' as const),
      intervalMs,
      timeoutMs,
      jitter: num('jitter', 0, 0.5, 0.1, false),
      rise: num('rise', 1, 100, 2),
      fall: num('fall', 1, 100, 3),
      address,
      port,
    }
    if (type === 'tcp') {
      out.set(name, Object.freeze({ ...common, kind: 'tcp' }))
    } else if (type === 'dns') {
      const transport = str('transport') ?? 'udp'
      if (transport !== 'udp' && transport !== 'tcp') y.error(get('transport'), `${f}.transport`, 'expected udp or tcp')
      const query = str('query')
      if (query === undefined) y.error(body, `${f}.query`, 'a dns check needs a query name')
      const qt = (str('qtype') ?? 'A').toUpperCase()
      if (typeNumber(qt) === undefined) y.error(get('qtype'), `${f}.qtype`, `unknown record type "${qt}"`)
      const rc = (str('rcode') ?? 'NOERROR').toUpperCase()
      if (!(rc in RCODE))
        y.error(get('rcode'), `${f}.rcode`, `expected one of ${Object.keys(RCODE).join(', ')}, got "${rc}"`)
      out.set(
        name,
        Object.freeze({
          ...common,
          kind: 'dns',
          query: query ?? '.',
          qtype: (str('qtype') ?? 'A').toUpperCase(),
          rcode: (str('rcode') ?? 'NOERROR').toUpperCase(),
          answer: str('answer'),
          transport: transport === 'tcp' ? 'tcp' : 'udp',
        }),
      )
    } else {
      const method = (str('method') ?? 'GET').toUpperCase()
      if (method !== 'GET' && method !== 'HEAD' && method !== 'POST')
        y.error(get('method'), `${f}.method`, 'expected GET, HEAD or POST')
      const statuses =
        get('expect') === undefined
          ? undefined
          : y.strings(get('expect'), `${f}.expect`).map((v) => {
              const n = Number(v)
              if (!Number.isInteger(n) || n < 100 || n > 599)
                y.error(get('expect'), `${f}.expect`, `expected HTTP status codes, got "${v}"`)
              return n
            })
      let bodyMatches: RegExp | undefined
      const re = str('bodyRegex')
      if (re !== undefined) {
        try {
          bodyMatches = new RegExp(re)
        } catch (err) {
          y.error(get('bodyRegex'), `${f}.bodyRegex`, (err as Error).message)
        }
      }
      let load: { header: string } | { json: string } | undefined
      if (get('load') !== undefined) {
        const le = y.entries(get('load'), `${f}.load`)
        y.checkKeys(le, ['header', 'json'], `${f}.load`)
        const h = le.find(([k]) => k === 'header')?.[2]
        const j = le.find(([k]) => k === 'json')?.[2]
        if (h !== undefined) load = { header: y.string(h, `${f}.load.header`) ?? '' }
        else if (j !== undefined) load = { json: y.string(j, `${f}.load.json`) ?? '' }
        else y.error(get('load'), `${f}.load`, 'give header: NAME or json: field.path')
      }
      const path = str('path') ?? '/'
      if (!path.startsWith('/')) y.error(get('path'), `${f}.path`, 'expected a path starting with /')
      out.set(
        name,
        Object.freeze({
          ...common,
          kind: type,
          method: method === 'HEAD' || method === 'POST' ? method : 'GET',
          path,
          host: str('host'),
          sni: str('sni'),
          ca: str('ca'),
          insecure: get('insecure') === undefined ? false : (y.boolean(get('insecure'), `${f}.insecure`) ?? false),
          statuses,
          bodyContains: str('body'),
          bodyMatches,
          load,
        }),
      )
    }
  }
  return out
}

function location(y: YamlSource, node: unknown, f: string): GeoPoint | undefined {
  let lat: number | undefined
  let lon: number | undefined
  if (isSeq(node) && node.items.length === 2) {
    lat = y.number(node.items[0], `${f}.lat`, -90, 90, false)
    lon = y.number(node.items[1], `${f}.lon`, -180, 180, false)
  } else if (isMap(node)) {
    const e = y.entries(node, f)
    y.checkKeys(e, ['lat', 'lon'], f)
    lat = y.number(e.find(([k]) => k === 'lat')?.[2], `${f}.lat`, -90, 90, false)
    lon = y.number(e.find(([k]) => k === 'lon')?.[2], `${f}.lon`, -180, 180, false)
  } else {
    y.error(node, f, 'expected [lat, lon] or { lat: ..., lon: ... }')
  }
  if (lat === undefined || lon === undefined) return undefined
  // Regions repeat the same few places: one object per place and file.
  return y.shared.value(`location:${numberKey(lat)},${numberKey(lon)}`, () => Object.freeze({ lat, lon }))
}

/** A number as a key that tells -0 from 0 (String(-0) is "0"). */
function numberKey(n: number): string {
  return Object.is(n, -0) ? '-0' : String(n)
}

function endpoint(
  y: YamlSource,
  name: string,
  body: unknown,
  f: string,
  pool: Pool,
  index: number,
  slab: ByteSlab,
): Endpoint | undefined {
  const shared = y.shared
  // Shorthand: `eu-1: 192.0.2.10` is an endpoint with one address and weight 1.
  const entries = isScalar(body) ? [['address', body, body] as [string, unknown, unknown]] : y.entries(body, f)
  if (!isScalar(body)) y.checkKeys(entries as never, ENDPOINT_KEYS, f)
  const get = (k: string): unknown => entries.find(([key]) => key === k)?.[2]
  let address4: string | undefined
  let address6: string | undefined
  for (const a of get('address') === undefined ? [] : y.strings(get('address'), `${f}.address`)) {
    if (isIPv4(a) && address4 === undefined) address4 = shared.string(a)
    else if (isIPv6(a) && !a.includes('%') && address6 === undefined) address6 = shared.string(a)
    else if (isIPv4(a) || isIPv6(a))
      y.error(get('address'), `${f}.address`, 'at most one IPv4 and one IPv6 address per endpoint')
    else y.error(get('address'), `${f}.address`, `expected an IPv4 or IPv6 address, got "${a}"`)
  }
  let cname: Name | undefined
  const cn = get('cname')
  if (cn !== undefined) {
    const text = y.string(cn, `${f}.cname`)
    if (text !== undefined) {
      try {
        cname = parseName(text.endsWith('.') ? text : `${text}.`)
      } catch (e) {
        y.error(cn, `${f}.cname`, (e as Error).message)
      }
    }
  }
  if (cname && (address4 || address6)) y.error(body, f, 'an endpoint has addresses or a cname, not both')
  if (!cname && !address4 && !address6 && get('address') === undefined)
    y.error(body, f, 'an endpoint needs an address or a cname')
  const weight = get('weight') === undefined ? 1 : y.number(get('weight'), `${f}.weight`, 0, 1000)
  if (weight === undefined) return undefined
  // Both addresses in one copy into the file's slab (dns/slab), so they share one chunk.
  const bytes4 = address4 === undefined ? EMPTY : parseAddress(address4)!.bytes
  const bytes6 = address6 === undefined ? EMPTY : parseAddress(address6)!.bytes
  let chunk: Buffer | undefined
  let at = 0
  if (bytes4.length + bytes6.length > 0) {
    const placed = slab.place(Buffer.concat([bytes4, bytes6]), 0, bytes4.length + bytes6.length, placement)
    chunk = placed.chunk
    at = placed.at
  }
  const at4 = address4 === undefined ? -1 : at
  const at6 = address6 === undefined ? -1 : at + bytes4.length
  return new FileEndpoint(index, shared.string(name), pool, address4, address6, cname, weight, chunk, at4, at6)
}

const EMPTY = new Uint8Array(0)
/** Where `endpoint` has its address bytes placed; read at once, so one record serves every call. */
const placement: Placement = { chunk: Buffer.alloc(0), at: 0 }

/**
 * An endpoint read from a zone file. Its rdata is cut from the file's address slab when an answer
 * is first built from it (a decision cache miss, not each query): a Buffer per address made at load
 * was 75k live objects in a 50k-endpoint zone set, most of them never answered, and full-GC pauses
 * grow with the number of live objects. Frozen like every loaded value; the private cache fields
 * are not properties, so they stay writable.
 */
class FileEndpoint implements Endpoint {
  readonly index: number
  readonly name: string
  readonly pool: Pool
  readonly address4: string | undefined
  readonly address6: string | undefined
  readonly cname: Name | undefined
  readonly weight: number
  /** Slab chunk holding the address bytes, and their offsets there (-1: no such address). */
  readonly #chunk: Buffer | undefined
  readonly #at4: number
  readonly #at6: number
  #rdata4: Buffer | undefined
  #rdata6: Buffer | undefined
  #alone: readonly Endpoint[] | undefined

  constructor(
    index: number,
    name: string,
    pool: Pool,
    address4: string | undefined,
    address6: string | undefined,
    cname: Name | undefined,
    weight: number,
    chunk: Buffer | undefined,
    at4: number,
    at6: number,
  ) {
    this.index = index
    this.name = name
    this.pool = pool
    this.address4 = address4
    this.address6 = address6
    this.cname = cname
    this.weight = weight
    this.#chunk = chunk
    this.#at4 = at4
    this.#at6 = at6
    Object.freeze(this)
  }

  get alone(): readonly Endpoint[] {
    if (this.#alone === undefined) this.#alone = Object.freeze([this])
    return this.#alone
  }

  get rdata4(): Buffer | undefined {
    if (this.#rdata4 === undefined && this.#at4 >= 0) this.#rdata4 = this.#chunk!.subarray(this.#at4, this.#at4 + 4)
    return this.#rdata4
  }

  get rdata6(): Buffer | undefined {
    if (this.#rdata6 === undefined && this.#at6 >= 0) this.#rdata6 = this.#chunk!.subarray(this.#at6, this.#at6 + 16)
    return this.#rdata6
  }
}

export function parseServices(
  y: YamlSource,
  node: unknown,
  origin: Name,
  pools: readonly Pool[],
  endpoints: readonly Endpoint[],
): ServiceConfig[] {
  return runSync(parseServicesSteps(y, node, origin, pools, endpoints))
}

/** `parseServices` as steps that yield every few services (see zone/cooperative). */
export function* parseServicesSteps(
  y: YamlSource,
  node: unknown,
  origin: Name,
  pools: readonly Pool[],
  endpoints: readonly Endpoint[],
): Steps<ServiceConfig[]> {
  const services: ServiceConfig[] = []
  const shared = y.shared
  const poolByName = new Map(pools.map((p) => [p.name, p]))
  const seen = new Map<string, number>()
  let count = 0
  for (const [ownerText, keyNode, body] of y.entries(node, 'services')) {
    if (++count % ENTRIES_PER_STEP === 0) yield
    const f = `services.${ownerText}`
    let owner: Name
    try {
      owner = parseName(ownerText, origin)
    } catch (e) {
      y.error(keyNode, f, (e as Error).message)
      continue
    }
    if (!isSubdomain(owner, origin)) {
      y.error(keyNode, f, `${nameToString(owner)} is outside the zone ${nameToString(origin)}`)
      continue
    }
    const line = y.pos(keyNode).line
    const dup = seen.get(owner.key)
    if (dup !== undefined) y.error(keyNode, f, `service ${nameToString(owner)} is already defined on line ${dup}`)
    seen.set(owner.key, line)
    const entries = y.entries(body, f)
    y.checkKeys(entries, SERVICE_KEYS, f)
    const get = (k: string): unknown => entries.find(([key]) => key === k)?.[2]

    const ttl = get('ttl') === undefined ? DEFAULT_SERVICE_TTL : (y.number(get('ttl'), `${f}.ttl`, 0, MAX_TTL) ?? 0)
    const degradedTtl =
      get('degradedTtl') === undefined
        ? Math.max(1, Math.floor(ttl / 2))
        : (y.number(get('degradedTtl'), `${f}.degradedTtl`, 0, MAX_TTL) ?? 0)

    // Not a copy of `pools` per service: a file of 1000 services has thousands of pools.
    let servicePools: readonly Pool[] = pools
    if (get('pools') !== undefined) {
      const listed: Pool[] = []
      for (const n of y.strings(get('pools'), `${f}.pools`)) {
        const p = poolByName.get(n)
        if (!p)
          y.error(
            get('pools'),
            `${f}.pools`,
            `unknown pool "${n}"; pools: ${[...poolByName.keys()].join(', ') || 'none'}`,
          )
        else listed.push(p)
      }
      servicePools = poolList(shared, listed)
    }
    if (servicePools.length === 0 && pools.length === 0) y.error(keyNode, `${f}.pools`, 'the zone defines no pools')
    const resolvePool = (n: string, at: unknown, field: string): Pool | undefined => {
      const p = poolByName.get(n)
      if (!p) y.error(at, field, `unknown pool "${n}"`)
      else if (!servicePools.includes(p)) y.error(at, field, `pool "${n}" is not one of this service's pools`)
      return p && servicePools.includes(p) ? p : undefined
    }

    const steps: StepConfig[] = []
    const chainNode = get('chain')
    if (chainNode === undefined)
      y.error(keyNode, `${f}.chain`, `a service needs a policy chain, e.g. chain: [weighted]`)
    // Settings-only steps (weighted, multivalue, sticky) and the chains made of them alone are
    // shared: most services of a large zone use one of a few such chains.
    const stepKeys: string[] = []
    for (const item of chainNode === undefined ? [] : y.list(chainNode, `${f}.chain`)) {
      const step = parseStep(y, item, `${f}.chain`, servicePools, resolvePool)
      if (!step) continue
      const key = settingsKey(step)
      if (key === undefined) steps.push(step)
      else {
        steps.push(shared.value(`step:${key}`, () => Object.freeze(step)))
        stepKeys.push(key)
      }
    }
    const chain =
      stepKeys.length === steps.length
        ? shared.value(`chain:${stepKeys.join('|')}`, () => Object.freeze(steps))
        : Object.freeze(steps)

    // The fallback pool may be any pool of the zone: it is by nature not among the usual answers.
    const anyPool: ResolvePool = (n, at, field) => {
      const p = poolByName.get(n)
      if (!p) y.error(at, field, `unknown pool "${n}"`)
      return p
    }
    const allDown = parseAllDown(y, get('allDown'), `${f}.allDown`, anyPool)
    const failoverTarget =
      get('failoverTarget') === undefined ? undefined : y.number(get('failoverTarget'), `${f}.failoverTarget`, 1, 86400)
    const tests = get('tests') === undefined ? [] : parseTests(y, get('tests'), `${f}.tests`, endpoints, poolByName)
    // A service of one pool answers from exactly that pool's (frozen) list.
    const serviceEndpoints =
      servicePools.length === 1
        ? servicePools[0]!.endpoints
        : servicePools === pools
          ? Object.freeze(pools.flatMap((p) => p.endpoints))
          : shared.value(`endpoints:${poolKey(servicePools)}`, () =>
              Object.freeze(servicePools.flatMap((p) => p.endpoints)),
            )

    services.push(
      Object.freeze({
        owner,
        line,
        ttl,
        degradedTtl: Math.min(degradedTtl, ttl),
        endpoints: serviceEndpoints,
        steps: chain,
        allDown,
        tests: tests.length === 0 ? NO_TESTS : Object.freeze(tests),
        failoverTarget,
      }),
    )
  }
  return services
}

type ResolvePool = (name: string, at: unknown, field: string) => Pool | undefined

function poolKey(pools: readonly Pool[]): string {
  let key = ''
  for (let i = 0; i < pools.length; i++) key += (i === 0 ? '' : ',') + pools[i]!.index
  return key
}

/**
 * `pools` as the file's one frozen list of those pools in that order: services, geo rules and
 * failover groups name the same few lists over and over (a geo service maps six continents onto
 * three pools).
 */
function poolList(shared: Interner, pools: readonly Pool[]): readonly Pool[] {
  return shared.value(`pools:${poolKey(pools)}`, () => Object.freeze([...pools]))
}

/**
 * For a step made of its settings alone (no pools, no maps), a key naming those settings; such a
 * step configuration can be shared by every service that writes the same. Undefined otherwise.
 */
function settingsKey(step: StepConfig): string | undefined {
  switch (step.kind) {
    case 'weighted':
      return `weighted:${step.mode}:${step.by}`
    case 'multivalue':
      return `multivalue:${step.count}:${step.shuffle}`
    case 'sticky':
      return `sticky:${step.prefix4}:${step.prefix6}`
    default:
      return undefined
  }
}

function parseStep(
  y: YamlSource,
  item: unknown,
  f: string,
  pools: readonly Pool[],
  resolvePool: ResolvePool,
): StepConfig | undefined {
  let name: string
  let opts: unknown
  if (isScalar(item)) {
    name = String(item.value)
    opts = undefined
  } else if (isMap(item) && item.items.length === 1) {
    const pair = item.items[0]!
    name = isScalar(pair.key) ? String(pair.key.value) : String(pair.key)
    opts = pair.value ?? undefined
  } else {
    y.error(item, f, 'each step is a name ("weighted") or one name with options ({ first: 2 })')
    return undefined
  }
  const sf = `${f}.${name}`
  const optEntries = (allowed: string[]): Array<[string, unknown, unknown]> => {
    if (opts === undefined || opts === null || (isScalar(opts) && opts.value === null)) return []
    const e = y.entries(opts, sf)
    y.checkKeys(e as never, allowed, sf)
    return e
  }
  const opt = (e: Array<[string, unknown, unknown]>, k: string): unknown => e.find(([key]) => key === k)?.[2]
  switch (name) {
    case 'weighted': {
      const e = optEntries(['mode', 'by'])
      const mode = opt(e, 'mode') === undefined ? 'random' : y.string(opt(e, 'mode'), `${sf}.mode`)
      const by = opt(e, 'by') === undefined ? 'endpoint' : y.string(opt(e, 'by'), `${sf}.by`)
      if (mode !== 'random' && mode !== 'smooth')
        return bad(y, opt(e, 'mode'), `${sf}.mode`, 'expected random or smooth')
      if (by !== 'endpoint' && by !== 'pool') return bad(y, opt(e, 'by'), `${sf}.by`, 'expected endpoint or pool')
      return { kind: 'weighted', mode, by }
    }
    case 'first':
    case 'multivalue': {
      let count = name === 'multivalue' ? 8 : undefined
      if (opts !== undefined && isScalar(opts) && opts.value !== null) count = y.number(opts, sf, 1, 64)
      else if (opts !== undefined && !(isScalar(opts) && opts.value === null)) {
        const e = optEntries(['count'])
        count = y.number(opt(e, 'count'), `${sf}.count`, 1, 64)
      }
      if (count === undefined) return bad(y, item, sf, `how many? e.g. { ${name}: 2 }`)
      return { kind: 'multivalue', count, shuffle: name === 'multivalue' }
    }
    case 'sticky': {
      const e = optEntries(['prefix4', 'prefix6'])
      const prefix4 = opt(e, 'prefix4') === undefined ? 24 : y.number(opt(e, 'prefix4'), `${sf}.prefix4`, 0, 32)
      const prefix6 = opt(e, 'prefix6') === undefined ? 56 : y.number(opt(e, 'prefix6'), `${sf}.prefix6`, 0, 128)
      if (prefix4 === undefined || prefix6 === undefined) return undefined
      return { kind: 'sticky', prefix4, prefix6 }
    }
    case 'failover': {
      // Default: each pool of the service is its own group, in the order the service lists them.
      if (opts === undefined || (isScalar(opts) && opts.value === null))
        return { kind: 'failover', groups: pools.map((p) => poolList(y.shared, [p])) }
      const groupsNode = isMap(opts) ? opt(optEntries(['groups']), 'groups') : opts
      const groups: (readonly Pool[])[] = []
      for (const g of y.list(groupsNode, `${sf}.groups`)) {
        const names = y.strings(g, `${sf}.groups`)
        const group = names.map((n) => resolvePool(n, g, `${sf}.groups`)).filter((p) => p !== undefined)
        if (group.length > 0) groups.push(poolList(y.shared, group))
      }
      return { kind: 'failover', groups }
    }
    case 'geo': {
      const e = optEntries(['continents', 'countries', 'subdivisions', 'asns', 'networks', 'default', 'spread'])
      const rules: GeoRule[] = []
      const addRules = (key: string, make: (code: string, at: unknown) => GeoMatch | undefined): void => {
        const node = opt(e, key)
        if (node === undefined) return
        for (const [code, codeNode, poolsNode] of y.entries(node, `${sf}.${key}`)) {
          const match = make(code, codeNode)
          const rulePools = y
            .strings(poolsNode, `${sf}.${key}.${code}`)
            .map((n) => resolvePool(n, poolsNode, `${sf}.${key}.${code}`))
            .filter((p) => p !== undefined)
          if (match && rulePools.length > 0) rules.push({ match, pools: poolList(y.shared, rulePools) })
        }
      }
      addRules('continents', (code, at) =>
        CONTINENTS.has(code)
          ? y.shared.value(`continent:${code}`, () => Object.freeze({ kind: 'continent', code }))
          : bad(y, at, `${sf}.continents`, `unknown continent "${code}"; use ${[...CONTINENTS].join(', ')}`),
      )
      addRules('countries', (code, at) =>
        /^[A-Z]{2}$/.test(code)
          ? y.shared.value(`country:${code}`, () => Object.freeze({ kind: 'country', code }))
          : bad(y, at, `${sf}.countries`, `expected an ISO 3166-1 code like DE, got "${code}"`),
      )
      addRules('subdivisions', (code, at) =>
        /^[A-Z]{2}-[A-Z0-9]{1,3}$/.test(code)
          ? y.shared.value(`subdivision:${code}`, () => Object.freeze({ kind: 'subdivision', code }))
          : bad(y, at, `${sf}.subdivisions`, `expected an ISO 3166-2 code like US-CA, got "${code}"`),
      )
      addRules('asns', (code, at) => {
        const n = Number(code.replace(/^AS/i, ''))
        return Number.isInteger(n) && n > 0 && n < 2 ** 32
          ? { kind: 'asn', asn: n }
          : bad(y, at, `${sf}.asns`, `expected an AS number like 64496 or AS64496, got "${code}"`)
      })
      addRules('networks', (code, at) => {
        const c = parseCidr(code)
        return typeof c === 'string' ? bad(y, at, `${sf}.networks`, c) : { kind: 'cidr', ...c }
      })
      const fallback = poolList(
        y.shared,
        opt(e, 'default') === undefined
          ? []
          : y
              .strings(opt(e, 'default'), `${sf}.default`)
              .map((n) => resolvePool(n, opt(e, 'default'), `${sf}.default`))
              .filter((p) => p !== undefined),
      )
      const spread = opt(e, 'spread') === undefined ? false : (y.boolean(opt(e, 'spread'), `${sf}.spread`) ?? false)
      if (rules.length === 0 && fallback.length === 0)
        return bad(y, item, sf, 'a geo step needs at least one rule or a default')
      return { kind: 'geo', rules, fallback, spread }
    }
    case 'proximity': {
      const e = optEntries(['bias', 'spread'])
      const bias = new Map<string, number>()
      const biasNode = opt(e, 'bias')
      for (const [p, pNode, v] of biasNode === undefined ? [] : y.entries(biasNode, `${sf}.bias`)) {
        if (resolvePool(p, pNode, `${sf}.bias`)) {
          const b = y.number(v, `${sf}.bias.${p}`, -99, 99)
          if (b !== undefined) bias.set(y.shared.string(p), b)
        }
      }
      for (const p of pools)
        if (!p.location) y.error(item, sf, `pool "${p.name}" has no location; proximity needs one per pool`)
      const spread = opt(e, 'spread') === undefined ? false : (y.boolean(opt(e, 'spread'), `${sf}.spread`) ?? false)
      return { kind: 'proximity', bias, spread }
    }
    case 'latency': {
      const e = optEntries(['vantages', 'default', 'table', 'hysteresis'])
      // Continent codes name continents; `country:XX` forces a country (AF, AS, NA, SA are both).
      const countryVantages = new Map<string, string>()
      const continentVantages = new Map<string, string>()
      const vNode = opt(e, 'vantages')
      for (const [region, , codes] of vNode === undefined ? [] : y.entries(vNode, `${sf}.vantages`)) {
        for (const code of y.strings(codes, `${sf}.vantages.${region}`)) {
          const forced = /^country:([A-Z]{2})$/.exec(code)?.[1]
          if (forced) countryVantages.set(forced, y.shared.string(region))
          else if (CONTINENTS.has(code)) continentVantages.set(code, y.shared.string(region))
          else if (/^[A-Z]{2}$/.test(code)) countryVantages.set(code, y.shared.string(region))
          else
            y.error(
              codes,
              `${sf}.vantages.${region}`,
              `expected continent or country codes (EU, DE, country:NA), got "${code}"`,
            )
        }
      }
      const defaultText = opt(e, 'default') === undefined ? undefined : y.string(opt(e, 'default'), `${sf}.default`)
      const defaultVantage = defaultText === undefined ? undefined : y.shared.string(defaultText)
      const table = new Map<string, Map<string, number>>()
      const tNode = opt(e, 'table')
      for (const [vantage, , row] of tNode === undefined ? [] : y.entries(tNode, `${sf}.table`)) {
        const m = new Map<string, number>()
        for (const [p, pNode, ms] of y.entries(row, `${sf}.table.${vantage}`)) {
          const v = y.number(ms, `${sf}.table.${vantage}.${p}`, 0, 100000, false)
          if (resolvePool(p, pNode, `${sf}.table.${vantage}`) && v !== undefined) m.set(y.shared.string(p), v)
        }
        table.set(y.shared.string(vantage), m)
      }
      const hysteresis =
        opt(e, 'hysteresis') === undefined ? 0.2 : y.number(opt(e, 'hysteresis'), `${sf}.hysteresis`, 0, 0.9, false)
      const dv =
        defaultVantage ??
        continentVantages.values().next().value ??
        countryVantages.values().next().value ??
        table.keys().next().value
      if (dv === undefined)
        return bad(y, item, sf, 'a latency step needs vantages (client region -> vantage) or a default vantage')
      if (hysteresis === undefined) return undefined
      return { kind: 'latency', countryVantages, continentVantages, defaultVantage: dv, table, hysteresis }
    }
    default:
      return bad(y, item, f, `unknown step "${name}"; steps: ${STEP_NAMES.join(', ')}`)
  }
}

function bad(y: YamlSource, at: unknown, field: string, detail: string): undefined {
  y.error(at, field, detail)
  return undefined
}

function parseAllDown(y: YamlSource, node: unknown, f: string, resolvePool: ResolvePool): AllDownMode {
  if (node === undefined) return FAIL_OPEN
  if (isScalar(node)) {
    const v = String(node.value)
    if (v === 'fail-open') return FAIL_OPEN
    if (v === 'nodata') return ALL_DOWN_NODATA
    if (v === 'servfail') return ALL_DOWN_SERVFAIL
    y.error(
      node,
      f,
      `expected fail-open, nodata, servfail, { pool: NAME }, { address: [...] } or { cname: NAME }, got "${v}"`,
    )
    return FAIL_OPEN
  }
  const e = y.entries(node, f)
  y.checkKeys(e, ['pool', 'address', 'cname'], f)
  if (e.length !== 1) {
    y.error(node, f, 'give exactly one of pool, address, cname')
    return FAIL_OPEN
  }
  const [kind, , value] = e[0]!
  if (kind === 'pool') {
    const name = y.string(value, `${f}.pool`)
    const pool = name === undefined ? undefined : resolvePool(name, value, `${f}.pool`)
    return pool ? { kind: 'pool', pool } : FAIL_OPEN
  }
  if (kind === 'cname') {
    const text = y.string(value, `${f}.cname`)
    try {
      if (text !== undefined) return { kind: 'cname', target: parseName(text.endsWith('.') ? text : `${text}.`) }
    } catch (err) {
      y.error(value, `${f}.cname`, (err as Error).message)
    }
    return FAIL_OPEN
  }
  const addrs = y.strings(value, `${f}.address`)
  const v4 = addrs.filter((a) => isIPv4(a))
  const v6 = addrs.filter((a) => isIPv6(a))
  for (const a of addrs)
    if (!isIPv4(a) && !isIPv6(a)) y.error(value, `${f}.address`, `expected IP addresses, got "${a}"`)
  return { kind: 'address', v4, v6 }
}

function parseTests(
  y: YamlSource,
  node: unknown,
  f: string,
  endpoints: readonly Endpoint[],
  pools: ReadonlyMap<string, Pool>,
): GoldenTest[] {
  const out: GoldenTest[] = []
  for (const item of y.list(node, f)) {
    const e = y.entries(item, f)
    y.checkKeys(e, TEST_KEYS, f)
    const get = (k: string): unknown => e.find(([key]) => key === k)?.[2]
    const line = y.pos(item).line
    let client: string | undefined
    let ecsPrefix: number | undefined
    if (get('ecs') !== undefined) {
      const c = parseCidr(y.string(get('ecs'), `${f}.ecs`) ?? '')
      if (typeof c === 'string') y.error(get('ecs'), `${f}.ecs`, c)
      else {
        client = String(y.string(get('ecs'), `${f}.ecs`)).split('/')[0]
        ecsPrefix = c.prefix
      }
    } else if (get('client') !== undefined) {
      client = y.string(get('client'), `${f}.client`)
      if (client !== undefined && !isIPv4(client) && !isIPv6(client)) {
        y.error(get('client'), `${f}.client`, `expected an IP address, got "${client}"`)
        client = undefined
      }
    } else {
      y.error(item, f, 'a test needs a client address or an ecs subnet')
    }
    const qtype = get('qtype') === undefined ? 'A' : y.string(get('qtype'), `${f}.qtype`)
    if (qtype !== 'A' && qtype !== 'AAAA') y.error(get('qtype'), `${f}.qtype`, 'expected A or AAAA')
    const down = get('down') === undefined ? [] : y.strings(get('down'), `${f}.down`)
    for (const d of down) {
      if (!endpoints.some((ep) => ep.name === d)) y.error(get('down'), `${f}.down`, `unknown endpoint "${d}"`)
    }
    const expect = get('expect') === undefined ? undefined : y.strings(get('expect'), `${f}.expect`)
    const expectAnyOf = get('expectAnyOf') === undefined ? undefined : y.strings(get('expectAnyOf'), `${f}.expectAnyOf`)
    const expectPool = get('expectPool') === undefined ? undefined : y.string(get('expectPool'), `${f}.expectPool`)
    if (expectPool !== undefined && !pools.has(expectPool))
      y.error(get('expectPool'), `${f}.expectPool`, `unknown pool "${expectPool}"`)
    const rc = get('expectRcode') === undefined ? undefined : y.string(get('expectRcode'), `${f}.expectRcode`)
    if (rc !== undefined && rc !== 'NOERROR' && rc !== 'SERVFAIL')
      y.error(get('expectRcode'), `${f}.expectRcode`, 'expected NOERROR or SERVFAIL')
    if (expect === undefined && expectAnyOf === undefined && expectPool === undefined && rc === undefined) {
      y.error(item, f, 'a test needs expect, expectAnyOf, expectPool or expectRcode')
    }
    if (client === undefined || (qtype !== 'A' && qtype !== 'AAAA')) continue
    out.push(
      Object.freeze({
        line,
        client,
        ecsPrefix,
        qtype,
        down,
        expect,
        expectAnyOf,
        expectPool,
        expectRcode: rc === 'NOERROR' || rc === 'SERVFAIL' ? rc : undefined,
      }),
    )
  }
  return out
}
