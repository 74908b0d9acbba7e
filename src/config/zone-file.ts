/**
 * @module config/zone-file
 * Reads one zone file into records. Two formats share the record syntax of RFC 1035:
 *
 * - `*.zone`: a plain master file, as BIND, NSD and Knot read it. The origin is `$ORIGIN` when the
 *   file sets one before its first record, else the file name without `.zone`.
 * - `*.yaml` / `*.yml`: our GSLB zone file. `records:` holds master-file lines verbatim; the keys
 *   beside it carry what a master file cannot (and, as they land, pools, checks and policies).
 *
 * Every problem is returned with file, line and field; nothing here throws for bad input.
 */

import { readFileSync } from 'node:fs'
import { basename, dirname, isAbsolute, relative, resolve, sep } from 'node:path'
import { isMap, isScalar, LineCounter, parseDocument, Scalar } from 'yaml'
import { type Name, parseName } from '../dns/name.ts'
import { GslbError, ZoneError } from '../errors.ts'
import { runSync, type Steps } from '../zone/cooperative.ts'
import { parseMasterFileSteps } from '../zone/masterfile.ts'
import { parseTtl } from '../zone/rdata.ts'
import { MAX_TTL, type RR } from '../zone/types.ts'
import { type GslbConfig, parseChecks, parsePoolsSteps, parseServicesSteps } from './gslb-file.ts'
import { readFastYaml } from './yaml-fast.ts'
import { YamlSource } from './yaml-util.ts'

export interface ZoneFileResult {
  readonly origin: Name | undefined
  readonly records: readonly RR[]
  readonly errors: readonly ZoneError[]
  /** Every file read (the zone file and its $INCLUDEs), so a reload can tell whether anything changed. */
  readonly sources: ReadonlyMap<string, string>
  /** Pools and services of a YAML zone file (empty for master files). */
  readonly gslb: GslbConfig
}

export const NO_GSLB: GslbConfig = Object.freeze({ pools: [], endpoints: [], services: [], probes: [] })

export const ZONE_EXTENSIONS = ['.zone', '.yaml', '.yml'] as const

/** Keys of the YAML zone format, with what each holds (the error for an unknown key lists them). */
const YAML_KEYS = {
  zone: 'the zone apex, e.g. example.com (default: the file name)',
  ttl: 'default TTL for records without one, seconds or BIND units like 1h',
  records: 'RFC 1035 master-file lines, as a literal block (records: |)',
  checks: 'health checks that pools and endpoints refer to',
  pools: 'pools of endpoints for load-balanced names',
  services: 'load-balanced names and their policy chains',
} as const

export function isZoneFile(name: string): boolean {
  return !name.startsWith('.') && ZONE_EXTENSIONS.some((ext) => name.endsWith(ext))
}

/** Origin implied by a file name: `example.com.zone` -> `example.com.`. */
export function originFromFileName(path: string): string {
  const base = basename(path)
  const ext = ZONE_EXTENSIONS.find((e) => base.endsWith(e)) ?? ''
  return base.slice(0, base.length - ext.length) + '.'
}

/**
 * `$INCLUDE` may only name files inside the zone directory: zone files come from operators, but a
 * path like /etc/shadow in one should not end up in error messages or logs.
 */
function includeReader(root: string, sources: Map<string, string>) {
  return (path: string, fromFile: string): { file: string; text: string } => {
    const full = isAbsolute(path) ? path : resolve(dirname(fromFile), path)
    const rel = relative(resolve(root), full)
    if (rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
      throw new GslbError(`$INCLUDE ${path} is outside the zone directory ${root}`)
    }
    const text = readFileSync(full, 'utf8')
    sources.set(full, text)
    return { file: full, text }
  }
}

export function readZoneFile(path: string, root: string = dirname(path)): ZoneFileResult {
  return runSync(readZoneFileSteps(path, root))
}

/** `readZoneFile` as steps that yield every few dozen records or entries (see zone/cooperative). */
export function* readZoneFileSteps(path: string, root: string = dirname(path)): Steps<ZoneFileResult> {
  const sources = new Map<string, string>()
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (e) {
    const err = new ZoneError({ file: path, line: 0 }, 'file', (e as Error).message)
    return { origin: undefined, records: [], errors: [err], sources, gslb: NO_GSLB }
  }
  sources.set(path, text)
  const readInclude = includeReader(root, sources)
  if (path.endsWith('.zone')) return { ...(yield* parseMaster(path, text, readInclude)), sources, gslb: NO_GSLB }
  return { gslb: NO_GSLB, ...(yield* parseYamlZone(path, text, readInclude)), sources }
}

type IncludeReader = ReturnType<typeof includeReader>

function* parseMaster(
  path: string,
  text: string,
  readInclude: IncludeReader,
): Steps<{ origin: Name | undefined; records: readonly RR[]; errors: ZoneError[] }> {
  let origin: Name | undefined
  try {
    origin = parseName(originFromFileName(path))
  } catch {
    origin = undefined
  }
  const res = yield* parseMasterFileSteps(text, { file: path, ...(origin ? { origin } : {}), readInclude })
  // A $ORIGIN in the file decides the apex: it is how BIND users name the zone inside the file.
  const apex = res.origin ?? origin
  const errors = [...res.errors]
  if (!apex)
    errors.push(new ZoneError({ file: path, line: 1 }, 'origin', 'no $ORIGIN and the file name is not a domain name'))
  return { origin: apex, records: res.records, errors }
}

type YamlZone = { origin: Name | undefined; records: readonly RR[]; errors: ZoneError[]; gslb?: GslbConfig }

function* parseYamlZone(path: string, text: string, readInclude: IncludeReader): Steps<YamlZone> {
  const lc = new LineCounter()
  const errors: ZoneError[] = []
  const lineOf = (offset: number | undefined): number => (offset === undefined ? 1 : lc.linePos(offset).line)
  // The fast reader takes the plain YAML zone files are written in; anything else, and every
  // syntax error, goes through yaml itself (in one piece: a live reload pauses for it).
  let root: unknown = yield* readFastYaml(text, lc)
  if (root === undefined) {
    const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true })
    for (const e of doc.errors)
      errors.push(new ZoneError({ file: path, line: lineOf(e.pos[0]) }, 'yaml', e.message.split('\n')[0]!))
    if (errors.length > 0) return { origin: undefined, records: [], errors }
    root = doc.contents
  }
  if (!isMap(root)) {
    errors.push(
      new ZoneError({ file: path, line: 1 }, 'yaml', 'a zone file must be a mapping with keys zone, ttl, records'),
    )
    return { origin: undefined, records: [], errors }
  }

  let origin: Name | undefined
  let defaultTtl: number | undefined
  let recordsNode: Scalar | undefined
  let poolsNode: unknown
  let servicesNode: unknown
  let checksNode: unknown
  let zoneText = originFromFileName(path)
  let zoneLine = 1
  for (const pair of root.items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key)
    const keyLine = lineOf(isScalar(pair.key) ? pair.key.range?.[0] : undefined)
    const pos = { file: path, line: keyLine }
    const value = pair.value
    if (!(key in YAML_KEYS)) {
      const known = Object.entries(YAML_KEYS)
        .map(([k, v]) => `${k} (${v})`)
        .join('; ')
      errors.push(new ZoneError(pos, key, `unknown key; known keys: ${known}`))
      continue
    }
    if (key === 'pools' || key === 'services' || key === 'checks') {
      if (key === 'pools') poolsNode = value
      else if (key === 'checks') checksNode = value
      else servicesNode = value
      continue
    }
    if (!isScalar(value)) {
      errors.push(new ZoneError(pos, key, 'expected a single value, not a list or mapping'))
      continue
    }
    if (key === 'zone') {
      zoneText = String(value.value)
      zoneLine = keyLine
      if (!zoneText.endsWith('.')) zoneText += '.'
    } else if (key === 'ttl') {
      const ttl = parseTtl(String(value.value), MAX_TTL)
      if (ttl === undefined || ttl > MAX_TTL)
        errors.push(
          new ZoneError(pos, 'ttl', `expected 0..${MAX_TTL} seconds or units like 1h, got "${String(value.value)}"`),
        )
      else defaultTtl = ttl
    } else if (key === 'records') {
      if (typeof value.value !== 'string')
        errors.push(new ZoneError(pos, 'records', 'expected master-file lines as text (records: |)'))
      else if (value.type === Scalar.BLOCK_FOLDED)
        errors.push(
          new ZoneError(
            pos,
            'records',
            'use a literal block (records: |), not a folded one (>): folding joins the lines',
          ),
        )
      else recordsNode = value
    }
  }
  try {
    origin = parseName(zoneText)
  } catch (e) {
    errors.push(new ZoneError({ file: path, line: zoneLine }, 'zone', (e as Error).message))
  }
  if (!recordsNode) {
    if (errors.length === 0)
      errors.push(
        new ZoneError({ file: path, line: 1 }, 'records', 'missing; a zone needs at least its SOA and NS records'),
      )
    return { origin, records: [], errors }
  }
  if (!origin) return { origin, records: [], errors }
  const headerLine = lineOf(recordsNode.range?.[0])
  const firstLine = recordsNode.type === Scalar.BLOCK_LITERAL ? headerLine + 1 : headerLine
  const res = yield* parseMasterFileSteps(String(recordsNode.value), {
    file: path,
    origin,
    firstLine,
    readInclude,
    ...(defaultTtl !== undefined ? { defaultTtl } : {}),
  })
  errors.push(...res.errors)
  // Pools before services: services refer to pools by name.
  const y = new YamlSource(path, lc, errors)
  const checks = checksNode === undefined ? new Map() : parseChecks(y, checksNode)
  const { pools, endpoints, probes } =
    poolsNode === undefined ? { pools: [], endpoints: [], probes: [] } : yield* parsePoolsSteps(y, poolsNode, checks)
  const services =
    servicesNode === undefined ? [] : yield* parseServicesSteps(y, servicesNode, origin, pools, endpoints)
  return { origin, records: res.records, errors, gslb: Object.freeze({ pools, endpoints, services, probes }) }
}
