/**
 * @module config/zone-set
 * The zone directory as the server sees it: one compiled zone per file, the last good version of
 * each kept when a new one fails to load. `reload()` re-reads the directory and returns a fresh
 * ZoneTable only from zones that validated, so a broken edit never takes a zone off the air.
 *
 * `reload()` runs in one piece (startup, `gslb check`); `reloadSliced()` does the same work in
 * slices of a few milliseconds and lets the event loop answer queries between them (live reloads
 * of large zone sets), then swaps the table whole, exactly like `reload()`.
 */

import { createHash } from 'node:crypto'
import { type Dirent, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { nameToString } from '../dns/name.ts'
import { ConfigError, ZoneError } from '../errors.ts'
import { type CompiledZone, compileZoneSteps } from '../zone/compile.ts'
import { DEFAULT_SLICE_MS, runSliced, runSync, type SliceStats, type Steps } from '../zone/cooperative.ts'
import { buildTable, buildTableSteps, type ZoneTable } from '../zone/table.ts'
import { validateServicesSteps, validateZoneSteps } from '../zone/validate.ts'
import { isZoneFile, readZoneFileSteps } from './zone-file.ts'

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
  /** A sliced reload's pauses and longest slice (zone/cooperative); absent for `reload()`. */
  readonly slices?: Readonly<SliceStats>
}

interface Loaded {
  readonly zone: CompiledZone
  /** SHA-256 of every file that went into the zone (it and its $INCLUDEs), not their text: zone sets get large. */
  readonly digests: ReadonlyMap<string, string>
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
  return runSync(loadFileSteps(path, root))
}

/** `loadFile` as steps (see zone/cooperative). */
export function* loadFileSteps(path: string, root: string): Steps<FileLoad> {
  const read = yield* readZoneFileSteps(path, root)
  if (read.errors.length > 0 || !read.origin)
    return { zone: undefined, sources: read.sources, errors: read.errors, warnings: [] }
  const v = yield* validateZoneSteps(read.origin, path, read.records)
  if (!v.zone) return { zone: undefined, sources: read.sources, errors: v.errors, warnings: v.warnings }
  const conflicts = yield* validateServicesSteps(v.zone, read.gslb.services)
  if (conflicts.length > 0) return { zone: undefined, sources: read.sources, errors: conflicts, warnings: v.warnings }
  try {
    const zone = yield* compileZoneSteps(v.zone, read.gslb)
    return { zone, sources: read.sources, errors: [], warnings: v.warnings }
  } catch (e) {
    const err = new ZoneError({ file: path, line: 1 }, 'zone', `cannot compile: ${(e as Error).message}`)
    return { zone: undefined, sources: read.sources, errors: [err], warnings: v.warnings }
  }
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex')
}

function digestsOf(sources: ReadonlyMap<string, string>): Map<string, string> {
  return new Map([...sources].map(([file, text]) => [file, sha256(text)]))
}

function fingerprint(digests: ReadonlyMap<string, string>): string {
  const h = createHash('sha256')
  for (const [file, digest] of [...digests].sort(([a], [b]) => a.localeCompare(b)))
    h.update(file).update('\0').update(digest).update('\0')
  return h.digest('hex')
}

/** Whether any file that went into a loaded zone reads differently now (or is gone). */
function sourcesChanged(digests: ReadonlyMap<string, string>): boolean {
  for (const [file, digest] of digests) {
    try {
      if (sha256(readFileSync(file, 'utf8')) !== digest) return true
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

/** What a reload computed, before it is made the served state. */
interface Computed {
  readonly loaded: Map<string, Loaded>
  readonly report: ReloadReport
  /** The new table when the served zones changed. */
  readonly table: ZoneTable | undefined
}

export interface SlicedReloadOptions {
  /** Milliseconds of work between two returns to the event loop (default 5). */
  readonly sliceMs?: number
  /** Called at every return to the event loop. */
  readonly onPause?: () => void
}

export class ZoneSet {
  readonly dir: string
  #loaded = new Map<string, Loaded>()
  #table: ZoneTable = buildTable([])
  /** Bumped by every synchronous reload: a sliced reload that sees it move starts over. */
  #generation = 0
  #running: Promise<ReloadReport> | undefined
  #queued: Promise<ReloadReport> | undefined

  constructor(dir: string) {
    this.dir = dir
  }

  get table(): ZoneTable {
    return this.#table
  }

  /**
   * One digest of what is served: every loaded file's name and its sources' SHA-256. Two zone sets
   * of the same directory agree on it when they read the same bytes (a handover's fresh worker and
   * the main thread, see serve.ts).
   */
  fingerprint(): string {
    const h = createHash('sha256')
    for (const [file, l] of [...this.#loaded].sort(([a], [b]) => a.localeCompare(b)))
      h.update(file).update('\0').update(l.fingerprint).update('\0')
    return h.digest('hex')
  }

  /** Re-reads the directory in one piece and swaps the table. */
  reload(): ReloadReport {
    this.#generation++
    return this.#commit(runSync(this.#compute()))
  }

  /**
   * `reload()` in slices (see the module comment): the same outcomes and the same whole-table swap,
   * but the event loop runs between slices. Calls made while one runs share one more run after it,
   * so the last call's result always reflects the directory as it was when that call was made.
   */
  reloadSliced(opts: SlicedReloadOptions = {}): Promise<ReloadReport> {
    if (this.#queued) return this.#queued
    if (this.#running) {
      const queued = this.#running
        .catch(() => undefined)
        .then(() => {
          this.#queued = undefined
          return this.#runSliced(opts)
        })
      this.#queued = queued
      return queued
    }
    return this.#runSliced(opts)
  }

  async #runSliced(opts: SlicedReloadOptions): Promise<ReloadReport> {
    const run = (async (): Promise<ReloadReport> => {
      const slices: SliceStats = { pauses: 0, longestSliceMs: 0, backoffs: 0 }
      for (;;) {
        const generation = this.#generation
        const computed = await runSliced(this.#compute(), opts.sliceMs ?? DEFAULT_SLICE_MS, opts.onPause, slices)
        // A synchronous reload in between may have read newer files than this one did: read again.
        if (generation === this.#generation) return { ...this.#commit(computed), slices }
      }
    })()
    this.#running = run
    try {
      return await run
    } finally {
      if (this.#running === run) this.#running = undefined
    }
  }

  #commit(c: Computed): ReloadReport {
    this.#loaded = c.loaded
    if (c.table) this.#table = c.table
    return c.report
  }

  /** Everything a reload does short of making it the served state. */
  *#compute(): Steps<Computed> {
    const files = listZoneFiles(this.dir)
    const outcomes: FileOutcome[] = []
    const next = new Map<string, Loaded>()
    let changed = false
    for (const file of files) {
      yield
      const prev = this.#loaded.get(file)
      if (prev && !sourcesChanged(prev.digests)) {
        next.set(file, prev)
        outcomes.push(outcome(file, 'unchanged', prev.zone))
        continue
      }
      yield
      const res = yield* loadFileSteps(file, this.dir)
      // Reading and hashing a large file takes milliseconds: steps apart from the parse's first and
      // the compile's last.
      yield
      const digests = res.zone ? digestsOf(res.sources) : new Map<string, string>()
      const print = res.zone ? fingerprint(digests) : ''
      if (res.zone && prev && print === prev.fingerprint) {
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
      next.set(file, { zone: res.zone, digests, fingerprint: print })
      outcomes.push({ ...outcome(file, 'loaded', res.zone), warnings: res.warnings })
      changed = true
    }
    for (const [file, prev] of this.#loaded) {
      if (!next.has(file)) {
        outcomes.push(outcome(file, 'removed', prev.zone))
        changed = true
      }
    }
    const table = changed ? yield* buildTableSteps([...next.values()].map((l) => l.zone)) : undefined
    return { loaded: next, report: { files: outcomes, changed }, table }
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
