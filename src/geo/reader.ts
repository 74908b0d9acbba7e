/**
 * @module geo/reader
 * Client address -> GeoInfo, from one or more MaxMind DB files. Each file is probed at open for
 * the record shapes we understand and refused, naming the file, when it has none (CoreDNS
 * plugin/geoip does the same). A lookup asks every file and merges: country, subdivision and
 * location from the most detailed record, continent from the record or the continents table,
 * location falling back to the country centroid, ASN from the first file that has one, and the
 * prefix length (ECS scope) as the longest network any file placed the address in.
 *
 * Files can be watched: a changed file is re-opened and swapped in only when it passes the same
 * checks; otherwise the old reader keeps serving (gdnsd's publish-after-validate reload).
 */

import { type FSWatcher, watch as fsWatch } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { isIP } from 'node:net'
import { basename, dirname } from 'node:path'
import { Reader } from 'maxmind'
import { GeoDatabaseError } from '../errors.ts'
import type { GeoInfo, GeoPoint } from '../policy/types.ts'
import { centroidOf } from './centroids.ts'
import { continentOf, isContinentCode } from './continents.ts'

/** A geo database that cannot be used: unreadable, not an MMDB, or no known schema. */
/**
 * Record shapes we read. `geoip2-*` also covers GeoLite2 and DB-IP's MMDB editions;
 * `geolite2-asn` also covers ip-location-db's ASN files and GeoIP2-ISP (same fields).
 */
export type GeoSchema = 'geoip2-city' | 'geoip2-country' | 'geolite2-asn' | 'iplocation-city' | 'iplocation-country'

export interface GeoSourceInfo {
  readonly path: string
  readonly schema: GeoSchema
  /** Whether records also carry an ASN (always for geolite2-asn; GeoIP2 Enterprise traits). */
  readonly asn: boolean
  /** metadata database_type, e.g. "GeoLite2-City". */
  readonly databaseType: string
  readonly buildDate: Date
  readonly ipVersion: 4 | 6
  readonly nodeCount: number
  /** Bytes on disk. */
  readonly size: number
}

/** Structural subset of the pino logger, so tests can pass a recorder. */
export interface GeoLog {
  info(obj: object, msg: string): void
  warn(obj: object, msg: string): void
}

export interface GeoWatchOptions {
  /** Quiet time after the last change event before re-opening; default 1000 ms. */
  readonly debounceMs?: number
  /** Called when a changed file was refused (the previous one stays in use). */
  readonly onError?: (error: GeoDatabaseError) => void
}

/** The database used when no `--geoip` file is given (ip-location-db, country only). */
export function defaultDatabasePath(): string {
  return createRequire(import.meta.url).resolve('@ip-location-db/geo-whois-asn-country-mmdb/geo-whois-asn-country.mmdb')
}

// --- per-record extraction ---------------------------------------------------------------------

/** What one record says, in our terms; `detail` ranks records for the merge. */
interface Extract {
  readonly country: string | undefined
  readonly continent: string | undefined
  readonly subdivision: string | undefined
  readonly location: GeoPoint | undefined
  readonly asn: number | undefined
  readonly detail: number
}

type Json = { readonly [key: string]: unknown }

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined)

function countryCode(v: unknown): string | undefined {
  const s = str(v)
  return s !== undefined && /^[A-Za-z]{2}$/.test(s) ? s.toUpperCase() : undefined
}

function coordinate(v: unknown, limit: number): number | undefined {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : Number.NaN
  return Number.isFinite(n) && Math.abs(n) <= limit ? n : undefined
}

function point(lat: unknown, lon: unknown): GeoPoint | undefined {
  const la = coordinate(lat, 90)
  const lo = coordinate(lon, 180)
  return la === undefined || lo === undefined ? undefined : { lat: la, lon: lo }
}

function asnOf(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : undefined
}

function make(
  country: string | undefined,
  continent: string | undefined,
  subdivision: string | undefined,
  location: GeoPoint | undefined,
  asn: number | undefined,
): Extract {
  const detail = (country ? 1 : 0) + (subdivision ? 1 : 0) + (location ? 1 : 0)
  return { country, continent, subdivision, location, asn, detail }
}

/** GeoIP2 / GeoLite2 City, Country, Enterprise, ASN, ISP (MaxMind's documented field names). */
function extractMaxmind(r: Json): Extract {
  const c = isObject(r['country']) ? r['country'] : undefined
  const reg = isObject(r['registered_country']) ? r['registered_country'] : undefined
  // Some networks (anycast, satellite) have only the registered country.
  const country = countryCode(c?.['iso_code']) ?? countryCode(reg?.['iso_code'])
  const cont = isObject(r['continent']) ? str(r['continent']['code']) : undefined
  const continent = cont !== undefined && isContinentCode(cont) ? cont : undefined
  const subs = r['subdivisions']
  const first = Array.isArray(subs) && isObject(subs[0]) ? str(subs[0]['iso_code']) : undefined
  // MaxMind stores the part after the dash ("CA"); GeoInfo wants full ISO 3166-2 ("US-CA").
  const subdivision = first !== undefined && country !== undefined ? `${country}-${first.toUpperCase()}` : undefined
  const loc = isObject(r['location']) ? point(r['location']['latitude'], r['location']['longitude']) : undefined
  const traits = isObject(r['traits']) ? r['traits'] : undefined
  const asn = asnOf(r['autonomous_system_number']) ?? asnOf(traits?.['autonomous_system_number'])
  return make(country, continent, subdivision, loc, asn)
}

/** ip-location-db: country_code [, state1, city, latitude, longitude] or ASN fields. */
function extractIplocation(r: Json): Extract {
  const country = countryCode(r['country_code'])
  // state1 is usually a name ("California"); only code-like values can become ISO 3166-2.
  const state = str(r['state1'])
  const subdivision =
    country !== undefined && state !== undefined && /^[A-Z0-9]{1,3}$/.test(state) ? `${country}-${state}` : undefined
  const loc = point(r['latitude'], r['longitude'])
  return make(country, undefined, subdivision, loc, asnOf(r['autonomous_system_number']))
}

const NOTHING: Extract = make(undefined, undefined, undefined, undefined, undefined)

// --- schema detection --------------------------------------------------------------------------

interface Probe {
  readonly schema: GeoSchema
  readonly asn: boolean
}

/** Decides the schema from sampled records; undefined when none of ours is there. */
function classify(records: readonly Json[], databaseType: string): Probe | undefined {
  let mmGeo = false
  let mmCity = false
  let iplGeo = false
  let iplCity = false
  let asn = false
  for (const r of records) {
    const m = extractMaxmind(r)
    if (m.country !== undefined || m.continent !== undefined) mmGeo = true
    if (isObject(r['location']) || Array.isArray(r['subdivisions']) || isObject(r['city'])) mmCity = true
    if (m.asn !== undefined) asn = true
    if (countryCode(r['country_code']) !== undefined) {
      iplGeo = true
      if ('latitude' in r || 'city' in r || 'state1' in r) iplCity = true
    }
  }
  if (mmGeo) return { schema: mmCity || /city|enterprise/i.test(databaseType) ? 'geoip2-city' : 'geoip2-country', asn }
  if (iplGeo) return { schema: iplCity ? 'iplocation-city' : 'iplocation-country', asn }
  if (asn) return { schema: 'geolite2-asn', asn }
  return undefined
}

/** Reads one tree record; see the spec's "Search Tree Section" for the 28-bit nibble layout. */
function treeRecord(buf: Buffer, recordSize: number, node: number, bit: number): number {
  switch (recordSize) {
    case 24: {
      const off = node * 6 + bit * 3
      return buf.readUIntBE(off, 3)
    }
    case 28: {
      const off = node * 7
      return bit
        ? ((buf[off + 3]! & 0x0f) << 24) | buf.readUIntBE(off + 4, 3)
        : ((buf[off + 3]! & 0xf0) << 20) | buf.readUIntBE(off, 3)
    }
    default:
      return buf.readUInt32BE(node * 8 + bit * 4)
  }
}

const PROBE_WALKS = 48

/**
 * Samples addresses that hold data by random walks down the tree (seeded, so a file always
 * probes the same way): reading only the first records would see one corner of the address space.
 */
function sampleAddresses(buf: Buffer, reader: Reader<Json>): string[] {
  const { nodeCount, recordSize, ipVersion } = reader.metadata
  let seed = 0x9e3779b9
  const random = (): number => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0
    return seed / 2 ** 32
  }
  const out = new Set<string>()
  const bitsTotal = ipVersion === 6 ? 128 : 32
  for (let walk = 0; walk < PROBE_WALKS; walk++) {
    // Half the walks go straight to ::/96, the IPv4 part of an IPv6 tree.
    const v4 = ipVersion === 4 || walk % 2 === 0
    const bits = new Uint8Array(bitsTotal)
    let depth = 0
    let node = 0
    if (v4 && ipVersion === 6) {
      for (; depth < 96 && node < nodeCount; depth++) node = treeRecord(buf, recordSize, node, 0)
      if (node === nodeCount) continue
    }
    while (node < nodeCount && depth < bitsTotal) {
      const want = random() < 0.5 ? 0 : 1
      let next = treeRecord(buf, recordSize, node, want)
      let bit = want
      if (next === nodeCount) {
        bit = 1 - want
        next = treeRecord(buf, recordSize, node, bit)
      }
      if (next === nodeCount) break
      bits[depth] = bit
      depth++
      node = next
    }
    if (node > nodeCount) out.add(formatBits(bits, v4 && ipVersion === 6 ? 96 : 0, v4))
  }
  return [...out]
}

function formatBits(bits: Uint8Array, from: number, v4: boolean): string {
  const bytes: number[] = []
  for (let i = from; i < bits.length; i += 8) {
    let b = 0
    for (let j = 0; j < 8; j++) b = (b << 1) | bits[i + j]!
    bytes.push(b)
  }
  if (v4) return bytes.join('.')
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16))
  return groups.join(':')
}

// --- one open file -----------------------------------------------------------------------------

/** Decoded-record cache handed to mmdb-lib: bounded, oldest-first eviction. */
class RecordCache {
  readonly #max: number
  readonly #map = new Map<string | number, unknown>()
  constructor(max: number) {
    this.#max = max
  }
  get(key: string | number): unknown {
    return this.#map.get(key)
  }
  set(key: string | number, value: unknown): void {
    if (this.#map.size >= this.#max) {
      const oldest = this.#map.keys().next()
      if (!oldest.done) this.#map.delete(oldest.value)
    }
    this.#map.set(key, value)
  }
}

const MARKER = Buffer.from([0xab, 0xcd, 0xef, ...Buffer.from('MaxMind.com', 'ascii')])

/** An opened, checked file. Immutable: a reload makes a new one. */
class Source {
  readonly info: GeoSourceInfo
  readonly buffer: Buffer
  readonly #reader: Reader<Json>
  readonly #extract: (r: Json) => Extract
  /** mmdb-lib's cache returns the same object per record, so extraction runs once per record. */
  readonly #extracted = new WeakMap<object, Extract>()

  constructor(info: GeoSourceInfo, buffer: Buffer, reader: Reader<Json>) {
    this.info = info
    this.buffer = buffer
    this.#reader = reader
    this.#extract = info.schema.startsWith('iplocation') ? extractIplocation : extractMaxmind
  }

  /** `address` is dotted IPv4 when `v4` (plain, or taken from a mapped IPv6), IPv6 text otherwise. */
  lookup(address: string, v4: boolean): { readonly extract: Extract | undefined; readonly prefix: number } | undefined {
    // An IPv4-only tree would read the first 32 bits of an IPv6 address as if they were IPv4.
    if (!v4 && this.info.ipVersion === 4) return undefined
    let found: [Json | null, number]
    try {
      found = this.#reader.getWithPrefixLength(address)
    } catch {
      return undefined // a damaged file must not fail the query
    }
    const [record, prefix] = found
    if (record === null) return { extract: undefined, prefix }
    if (!isObject(record)) return { extract: NOTHING, prefix }
    let e = this.#extracted.get(record)
    if (e === undefined) {
      e = this.#extract(record)
      this.#extracted.set(record, e)
    }
    return { extract: e, prefix }
  }
}

const CACHE_RECORDS = 10_000

async function openSource(path: string): Promise<Source> {
  let buffer: Buffer
  try {
    buffer = await readFile(path)
  } catch (err) {
    throw new GeoDatabaseError(path, `cannot read: ${(err as Error).message}`, { cause: err })
  }
  return checkSource(path, buffer)
}

function checkSource(path: string, buffer: Buffer): Source {
  if (buffer.lastIndexOf(MARKER) < 0) {
    throw new GeoDatabaseError(path, 'not a MaxMind DB file (no metadata marker; gzip or tar.gz must be unpacked)')
  }
  let reader: Reader<Json>
  try {
    reader = new Reader<Json>(buffer, { cache: new RecordCache(CACHE_RECORDS) })
  } catch (err) {
    throw new GeoDatabaseError(path, `not a readable MaxMind DB file: ${(err as Error).message}`, { cause: err })
  }
  const m = reader.metadata
  if (
    m.binaryFormatMajorVersion !== 2 ||
    (m.ipVersion !== 4 && m.ipVersion !== 6) ||
    !Number.isInteger(m.nodeCount) ||
    m.nodeCount <= 0 ||
    m.searchTreeSize + 16 > buffer.length
  ) {
    throw new GeoDatabaseError(path, 'damaged MaxMind DB metadata (format version, ip_version or node_count)')
  }
  const databaseType = typeof m.databaseType === 'string' ? m.databaseType : ''
  const records: Json[] = []
  const keys = new Set<string>()
  try {
    for (const address of sampleAddresses(buffer, reader)) {
      const r = reader.get(address)
      if (isObject(r)) {
        records.push(r)
        for (const k of Object.keys(r)) keys.add(k)
      }
    }
  } catch (err) {
    throw new GeoDatabaseError(path, `damaged MaxMind DB data: ${(err as Error).message}`, { cause: err })
  }
  const probe = classify(records, databaseType)
  if (probe === undefined) {
    const seen = records.length === 0 ? 'no records found' : `record keys seen: ${[...keys].sort().join(', ')}`
    throw new GeoDatabaseError(
      path,
      `provides none of the known schemas (GeoIP2/GeoLite2 City or Country, GeoLite2 ASN, ip-location-db ` +
        `country/city/asn); database_type "${databaseType}", ${seen}`,
    )
  }
  const info: GeoSourceInfo = Object.freeze({
    path,
    schema: probe.schema,
    asn: probe.asn,
    databaseType,
    buildDate: m.buildEpoch,
    ipVersion: m.ipVersion,
    nodeCount: m.nodeCount,
    size: buffer.length,
  })
  return new Source(info, buffer, reader)
}

// --- addresses ---------------------------------------------------------------------------------

interface Query {
  /** Text handed to the reader. */
  readonly text: string
  readonly v4: boolean
  /** Added to IPv4 prefixes so they are in the caller's family: 96 for IPv4-mapped IPv6 input. */
  readonly shift: number
}

/** Cheap pre-check before parsing: every IPv4-mapped spelling has ":ffff:" in it. */
const MAPPED = /:ffff:/i

function toQuery(address: string): Query | undefined {
  if (typeof address !== 'string' || address.length > 100) return undefined
  // A zone index (fe80::1%eth0) says nothing about location; IPv4 has no such suffix.
  const pct = address.indexOf('%')
  const text = pct >= 0 && address.includes(':') ? address.slice(0, pct) : address
  const family = isIP(text)
  if (family === 4) return { text, v4: true, shift: 0 }
  if (family !== 6) return undefined
  // IPv4-mapped (::ffff:a.b.c.d or ::ffff:xxxx:xxxx): look up the IPv4 part, so databases
  // without the ::ffff:0:0/96 alias (ip-location-db's) still answer; report the scope in IPv6 terms.
  if (MAPPED.test(text)) {
    const bytes = ipv6Bytes(text)
    if (bytes !== undefined && isMapped(bytes)) return { text: bytes.subarray(12).join('.'), v4: true, shift: 96 }
  }
  return { text, v4: false, shift: 0 }
}

function isMapped(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false
  return b[10] === 0xff && b[11] === 0xff
}

/** 16 bytes of an address that passed isIP() === 6. */
function ipv6Bytes(text: string): Uint8Array | undefined {
  let s = text
  const lastColon = s.lastIndexOf(':')
  const tail = s.slice(lastColon + 1)
  if (tail.includes('.')) {
    const o = tail.split('.').map(Number)
    s = `${s.slice(0, lastColon + 1)}${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`
  }
  const dbl = s.indexOf('::')
  const head = dbl < 0 ? s.split(':') : s.slice(0, dbl) === '' ? [] : s.slice(0, dbl).split(':')
  const rest = dbl < 0 ? [] : s.slice(dbl + 2) === '' ? [] : s.slice(dbl + 2).split(':')
  const fill = 8 - head.length - rest.length
  if (fill < 0) return undefined
  const groups = [...head, ...Array<string>(fill).fill('0'), ...rest]
  const out = new Uint8Array(16)
  for (let i = 0; i < 8; i++) {
    const v = Number.parseInt(groups[i]!, 16)
    out[i * 2] = v >> 8
    out[i * 2 + 1] = v & 0xff
  }
  return out
}

// --- the database ------------------------------------------------------------------------------

interface Slot {
  readonly path: string
  timer: NodeJS.Timeout | undefined
  watcher: FSWatcher | undefined
  /** Serialises reloads of one file. */
  chain: Promise<void>
}

export class GeoDatabase {
  /** Published whole on reload; a lookup reads it once (one consistent set of files). */
  #sources: readonly Source[]
  /** Bumped on every reload: caches of decisions made from geo data compare it (policy/service). */
  #generation = 0
  readonly #slots: readonly Slot[]
  readonly #log: GeoLog | undefined
  #closed = false

  private constructor(sources: readonly Source[], log: GeoLog | undefined) {
    this.#sources = sources
    this.#slots = sources.map((s) => ({
      path: s.info.path,
      timer: undefined,
      watcher: undefined,
      chain: Promise.resolve(),
    }))
    this.#log = log
  }

  /**
   * Opens every file (an empty list opens the embedded default database) and checks each one;
   * the first unusable file fails the whole open with a GeoDatabaseError naming it. `log` gets
   * the reload and watch events.
   */
  static async open(paths: readonly string[], log?: GeoLog): Promise<GeoDatabase> {
    const list = paths.length === 0 ? [defaultDatabasePath()] : paths
    const sources: Source[] = []
    for (const path of list) sources.push(await openSource(path))
    // Not logged here: the caller logs describe() once, with its own context.
    return new GeoDatabase(sources, log)
  }

  get generation(): number {
    return this.#generation
  }

  /**
   * Geo data for an address, merged over all files. Undefined only for strings that are not IP
   * addresses; an address no file knows gives `{ prefixLength }` alone.
   *
   * `prefixLength` (the ECS scope) is the longest network, found or empty, among the files asked:
   * the merged answer is only constant inside all of them (an ASN file's gap next to a city record
   * still decides whether `asn` is set), so a shorter scope could let resolvers reuse a wrong answer.
   */
  lookup(address: string): GeoInfo | undefined {
    const q = toQuery(address)
    if (q === undefined) return undefined
    const sources = this.#sources
    let geo: Extract | undefined
    let asn: number | undefined
    let prefix = 0
    for (const source of sources) {
      const hit = source.lookup(q.text, q.v4)
      if (hit === undefined) continue
      if (hit.prefix > prefix) prefix = hit.prefix
      const e = hit.extract
      if (e === undefined) continue
      // Most detailed record wins; on a tie the file listed first.
      if (e.detail > 0 && (geo === undefined || e.detail > geo.detail)) geo = e
      if (asn === undefined && e.asn !== undefined) asn = e.asn
    }
    const prefixLength = prefix + (q.v4 ? q.shift : 0)
    if (geo === undefined && asn === undefined) return { prefixLength }
    const country = geo?.country
    return {
      country,
      continent: geo?.continent ?? (country === undefined ? undefined : continentOf(country)),
      subdivision: geo?.subdivision,
      asn,
      location: geo?.location ?? (country === undefined ? undefined : centroidOf(country)),
      prefixLength,
    }
  }

  /** Which files serve, with schema and build date, for startup and reload logs. */
  describe(): readonly GeoSourceInfo[] {
    return this.#sources.map((s) => s.info)
  }

  /**
   * Re-opens a file when it changes on disk (watching its directory, so geoipupdate's
   * write-then-rename is seen) and swaps it in if it passes the open-time checks.
   */
  watch(onChange?: (info: GeoSourceInfo) => void, options: GeoWatchOptions = {}): void {
    if (this.#closed) return
    const debounce = options.debounceMs ?? 1000
    this.#slots.forEach((slot, index) => {
      if (slot.watcher !== undefined) return
      const name = basename(slot.path)
      try {
        slot.watcher = fsWatch(dirname(slot.path), { persistent: false }, (_event, file) => {
          if (file !== null && file !== name) return
          if (slot.timer !== undefined) clearTimeout(slot.timer)
          slot.timer = setTimeout(() => {
            slot.timer = undefined
            slot.chain = slot.chain.then(() => this.#reload(index, onChange, options.onError))
          }, debounce)
          slot.timer.unref()
        })
        slot.watcher.on('error', (err) => this.#log?.warn({ path: slot.path, err: err.message }, 'geoip watch failed'))
      } catch (err) {
        this.#log?.warn({ path: slot.path, err: (err as Error).message }, 'geoip watch failed')
      }
    })
  }

  /** Stops watching; lookups keep working on the files last loaded. */
  close(): void {
    this.#closed = true
    for (const slot of this.#slots) {
      if (slot.timer !== undefined) clearTimeout(slot.timer)
      slot.timer = undefined
      slot.watcher?.close()
      slot.watcher = undefined
    }
  }

  async #reload(
    index: number,
    onChange: ((info: GeoSourceInfo) => void) | undefined,
    onError: ((error: GeoDatabaseError) => void) | undefined,
  ): Promise<void> {
    if (this.#closed) return
    const slot = this.#slots[index]!
    let next: Source
    try {
      const buffer = await readFile(slot.path).catch((err: unknown) => {
        throw new GeoDatabaseError(slot.path, `cannot read: ${(err as Error).message}`, { cause: err })
      })
      // Touches, attribute changes and the rename half of an atomic replace: nothing to do.
      if (buffer.equals(this.#sources[index]!.buffer)) return
      next = checkSource(slot.path, buffer)
    } catch (err) {
      const error = err instanceof GeoDatabaseError ? err : new GeoDatabaseError(slot.path, String(err), { cause: err })
      this.#log?.warn(
        { path: slot.path, err: error.message },
        'geoip database reload refused; keeping the previous one',
      )
      onError?.(error)
      return
    }
    if (this.#closed) return
    this.#sources = this.#sources.with(index, next)
    this.#generation++
    this.#log?.info(logFields(next.info), 'geoip database reloaded')
    onChange?.(next.info)
  }
}

function logFields(info: GeoSourceInfo): object {
  return {
    path: info.path,
    schema: info.schema,
    asn: info.asn,
    databaseType: info.databaseType,
    buildDate: info.buildDate.toISOString(),
    size: info.size,
  }
}
