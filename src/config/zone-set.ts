/**
 * @module config/zone-set
 * The zone directory as the server sees it: one compiled zone per file, the last good version of
 * each kept when a new one fails to load. `reload()` re-reads the directory and returns a fresh
 * ZoneTable only from zones that validated, so a broken edit never takes a zone off the air.
 */

import { createHash } from 'node:crypto'
import { type Dirent, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { nameToString } from '../dns/name.ts'
import { ConfigError, ZoneError } from '../errors.ts'
import { type CompiledZone, compileZone } from '../zone/compile.ts'
import { buildTable, type ZoneTable } from '../zone/table.ts'
import { validateServices, validateZone } from '../zone/validate.ts'
import { isZoneFile, readZoneFile } from './zone-file.ts'

export interface FileOutcome {
  readonly file: string
  /** What happened on this reload: newly (re)loaded, unchanged, rejected (old version kept or none), removed. */
  readonly status: 'loaded' | 'unchanged' | 'rejected' | 'removed'
  readonly zone: string | undefined
  readonly serial: number | undefined
  readonly errors: readonly ZoneError[]
  readonly warnings: readonly ZoneError[]
}

export interface ReloadReport {
  readonly files: readonly FileOutcome[]
  /** True when the served table changed (some zone loaded or was removed). */
  readonly changed: boolean
}

interface Loaded {
  readonly zone: CompiledZone
  readonly sources: ReadonlyMap<string, string>
  readonly fingerprint: string
}

/** Result of loading one file from scratch; shared by the server and `gslb check`. */
export interface FileLoad {
  readonly zone: CompiledZone | undefined
  readonly sources: ReadonlyMap<string, string>
  readonly errors: readonly ZoneError[]
  readonly warnings: readonly ZoneError[]
}

export function loadFile(path: string, root: string): FileLoad {
  const read = readZoneFile(path, root)
  if (read.errors.length > 0 || !read.origin)
    return { zone: undefined, sources: read.sources, errors: read.errors, warnings: [] }
  const v = validateZone(read.origin, path, read.records)
  if (!v.zone) return { zone: undefined, sources: read.sources, errors: v.errors, warnings: v.warnings }
  const conflicts = validateServices(v.zone, read.gslb.services)
  if (conflicts.length > 0) return { zone: undefined, sources: read.sources, errors: conflicts, warnings: v.warnings }
  try {
    return { zone: compileZone(v.zone, read.gslb), sources: read.sources, errors: [], warnings: v.warnings }
  } catch (e) {
    const err = new ZoneError({ file: path, line: 1 }, 'zone', `cannot compile: ${(e as Error).message}`)
    return { zone: undefined, sources: read.sources, errors: [err], warnings: v.warnings }
  }
}

function fingerprint(sources: ReadonlyMap<string, string>): string {
  const h = createHash('sha256')
  for (const [file, text] of [...sources].sort(([a], [b]) => a.localeCompare(b)))
    h.update(file).update('\0').update(text).update('\0')
  return h.digest('hex')
}

/** Whether any file that went into `loaded` reads differently now (or is gone). */
function sourcesChanged(sources: ReadonlyMap<string, string>): boolean {
  for (const [file, text] of sources) {
    try {
      if (readFileSync(file, 'utf8') !== text) return true
    } catch {
      return true
    }
  }
  return false
}

export function listZoneFiles(dir: string): string[] {
  let entries: Dirent[]
  try {
    entries = readdirSync(dir, { withFileTypes: true })
  } catch (e) {
    throw new ConfigError(`zones directory ${dir}: ${(e as Error).message}`)
  }
  return entries
    .filter((d) => d.isFile() && isZoneFile(d.name))
    .map((d) => join(dir, d.name))
    .sort()
}

export class ZoneSet {
  readonly dir: string
  #loaded = new Map<string, Loaded>()
  #table: ZoneTable = buildTable([])

  constructor(dir: string) {
    this.dir = dir
  }

  get table(): ZoneTable {
    return this.#table
  }

  reload(): ReloadReport {
    const files = listZoneFiles(this.dir)
    const outcomes: FileOutcome[] = []
    const next = new Map<string, Loaded>()
    let changed = false
    for (const file of files) {
      const prev = this.#loaded.get(file)
      if (prev && !sourcesChanged(prev.sources)) {
        next.set(file, prev)
        outcomes.push(outcome(file, 'unchanged', prev.zone))
        continue
      }
      const res = loadFile(file, this.dir)
      if (res.zone && prev && fingerprint(res.sources) === prev.fingerprint) {
        next.set(file, prev)
        outcomes.push(outcome(file, 'unchanged', prev.zone))
        continue
      }
      const clash = res.zone && [...next.values()].find((l) => l.zone.apex.key === res.zone!.apex.key)
      if (clash && res.zone) {
        const err = new ZoneError(
          { file, line: 1 },
          'zone',
          `zone ${nameToString(res.zone.apex)} is already served from ${clash.zone.file}`,
        )
        if (prev) next.set(file, prev)
        outcomes.push({ ...outcome(file, 'rejected', prev?.zone), errors: [err], warnings: res.warnings })
        continue
      }
      if (!res.zone) {
        // Keep serving the last good version: an operator's typo must not take the zone down.
        if (prev) next.set(file, prev)
        outcomes.push({ ...outcome(file, 'rejected', prev?.zone), errors: res.errors, warnings: res.warnings })
        continue
      }
      next.set(file, { zone: res.zone, sources: res.sources, fingerprint: fingerprint(res.sources) })
      outcomes.push({ ...outcome(file, 'loaded', res.zone), warnings: res.warnings })
      changed = true
    }
    for (const [file, prev] of this.#loaded) {
      if (!next.has(file)) {
        outcomes.push(outcome(file, 'removed', prev.zone))
        changed = true
      }
    }
    this.#loaded = next
    if (changed) this.#table = buildTable([...next.values()].map((l) => l.zone))
    return { files: outcomes, changed }
  }
}

function outcome(file: string, status: FileOutcome['status'], zone: CompiledZone | undefined): FileOutcome {
  return {
    file,
    status,
    zone: zone ? nameToString(zone.apex) : undefined,
    serial: zone?.serial,
    errors: [],
    warnings: [],
  }
}
