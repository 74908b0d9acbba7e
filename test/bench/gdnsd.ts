/**
 * gdnsd 3.x as a side-by-side comparison target for the benchmark (test/bench/run.ts).
 *
 *   const bin = gdnsdAvailable()                       // undefined: no gdnsd 3.x installed
 *   const t = await startGdnsd({ port, cpu: 0, scratch })
 *   ... dnsperf -s 127.0.0.1 -p PORT ...
 *   await t.stop()
 *
 * The config template in test/bench/gdnsd/ serves the same names as test/bench/zones/ (see the
 * README there). startGdnsd() copies it into a fresh directory under `scratch`, adds what only
 * exists at run time (listen address, run/state dirs, the static zone, the geo database), and runs
 * `gdnsd -c DIR start` in the foreground, pinned with taskset when `cpu` is given. gdnsd listens
 * on 127.0.0.1:PORT only (UDP and TCP) and monitors nothing, so it sends no traffic of its own.
 */

import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import {
  accessSync,
  constants,
  copyFileSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  writeFileSync,
} from 'node:fs'
import { delimiter, join } from 'node:path'
import { GEO_ROWS } from '../../geoip/tools/build-test-dbs.ts'
import { type MmdbEntry, type MmdbMap, writeMmdb } from '../../geoip/tools/mmdb-writer.ts'
import { GeoDatabase } from '../../src/geo/reader.ts'
import { exited, shellQuote, waitExit, waitReady } from './process.ts'

const ROOT = new URL('../../', import.meta.url).pathname.replace(/\/$/, '')
const TEMPLATE_DIR = join(ROOT, 'test/bench/gdnsd')
/** Copied in at start so the static zone has one source of truth (gdnsd reads it verbatim). */
const STATIC_ZONE = join(ROOT, 'test/bench/zones/bench.example.zone')
/**
 * Appended to that copy: gdnsd serves no zone inside another one, so gslb.bench.example's
 * records join the bench.example zone (path relative to DIR/zones, origin given explicitly).
 */
const GSLB_INCLUDE = '$INCLUDE includes/gslb.bench.example gslb.bench.example.'
/** Name of the GeoIP2 database the template's geoip maps load (from DIR/geoip/). */
const GEO_DB_NAME = 'bench-geo.mmdb'
const HOST = '127.0.0.1'
/** The client the benchmark puts in every geo/latency/sticky query's ECS option (run.ts ECS_UK_24). */
const BENCH_ECS_CLIENT = '81.2.69.0'
const READY_TIMEOUT_MS = 15_000
const STDERR_CAP = 64 * 1024

export interface GdnsdTarget {
  /** The command line, shell-quoted, for reports (as run.ts shows its own targets). */
  readonly command: string
  /** gdnsd's version, e.g. "3.8.1". */
  readonly version: string
  readonly port: number
  /** gdnsd's pid, for CPU accounting from /proc/PID/stat; undefined if the spawn failed. */
  readonly pid: number | undefined
  /** The config directory it runs from (inside the caller's scratch dir). */
  readonly configDir: string
  /**
   * SIGTERM, then SIGKILL after 5 s. Resolves with the exit code: 0 for a clean shutdown (gdnsd
   * ends a SIGTERM'd `start` by re-raising the signal, which Node reports as no exit code at all),
   * null when it had to be killed or died of another signal.
   */
  stop(): Promise<number | null>
  /** What gdnsd wrote to stderr (its log), capped at 64 KiB. */
  stderr(): string
}

export interface GdnsdOptions {
  /** Port on 127.0.0.1 to answer on, UDP and TCP. */
  readonly port: number
  /** Pin gdnsd (all its threads) to this CPU with `taskset -c`. */
  readonly cpu?: number | undefined
  /** A directory the caller owns and removes; the config dir is created inside it. */
  readonly scratch: string
  /**
   * udp_threads and tcp_threads. Default 1: our server is one single-threaded process on one
   * CPU, and pinned gdnsd threads would only time-slice that same core.
   */
  readonly threads?: number | undefined
  /**
   * A GeoIP2/GeoLite2 Country or City .mmdb to use instead of the generated one (e.g. a real
   * GeoLite2-City for a full-size lookup tree). Must know 81.2.69.0/24 for geo.* to answer eu.
   */
  readonly geoip2Db?: string | undefined
  /** The gdnsd binary; default gdnsdAvailable(). */
  readonly binary?: string | undefined
}

// ---------------------------------------------------------------------------------------------
// Finding gdnsd

/** "3.8.1" from the usage text gdnsd prints for an unknown flag, or undefined. */
function gdnsdVersion(binary: string): string | undefined {
  // gdnsd has no --version; any invalid invocation prints "gdnsd version X" and exits 2.
  const r = spawnSync(binary, ['-h'], { encoding: 'utf8', timeout: 5000 })
  if (r.error) return undefined
  return /gdnsd version (\S+)/.exec(`${r.stdout}${r.stderr}`)?.[1]
}

/**
 * Path of a gdnsd 3.x binary, or undefined. $GDNSD wins; then PATH, then /usr/sbin and
 * /usr/local/sbin (Debian installs it in sbin, which is not on every user's PATH). Only 3.x:
 * the template uses 3.x config (run_dir, state_dir, $include in options).
 */
export function gdnsdAvailable(): string | undefined {
  const fromEnv = process.env['GDNSD']
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin'].filter(Boolean)
  const candidates = fromEnv ? [fromEnv] : dirs.map((d) => join(d, 'gdnsd'))
  for (const path of candidates) {
    try {
      accessSync(path, constants.X_OK)
    } catch {
      continue
    }
    if (gdnsdVersion(path)?.startsWith('3.')) return path
  }
  return undefined
}

// ---------------------------------------------------------------------------------------------
// Config directory

/** A vscf (gdnsd config syntax) double-quoted string. */
function vscfString(s: string): string {
  return `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`
}

/** The network of `address` at `prefix` bits, e.g. 81.2.69.0 /18 -> 81.2.64.0/18 (IPv4 only). */
function ipv4Network(address: string, prefix: number): string {
  const n = address.split('.').reduce((acc, o) => acc * 256 + Number(o), 0)
  const base = prefix === 0 ? 0 : n - (n % 2 ** (32 - prefix))
  return `${[24, 16, 8, 0].map((s) => Math.floor(base / 2 ** s) % 256).join('.')}/${prefix}`
}

/** A GeoIP2-Country record: the two fields gdnsd's geoip map reads (continent, then country). */
function countryRecord(continent: string, country: string): MmdbMap {
  const c: MmdbMap = { iso_code: country, names: { en: country } }
  return { continent: { code: continent, names: { en: continent } }, country: c, registered_country: c }
}

/**
 * The GeoIP2-Country database for the geoip maps. gdnsd needs `continent.code`/`country.iso_code`
 * records; the bundled default database (ip-location-db) only has `country_code`, and the test
 * fixtures cover documentation ranges only, not the benchmark's ECS subnet. So it is built here:
 *  - the benchmark's client network exactly as our server sees it: looked up in the bundled
 *    default database (81.2.69.0 -> GB, continent EU, /18), so both servers route it to eu
 *    with the same ECS scope;
 *  - the fixture table (documentation and private ranges, test/fixtures/geo/README.md), so the
 *    self-check can exercise the NA, AS and default branches without real networks.
 */
async function buildGeoDb(): Promise<Buffer> {
  const entries: MmdbEntry[] = GEO_ROWS.map((r) => ({
    network: r.network,
    data: countryRecord(r.continent, r.country),
  }))
  const db = await GeoDatabase.open([])
  try {
    const hit = db.lookup(BENCH_ECS_CLIENT)
    if (hit?.continent === undefined || hit.country === undefined) {
      throw new Error(`the bundled geo database does not place ${BENCH_ECS_CLIENT}; cannot build ${GEO_DB_NAME}`)
    }
    entries.push({
      network: ipv4Network(BENCH_ECS_CLIENT, hit.prefixLength),
      data: countryRecord(hit.continent, hit.country),
    })
  } finally {
    db.close()
  }
  return writeMmdb(entries, {
    databaseType: 'GeoIP2-Country',
    languages: ['en'],
    description: { en: 'gslb-dns benchmark: gdnsd comparison target (generated at start)' },
  })
}

/** Copies the template into a fresh dir under `scratch` and fills in the run-time parts. */
async function prepareConfigDir(opts: GdnsdOptions): Promise<string> {
  const dir = mkdtempSync(join(opts.scratch, 'gdnsd-'))
  cpSync(TEMPLATE_DIR, dir, {
    recursive: true,
    // The README is for people; gdnsd would not read it, but keep the dir to what it uses.
    filter: (src) => !src.endsWith('.md'),
  })
  writeFileSync(
    join(dir, 'zones', 'bench.example'),
    `${readFileSync(STATIC_ZONE, 'utf8')}\n; Appended by test/bench/gdnsd.ts (see test/bench/gdnsd/README.md)\n${GSLB_INCLUDE}\n`,
  )
  mkdirSync(join(dir, 'geoip'), { recursive: true })
  const geoDb = join(dir, 'geoip', GEO_DB_NAME)
  if (opts.geoip2Db !== undefined) copyFileSync(opts.geoip2Db, geoDb)
  else writeFileSync(geoDb, await buildGeoDb())
  const threads = opts.threads ?? 1
  // Merged into `options` by the template's $include. run_dir (control socket, lock, cookie
  // key) and state_dir (admin_state) default to /run/gdnsd and /var/lib/gdnsd, which another
  // instance may own: keep both private to this scratch dir.
  writeFileSync(
    join(dir, 'runtime-options'),
    [
      '# Written by test/bench/gdnsd.ts at start; merged into `options` in ./config.',
      `listen => [ ${vscfString(`${HOST}:${opts.port}`)} ]`,
      `run_dir => ${vscfString(join(dir, 'run'))}`,
      `state_dir => ${vscfString(join(dir, 'state'))}`,
      `udp_threads => ${threads}`,
      `tcp_threads => ${threads}`,
      '',
    ].join('\n'),
  )
  return dir
}

// ---------------------------------------------------------------------------------------------
// Process

/** Children not yet exited: killed if this process exits first, so gdnsd never outlives us. */
const live = new Set<ChildProcess>()
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL')
})

/**
 * Starts gdnsd on 127.0.0.1:`port` and resolves once it answers a query there. Throws (after
 * stopping it) with gdnsd's log if it exits or stays silent for 15 s.
 */
export async function startGdnsd(opts: GdnsdOptions): Promise<GdnsdTarget> {
  const binary = opts.binary ?? gdnsdAvailable()
  if (binary === undefined) throw new Error('gdnsd 3.x not found (apt-get install gdnsd, or set GDNSD=/path/to/gdnsd)')
  const version = gdnsdVersion(binary) ?? 'unknown'
  const dir = await prepareConfigDir(opts)
  // `start` = foreground, logging to stderr (no -l, no daemonize) so we own the process.
  const gdnsdArgs = [binary, '-c', dir, 'start']
  const argv = opts.cpu === undefined ? gdnsdArgs : ['taskset', '-c', String(opts.cpu), ...gdnsdArgs]
  // No NOTIFY_SOCKET: if this runs under systemd, gdnsd must not notify it as if it were the unit.
  const { NOTIFY_SOCKET: _, ...env } = process.env
  const child = spawn(argv[0]!, argv.slice(1), { cwd: dir, env, stdio: ['ignore', 'ignore', 'pipe'] })
  live.add(child)
  child.once('exit', () => live.delete(child))
  let err = ''
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    if (err.length < STDERR_CAP) err += d
  })
  const spawnError = new Promise<never>((_, reject) => child.once('error', reject))
  const target: GdnsdTarget = {
    command: shellQuote(argv),
    version,
    port: opts.port,
    pid: child.pid,
    configDir: dir,
    stderr: () => err,
    async stop() {
      // Never spawned (the 'error' path): there is no process and no 'exit' event to wait for.
      if (child.pid === undefined) return null
      if (!exited(child)) {
        child.kill('SIGTERM')
        if (!(await waitExit(child, 5000))) {
          child.kill('SIGKILL')
          await waitExit(child, 2000)
        }
      }
      // gdnsd's documented clean SIGTERM exit is re-raising the signal: count it as 0.
      if (child.signalCode === 'SIGTERM') return 0
      return child.exitCode
    },
  }
  try {
    await Promise.race([waitReady(opts.port, child, READY_TIMEOUT_MS, 'www.bench.example'), spawnError])
  } catch (e) {
    await target.stop()
    throw new Error(`gdnsd did not start: ${(e as Error).message}\n${target.command}\n${err}`)
  }
  return target
}
