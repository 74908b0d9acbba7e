/**
 * @module zone/validate
 * Turns the records of one zone file into checked RRsets, or into the complete list of what is
 * wrong with them. Runs once per load; the compiler after it may assume every rule here holds.
 */

import type { ServiceConfig } from '../config/gslb-file.ts'
import { isSubdomain, type Name, nameFromWire, nameToString } from '../dns/name.ts'
import { T, typeName } from '../dns/types.ts'
import { type SourcePos, ZoneError } from '../errors.ts'
import { runSync, type Steps } from './cooperative.ts'
import type { RR } from './types.ts'

export interface RRset {
  readonly owner: Name
  readonly type: number
  readonly ttl: number
  readonly rdatas: readonly Buffer[]
  readonly pos: SourcePos
}

/** Names of one zone with their RRsets, keyed by lowercase wire key. */
export interface ZoneData {
  readonly apex: Name
  readonly file: string
  readonly soa: RRset
  /** SOA serial, for logs and metrics. */
  readonly serial: number
  readonly nodes: ReadonlyMap<string, ReadonlyMap<number, RRset>>
  readonly names: ReadonlyMap<string, Name>
}

export interface ValidationResult {
  readonly zone: ZoneData | undefined
  readonly errors: readonly ZoneError[]
  /** Problems that do not stop the zone from serving (what BIND or Knot would log and accept). */
  readonly warnings: readonly ZoneError[]
}

/** Types that may sit beside a CNAME (RFC 2181 10.1 and the DNSSEC records RFC 4035 allows). */
const CNAME_COMPANIONS = new Set<number>([T.CNAME, T.RRSIG, T.NSEC])
/** What may live at a zone cut besides NS: DS and its signatures, and address glue for in-domain NS. */
const AT_CUT = new Set<number>([T.NS, T.DS, T.RRSIG, T.NSEC, T.A, T.AAAA])
const GLUE = new Set<number>([T.A, T.AAAA])
/** Wire size of an RR without its owner name: type, class, TTL, rdlength. */
const RR_FIXED = 10

/** Records or names checked between two yields of `validateZoneSteps`. */
const PER_STEP = 8

/** An RRset as it is being collected; `seen` is made only once the set is large (see `addRdata`). */
interface OpenSet {
  owner: Name
  ttl: number
  rdatas: Buffer[]
  seen: Set<string> | undefined
  pos: SourcePos
}

export function validateZone(apex: Name, file: string, records: readonly RR[]): ValidationResult {
  return runSync(validateZoneSteps(apex, file, records))
}

/** `validateZone` as steps that yield every few dozen records or names (see zone/cooperative). */
export function* validateZoneSteps(apex: Name, file: string, records: readonly RR[]): Steps<ValidationResult> {
  const errors: ZoneError[] = []
  const warnings: ZoneError[] = []
  const nodes = new Map<string, Map<number, OpenSet>>()
  const names = new Map<string, Name>()

  let count = 0
  for (const rr of records) {
    if (++count % PER_STEP === 0) yield
    if (!isSubdomain(rr.owner, apex)) {
      errors.push(new ZoneError(rr.pos, 'owner', `${nameToString(rr.owner)} is outside the zone ${nameToString(apex)}`))
      continue
    }
    if (rr.type === T.DNAME) {
      errors.push(new ZoneError(rr.pos, 'type', 'DNAME records are not supported by this server'))
      continue
    }
    let node = nodes.get(rr.owner.key)
    if (!node) {
      node = new Map()
      nodes.set(rr.owner.key, node)
      names.set(rr.owner.key, rr.owner)
    }
    let set = node.get(rr.type)
    if (!set) {
      set = { owner: rr.owner, ttl: rr.ttl, rdatas: [], seen: undefined, pos: rr.pos }
      node.set(rr.type, set)
    } else if (set.ttl !== rr.ttl) {
      // RFC 2181 5.2: one TTL per RRset. BIND and Knot keep going with the first; so do we, loudly.
      warnings.push(
        new ZoneError(
          rr.pos,
          'TTL',
          `TTL ${rr.ttl} differs from ${set.ttl} used earlier for ${nameToString(rr.owner)} ${typeName(rr.type)} (line ${set.pos.line}); using ${set.ttl}`,
        ),
      )
    }
    addRdata(set, rr.rdata)
  }

  const filePos: SourcePos = { file, line: 1 }
  const apexNode = nodes.get(apex.key)
  const soaSet = apexNode?.get(T.SOA)
  if (!soaSet) errors.push(new ZoneError(filePos, 'SOA', `zone ${nameToString(apex)} has no SOA record at its apex`))
  else if (soaSet.rdatas.length > 1)
    errors.push(new ZoneError(soaSet.pos, 'SOA', 'more than one SOA record at the apex (RFC 1035 allows exactly one)'))
  if (!apexNode?.get(T.NS)) errors.push(new ZoneError(soaSet?.pos ?? filePos, 'NS', 'the apex has no NS records'))

  // Zone cuts: NS below the apex. Everything beneath a cut belongs to the child zone.
  const cuts: Name[] = []
  const cutKeys = new Map<string, Name>()
  for (const [key, node] of nodes) {
    if (++count % PER_STEP === 0) yield
    const owner = names.get(key)!
    if (key !== apex.key && node.has(T.NS)) {
      cuts.push(owner)
      cutKeys.set(key, owner)
    }
    if (key !== apex.key && node.has(T.SOA)) {
      errors.push(new ZoneError(node.get(T.SOA)!.pos, 'SOA', `SOA record at ${nameToString(owner)}, not at the apex`))
    }
  }

  count = 0
  for (const [key, node] of nodes) {
    if (++count % PER_STEP === 0) yield
    const owner = names.get(key)!
    const cname = node.get(T.CNAME)
    if (cname) {
      if (cname.rdatas.length > 1) errors.push(new ZoneError(cname.pos, 'CNAME', 'more than one CNAME at one name'))
      for (const [type, set] of node) {
        if (!CNAME_COMPANIONS.has(type)) {
          errors.push(
            new ZoneError(
              set.pos,
              'CNAME',
              `${nameToString(owner)} has a CNAME and ${typeName(type)} data (a CNAME must stand alone, RFC 1034 3.6.2)`,
            ),
          )
        }
      }
    }
    if (owner.key.startsWith('\x01*') && node.has(T.NS)) {
      warnings.push(
        new ZoneError(node.get(T.NS)!.pos, 'NS', 'NS records at a wildcard name have undefined meaning (RFC 4592 4.2)'),
      )
    }
    const cut = cutAbove(cutKeys, owner, apex)
    const atCut = key !== apex.key && node.has(T.NS)
    for (const [type, set] of node) {
      if ((cut && !GLUE.has(type)) || (atCut && !AT_CUT.has(type))) {
        const by = cut ?? owner
        warnings.push(
          new ZoneError(
            set.pos,
            'owner',
            `${nameToString(owner)} ${typeName(type)} is below the delegation at ${nameToString(by)} and is ignored`,
          ),
        )
        node.delete(type)
        continue
      }
      let size = 0
      for (const r of set.rdatas) size += owner.wire.length + RR_FIXED + r.length
      if (size > 65535 - 12 - 260) {
        errors.push(
          new ZoneError(
            set.pos,
            'rdata',
            `the ${typeName(type)} RRset at ${nameToString(owner)} cannot fit in one DNS message`,
          ),
        )
      }
    }
  }

  // In-domain name servers of a delegation need glue, or resolvers cannot reach them (RFC 9471).
  for (const c of cuts) {
    const ns = nodes.get(c.key)?.get(T.NS)
    if (!ns) continue
    for (const r of ns.rdatas) {
      const target = readName(r, 0)
      if (target && isSubdomain(target, c)) {
        const t = nodes.get(target.key)
        if (!t?.has(T.A) && !t?.has(T.AAAA)) {
          warnings.push(
            new ZoneError(ns.pos, 'NS', `delegation ${nameToString(c)} to ${nameToString(target)} has no glue address`),
          )
        }
      }
    }
  }

  if (errors.length > 0 || !soaSet) return { zone: undefined, errors, warnings }

  const frozen = new Map<string, ReadonlyMap<number, RRset>>()
  count = 0
  for (const [key, node] of nodes) {
    if (++count % PER_STEP === 0) yield
    const m = new Map<number, RRset>()
    for (const [type, s] of node)
      m.set(type, Object.freeze({ owner: s.owner, type, ttl: s.ttl, rdatas: s.rdatas, pos: s.pos }))
    frozen.set(key, m)
  }
  const soaRdata = soaSet.rdatas[0]!
  const serial = soaRdata.readUInt32BE(soaRdata.length - 20)
  const soa = frozen.get(apex.key)!.get(T.SOA)!
  return { zone: { apex, file, soa, serial, nodes: frozen, names }, errors, warnings }
}

/** RFC 2181 5: an RRset is a set, so exact duplicates collapse. Small sets compare bytes; large ones hash. */
function addRdata(set: OpenSet, rdata: Buffer): void {
  const rdatas = set.rdatas
  if (set.seen === undefined) {
    for (const r of rdatas) if (r.equals(rdata)) return
    rdatas.push(rdata)
    if (rdatas.length >= 16) set.seen = new Set(rdatas.map((r) => r.toString('latin1')))
    return
  }
  const key = rdata.toString('latin1')
  if (set.seen.has(key)) return
  set.seen.add(key)
  rdatas.push(rdata)
}

/**
 * The highest delegation at or strictly above `owner` (`self` says which), found by walking up the
 * owner's labels: one Map probe per label instead of a scan of every cut per name.
 */
function cutAbove(cutKeys: ReadonlyMap<string, Name>, owner: Name, apex: Name, self = false): Name | undefined {
  if (cutKeys.size === 0) return undefined
  let found = self ? cutKeys.get(owner.key) : undefined
  let key = owner.key
  for (let labels = owner.labels; labels > apex.labels + 1; labels--) {
    key = key.slice(key.charCodeAt(0) + 1)
    found = cutKeys.get(key) ?? found
  }
  return found
}

/** Reads an uncompressed wire name from rdata (names in stored rdata are never compressed). */
export function readName(buf: Buffer, offset: number): Name | undefined {
  let o = offset
  while (o < buf.length && buf[o] !== 0) o += buf[o]! + 1
  if (o >= buf.length) return undefined
  return nameFromWire(Buffer.from(buf.subarray(offset, o + 1)))
}

const COLLIDING_TYPES = [T.CNAME, T.A, T.AAAA] as const

/**
 * Where a load-balanced name collides with the zone's static data, in steps of a few services.
 * It runs near the end of a file's load, when a live reload has allocated most of the new table
 * and V8 is most likely marking: in one piece it took 1-7 ms alone but 94-148 ms there
 * (BENCHMARKS.md, "Scale").
 */
export function* validateServicesSteps(zone: ZoneData, services: readonly ServiceConfig[]): Steps<ZoneError[]> {
  const errors: ZoneError[] = []
  if (services.length === 0) return errors
  const cutKeys = new Map<string, Name>()
  let count = 0
  for (const [key, node] of zone.nodes) {
    if (++count % PER_STEP === 0) yield
    if (key !== zone.apex.key && node.has(T.NS)) cutKeys.set(key, zone.names.get(key)!)
  }
  for (const s of services) {
    if (++count % PER_STEP === 0) yield
    const node = zone.nodes.get(s.owner.key)
    for (const type of COLLIDING_TYPES) {
      const set = node?.get(type)
      if (set) {
        errors.push(
          new ZoneError(
            { file: zone.file, line: s.line },
            `services.${nameToString(s.owner)}`,
            `${nameToString(s.owner)} also has a static ${typeName(type)} record (line ${set.pos.line}); a service answers A and AAAA itself`,
          ),
        )
      }
    }
    const cut = isSubdomain(s.owner, zone.apex) ? cutAbove(cutKeys, s.owner, zone.apex, true) : undefined
    if (cut)
      errors.push(
        new ZoneError(
          { file: zone.file, line: s.line },
          `services.${nameToString(s.owner)}`,
          `${nameToString(s.owner)} is at or below the delegation ${nameToString(cut)}`,
        ),
      )
  }
  return errors
}
