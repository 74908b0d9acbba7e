/**
 * `npm run bench:scale`: the server with a large zone set. How long loading takes, how much memory
 * it holds, how fast it answers over many distinct names, and how long a live reload keeps it from
 * answering.
 *
 *   node test/bench/scale.ts [--records 100000] [--services 10000] [--endpoints 50000] [--json]
 *                            [--seconds 10] [--warmup 3] [--no-small] [--no-reload]
 *                            [--reload-via watch|sighup] [--settle-ms 5000]
 *                            [--keep DIR] [--no-pin] [--by-kind [--rounds N]]
 *
 * 1. Generates the zone set into a temp dir (layout: test/bench/scale/generate.ts): static records
 *    in 4 master files, services and endpoints in 10 gslb YAML files, documentation addresses only,
 *    no health checks.
 * 2. Starts `node src/cli.ts serve` on it, pinned to CPU 0, and measures the time from spawn to the
 *    first correct answer for a static name and for a service, the server's own load time (its
 *    "zones reloaded" log line), and VmRSS / VmHWM from /proc.
 * 3. Runs dnsperf (pinned to CPU 1, `-l 10 -c 4 -q 100`, after `--warmup` seconds of the same
 *    queries) over many distinct static names and over
 *    every service (with an ECS option, so geo, latency and sticky decide per client), then the same
 *    kinds on the small bench zones (test/bench/zones) on a second server, for comparison.
 * 4. Reload stall: sends a query every millisecond and records each answer's latency while every
 *    zone file is rewritten with a new SOA serial, which makes the server reload all of them (its
 *    directory watch, or SIGHUP with --reload-via sighup); reports the longest latency and the
 *    longest time without any answer before the reload, during it (from the trigger to 200 ms
 *    after the server's last "zones reloaded" line) and after it (from there to `--settle-ms`,
 *    default 5 s, after that line: V8 collects the old zone table in a mark-compact a second or
 *    more after the reload, which can stall the server as long as the reload did), the longest
 *    gap over during and after together, and the reload time the server logs. VmRSS / VmHWM
 *    "after the reload" are read at the end of that settle period, while the stream still runs.
 *    The trigger, end, settle end and longest gap are also printed on stderr in ms since the
 *    server was spawned, to match against --keep DIR --node-flags=--trace-gc output.
 *
 * Traffic goes to 127.0.0.1 only; every wait is bounded and children are killed on exit.
 */

import { type ChildProcess, fork, spawn, spawnSync } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { copyFile } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { seededRandom } from '../../src/policy/random.ts'
import { freePort } from '../helpers/process.ts'
import { shellQuote, waitExit } from './process.ts'
import { type ChainKind, type GeneratedZones, generateZones } from './scale/generate.ts'
import { encodeQuery, type StallFigures, type StreamResult, stallFigures } from './scale/stream.ts'

const ROOT = new URL('../../', import.meta.url).pathname.replace(/\/$/, '')
const HOST = '127.0.0.1'
const SMALL_ZONES = 'test/bench/zones'
/** ECS 81.2.69.0/24 (a UK network in the bundled geo database), as dnsperf -E and for our own queries. */
const ECS_UK = { hex: '8:00011800510245', address: '81.2.69.0', prefix: 24 }

const USAGE = `Usage: node test/bench/scale.ts [options]   (npm run bench:scale -- [options])

  --records N        static records (default 100000)
  --services N       GSLB services (default 10000)
  --endpoints N      endpoints over all services (default 50000)
  --seconds N        length of each dnsperf run (default 10)
  --warmup N         seconds of the same queries before each measured run, not counted (default
                     3; 0 = none): the first query of each service and client /24 builds its
                     decision and answer template, which a serving instance has long done
  --no-small         skip the small bench zones (second server) comparison
  --no-reload        skip the reload stall measurement
  --reload-via M     watch (rewrite files, the server's directory watch reloads; default) or
                     sighup (server started with --no-watch, files rewritten, then SIGHUP)
  --settle-ms N      keep the reload's query stream running N ms after the server's last
                     "zones reloaded" line (default 5000, at least 200): the "after the reload"
                     column covers 200 ms..N ms after it, where V8's collection of the old zone
                     table shows; VmRSS / VmHWM after the reload are read at its end
  --keep DIR         write the zone set and query files into DIR and keep them
  --no-pin           do not pin the server and dnsperf with taskset
  --serve-flags F    extra "gslb serve" flags for the large zone set's server, space-separated
                     (e.g. "--serve-flags=--reload-mode handover": the reload then ends with the handover)
  --node-flags F     extra node/V8 flags for the servers, space-separated (e.g. "--trace-gc");
                     with --keep, their non-JSON output goes to DIR/server-PORT.out (the
                     JSON log to DIR/server-PORT.out.log)
  --by-kind          also run dnsperf per chain kind (weighted, geo, failover, latency, sticky,
                     multivalue): the big set's services of that kind against the small set's
                     service of the same kind, and print their ratios (12 more dnsperf runs).
                     Both servers run meanwhile and each kind's big and small runs alternate
  --rounds N         with --by-kind: repeat the alternating runs N times (default 1) and print
                     the median of the per-round ratios
  --json             print the results as JSON
`

interface Options {
  readonly records: number
  readonly services: number
  readonly endpoints: number
  readonly seconds: number
  readonly warmup: number
  readonly small: boolean
  readonly reload: boolean
  readonly reloadVia: 'watch' | 'sighup'
  readonly settleMs: number
  readonly keep: string | undefined
  readonly pin: boolean
  readonly json: boolean
  readonly nodeFlags: readonly string[]
  readonly serveFlags: readonly string[]
  readonly byKind: boolean
  readonly rounds: number
}

function intFlag(v: string | undefined, name: string, dflt: number, min: number, max: number): number {
  if (v === undefined) return dflt
  const n = Number(v)
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name}: expected an integer ${min}..${max}`)
  return n
}

function parseOptions(argv: string[]): Options | 'help' {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      records: { type: 'string' },
      services: { type: 'string' },
      endpoints: { type: 'string' },
      seconds: { type: 'string' },
      warmup: { type: 'string' },
      'no-small': { type: 'boolean' },
      'no-reload': { type: 'boolean' },
      'reload-via': { type: 'string' },
      'settle-ms': { type: 'string' },
      keep: { type: 'string' },
      'no-pin': { type: 'boolean' },
      'node-flags': { type: 'string' },
      'serve-flags': { type: 'string' },
      json: { type: 'boolean' },
      'by-kind': { type: 'boolean' },
      rounds: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  })
  if (values.help) return 'help'
  const via = values['reload-via'] ?? 'watch'
  if (via !== 'watch' && via !== 'sighup') throw new Error('--reload-via: expected watch or sighup')
  const services = intFlag(values.services, 'services', 10_000, 0, 1_000_000)
  return {
    records: intFlag(values.records, 'records', 100_000, 100, 10_000_000),
    services,
    endpoints: intFlag(values.endpoints, 'endpoints', 50_000, services, 10_000_000),
    seconds: intFlag(values.seconds, 'seconds', 10, 1, 300),
    warmup: intFlag(values.warmup, 'warmup', 3, 0, 300),
    small: !(values['no-small'] ?? false),
    reload: !(values['no-reload'] ?? false),
    reloadVia: via,
    settleMs: intFlag(values['settle-ms'], 'settle-ms', 5000, 200, 600_000),
    keep: values.keep,
    pin: !(values['no-pin'] ?? false),
    json: values.json ?? false,
    nodeFlags: (values['node-flags'] ?? '').split(' ').filter((f) => f !== ''),
    serveFlags: (values['serve-flags'] ?? '').split(' ').filter((f) => f !== ''),
    byKind: values['by-kind'] ?? false,
    rounds: intFlag(values.rounds, 'rounds', 1, 1, 20),
  }
}

// ---------------------------------------------------------------------------------------------
// Processes

const live = new Set<ChildProcess>()
async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  child.kill('SIGTERM')
  if (!(await waitExit(child, 5000))) {
    child.kill('SIGKILL')
    await waitExit(child, 2000)
  }
}
function tasksetOk(): boolean {
  const r = spawnSync('taskset', ['-cp', String(process.pid)], { encoding: 'utf8' })
  return !r.error && r.status === 0 && cpus().length >= 2
}

/** A server's JSON log lines, as they arrive. */
interface LogLine {
  readonly at: number
  readonly msg: string
  readonly obj: Record<string, unknown>
}

interface Server {
  readonly child: ChildProcess
  readonly pid: number
  readonly port: number
  readonly command: string
  readonly spawnedAt: number
  readonly log: LogLine[]
  /** Resolves with the first log line (from index `from` on) that `match` accepts. */
  waitLog(match: (l: LogLine) => boolean, timeoutMs: number, from?: number): Promise<LogLine>
  stderr(): string
}

function startServer(
  zones: string,
  port: number,
  cpu: number | undefined,
  extra: string[] = [],
  nodeFlags: readonly string[] = [],
  rawOut?: string,
): Server {
  const args = [
    ...nodeFlags,
    'src/cli.ts',
    'serve',
    '--zones',
    zones,
    '--listen',
    `${HOST}:${port}`,
    '--log-level',
    'info',
    '--admin',
    'off',
    ...extra,
  ]
  const argv =
    cpu === undefined ? [process.execPath, ...args] : ['taskset', '-c', String(cpu), process.execPath, ...args]
  const shown = shellQuote([...(cpu === undefined ? [] : ['taskset', '-c', String(cpu)]), 'node', ...args])
  const spawnedAt = performance.now()
  const child = spawn(argv[0]!, argv.slice(1), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  live.add(child)
  child.once('exit', () => live.delete(child))
  const log: LogLine[] = []
  const waiters = new Set<() => void>()
  if (rawOut !== undefined) writeFileSync(rawOut, '')
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      const obj = JSON.parse(line) as Record<string, unknown>
      log.push({ at: performance.now(), msg: String(obj['msg'] ?? ''), obj })
      for (const w of waiters) w()
    } catch {
      if (rawOut !== undefined) appendFileSync(rawOut, `${(performance.now() - spawnedAt).toFixed(1)} ${line}\n`)
      return
    }
    // The server's own log too, on the same clock (ms since spawn), to line up with the stall figures.
    if (rawOut !== undefined) appendFileSync(`${rawOut}.log`, `${(performance.now() - spawnedAt).toFixed(1)} ${line}\n`)
  })
  let err = ''
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    if (err.length < 64 * 1024) err += d
  })
  return {
    child,
    pid: child.pid!,
    port,
    command: shown,
    spawnedAt,
    log,
    stderr: () => err,
    waitLog(match, timeoutMs, from = 0) {
      return new Promise((resolve, reject) => {
        let i = from
        const check = (): void => {
          for (; i < log.length; i++) {
            if (match(log[i]!)) {
              done()
              resolve(log[i]!)
              return
            }
          }
        }
        const onExit = (): void => {
          done()
          reject(new Error(`server exited (code ${child.exitCode}) while waiting for its log\n${err}`))
        }
        const timer = setTimeout(() => {
          done()
          reject(new Error(`no matching server log line within ${timeoutMs} ms`))
        }, timeoutMs)
        const done = (): void => {
          clearTimeout(timer)
          waiters.delete(check)
          child.off('exit', onExit)
        }
        waiters.add(check)
        child.once('exit', onExit)
        check()
      })
    },
  }
}

/** VmRSS and VmHWM of a process, in MB. */
function memory(pid: number): { rssMb: number; hwmMb: number } {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8')
    const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? Number.NaN)
    return { rssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024 }
  } catch {
    return { rssMb: Number.NaN, hwmMb: Number.NaN }
  }
}

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100

function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(f[11]) + Number(f[12])) / CLK_TCK
  } catch {
    return Number.NaN
  }
}

// ---------------------------------------------------------------------------------------------
// Readiness: the first correct answers

/** One exchange; resolves with the reply or null after `ms`. */
function exchange(port: number, msg: Buffer, ms: number): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const sock = createSocket('udp4')
    const timer = setTimeout(() => {
      sock.close()
      resolve(null)
    }, ms)
    sock.on('message', (m) => {
      clearTimeout(timer)
      sock.close()
      resolve(m)
    })
    sock.on('error', () => {})
    sock.send(msg, port, HOST)
  })
}

/** The first A address in an answer section, for a reply to a single-question query. */
function firstA(m: Buffer): string | undefined {
  let o = 12
  while (m[o] !== 0) o += m[o]! + 1
  o += 5
  const an = m.readUInt16BE(6)
  for (let i = 0; i < an && o < m.length; i++) {
    while (m[o]! !== 0 && (m[o]! & 0xc0) !== 0xc0) o += m[o]! + 1
    o += m[o] === 0 ? 1 : 2
    const type = m.readUInt16BE(o)
    const len = m.readUInt16BE(o + 8)
    if (type === 1 && len === 4) return [...m.subarray(o + 10, o + 14)].join('.')
    o += 10 + len
  }
  return undefined
}

/** Asks until a static name answers with its address and a service answers with an address. */
async function waitCorrect(s: Server, staticName: string, address: string, service: string, timeoutMs: number) {
  const deadline = performance.now() + timeoutMs
  let staticOk = false
  let serviceOk = false
  while (performance.now() < deadline) {
    if (s.child.exitCode !== null) throw new Error(`server exited with code ${s.child.exitCode}\n${s.stderr()}`)
    const [a, b] = await Promise.all([
      staticOk ? null : exchange(s.port, encodeQuery(1, staticName, 1), 50),
      serviceOk ? null : exchange(s.port, encodeQuery(2, service, 1, ECS_UK), 50),
    ])
    if (a && (a[3]! & 0xf) === 0 && firstA(a) === address) staticOk = true
    if (b && (b[3]! & 0xf) === 0 && firstA(b) !== undefined) serviceOk = true
    if (staticOk && serviceOk) return performance.now() - s.spawnedAt
    if (!a && !b) await new Promise((r) => setTimeout(r, 20))
  }
  throw new Error(`no correct answer within ${timeoutMs} ms`)
}

/** The SOA serial a zone answers with. */
async function soaSerial(port: number, zone: string): Promise<number | undefined> {
  const m = await exchange(port, encodeQuery(3, zone, 6), 2000)
  if (!m || m.readUInt16BE(6) === 0) return undefined
  // The SOA rdata ends with serial, refresh, retry, expire, minimum (5 x 32 bits).
  return m.readUInt32BE(m.length - 20)
}

// ---------------------------------------------------------------------------------------------
// dnsperf

interface Perf {
  readonly label: string
  readonly qps: number
  readonly lostPct: number
  readonly avgMs: number
  readonly maxMs: number
  readonly usPerQuery: number
  readonly rcodes: string
  readonly command: string
}

async function dnsperf(
  label: string,
  s: Server,
  file: string,
  shownFile: string,
  opts: Options,
  cpu: number | undefined,
  edns?: string,
): Promise<Perf> {
  if (opts.warmup > 0) await dnsperf(label, s, file, shownFile, { ...opts, warmup: 0, seconds: opts.warmup }, cpu, edns)
  const args = ['-s', HOST, '-p', String(s.port), '-d', file, '-l', String(opts.seconds), '-c', '4', '-q', '100']
  if (edns) args.push('-E', edns)
  const [cmd, argv] = cpu === undefined ? ['dnsperf', args] : ['taskset', ['-c', String(cpu), 'dnsperf', ...args]]
  const cpu0 = cpuSeconds(s.pid)
  const t0 = performance.now()
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] })
  live.add(child)
  let out = ''
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out += d
  })
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    out += d
  })
  const watchdog = setTimeout(() => child.kill('SIGKILL'), (opts.seconds + 30) * 1000)
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)))
  clearTimeout(watchdog)
  live.delete(child)
  const wall = (performance.now() - t0) / 1000
  const used = cpuSeconds(s.pid) - cpu0
  if (code !== 0) throw new Error(`dnsperf exited with code ${code}\n${out.slice(-2000)}`)
  const num = (re: RegExp): number => Number(re.exec(out)?.[1] ?? Number.NaN)
  const lat = /Average Latency \(s\):\s+([\d.]+) \(min ([\d.]+), max ([\d.]+)\)/.exec(out)
  const qps = num(/Queries per second:\s+([\d.]+)/)
  const shown = [...(cpu === undefined ? [] : ['taskset', '-c', String(cpu)]), 'dnsperf', ...args].map((a) =>
    a === file ? shownFile : a,
  )
  return {
    label,
    qps,
    lostPct: num(/Queries lost:\s+\d+ \(([\d.]+)%\)/),
    avgMs: lat ? Number(lat[1]) * 1000 : Number.NaN,
    maxMs: lat ? Number(lat[3]) * 1000 : Number.NaN,
    usPerQuery: ((used / wall) * 1e6) / qps,
    rcodes: /Response codes:\s+(.*)/.exec(out)?.[1]?.trim() ?? '',
    command: shellQuote(shown),
  }
}

// ---------------------------------------------------------------------------------------------
// Query files

function shuffle<T>(list: T[], seed: number): T[] {
  const rnd = seededRandom(seed)
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1))
    ;[list[i], list[j]] = [list[j]!, list[i]!]
  }
  return list
}

const CHAIN_KINDS: readonly ChainKind[] = ['weighted', 'geo', 'failover', 'latency', 'sticky', 'multivalue']
/** The service of test/bench/zones/gslb.bench.example.yaml that runs each chain kind of the big set. */
const SMALL_SERVICE: Readonly<Record<ChainKind, string>> = {
  weighted: 'weighted',
  geo: 'geo',
  failover: 'failover',
  latency: 'latency',
  sticky: 'sticky',
  multivalue: 'multi',
}

function writeQueries(dir: string, z: GeneratedZones): Record<string, string> {
  mkdirSync(dir, { recursive: true })
  const files: Record<string, string[]> = {
    // Every static (name, type) with data, at most 200k lines, in random order.
    bigStatic: shuffle(
      z.staticQueries.map((q) => `${q.name} ${q.type}`),
      1,
    ).slice(0, 200_000),
    // Every service: A, and AAAA for the dual-stack ones.
    bigGslb: shuffle(
      z.services.flatMap((s) => (s.v6 ? [`${s.name} A`, `${s.name} AAAA`] : [`${s.name} A`])),
      2,
    ),
    smallStatic: ['www', 'api', 'cdn', 'static'].map((n) => `${n}.bench.example. A`),
    smallGslb: Object.values(SMALL_SERVICE).flatMap((n) => [
      `${n}.gslb.bench.example. A`,
      `${n}.gslb.bench.example. AAAA`,
    ]),
  }
  // Per chain kind (--by-kind): the big set's services of that kind, the small set's one service.
  for (const kind of CHAIN_KINDS) {
    files[`bigGslb-${kind}`] = shuffle(
      z.services
        .filter((s) => s.chain === kind)
        .flatMap((s) => (s.v6 ? [`${s.name} A`, `${s.name} AAAA`] : [`${s.name} A`])),
      3,
    )
    files[`smallGslb-${kind}`] = [
      `${SMALL_SERVICE[kind]}.gslb.bench.example. A`,
      `${SMALL_SERVICE[kind]}.gslb.bench.example. AAAA`,
    ]
  }
  const paths: Record<string, string> = {}
  for (const [k, lines] of Object.entries(files)) {
    paths[k] = join(dir, `${k}.txt`)
    writeFileSync(paths[k]!, `${lines.join('\n')}\n`)
  }
  return paths
}

// ---------------------------------------------------------------------------------------------
// Reload stall

interface ReloadResult {
  readonly via: 'watch' | 'sighup'
  /** The server's own figure ("zones reloaded" ms, summed when the watch split the work), when it logs one. */
  readonly serverMs: number | undefined
  /** How many reloads it took to pick up every file (the watch may start one before the last file is written). */
  readonly reloads: number
  /** Server CPU time / wall time over the reload, and how busy its CPU was (anyone): below ~90% = interference. */
  readonly serverCpuPct: number
  readonly cpuBusyPct: number
  /** From rewriting the files (or SIGHUP) to the server's reload log line. */
  readonly observedMs: number
  /** Figures per window; their maxGapEndedAt is in ms since the server was spawned (to within a ms or two). */
  readonly baseline: StallFigures
  /** From the trigger to 200 ms after the last "zones reloaded" line (as before --settle-ms existed). */
  readonly during: StallFigures
  /** From 200 ms to `settleMs` after the last "zones reloaded" line. */
  readonly after: StallFigures
  /** From the trigger to `settleMs` after the last line: a gap across the during/after edge shows whole here. */
  readonly duringAndAfter: StallFigures
  readonly settleMs: number
  /** Trigger, last "zones reloaded" line and end of the settle period, in ms since the server was spawned. */
  readonly triggerSinceSpawnMs: number
  readonly endSinceSpawnMs: number
  readonly settledSinceSpawnMs: number
  /** VmRSS / VmHWM at the end of the settle period (the stream still running). */
  readonly memoryAfter: { rssMb: number; hwmMb: number }
  readonly serialAfter: number | undefined
  readonly filesLoaded: number
}

/** The query stream of the reload measurement, run by test/bench/scale/stream-child.ts. */
interface StreamChild {
  mark(name: string): void
  stop(): Promise<{ result: StreamResult; marks: Record<string, number> }>
}

async function startStreamChild(port: number, queriesFile: string): Promise<StreamChild> {
  const child = fork(join(ROOT, 'test/bench/scale/stream-child.ts'), [String(port), queriesFile], {
    execPath: process.execPath,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  live.add(child)
  child.once('exit', () => live.delete(child))
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve())
    child.once('exit', (code) => reject(new Error(`stream child exited with code ${code}`)))
  })
  return {
    mark: (name) => child.send({ mark: name }),
    stop: () =>
      new Promise((resolve, reject) => {
        child.once('message', (m) => resolve(m as { result: StreamResult; marks: Record<string, number> }))
        child.once('exit', (code) => reject(new Error(`stream child exited with code ${code}`)))
        child.send({ stop: true })
      }),
  }
}

/** [busy, total] jiffies of one CPU from /proc/stat. */
function cpuBusy(cpu: number | undefined): [number, number] | undefined {
  if (cpu === undefined) return undefined
  try {
    const line = readFileSync('/proc/stat', 'utf8')
      .split('\n')
      .find((l) => l.startsWith(`cpu${cpu} `))
    const f = line!.trim().split(/\s+/).slice(1, 9).map(Number)
    const total = f.reduce((a, b) => a + b, 0)
    return [total - f[3]! - f[4]!, total]
  } catch {
    return undefined
  }
}

async function measureReload(
  s: Server,
  z: GeneratedZones,
  opts: Options,
  dir: string,
  cpu: number | undefined,
): Promise<ReloadResult> {
  // The new files (SOA serial 2) are made before the stream starts and copied in with async I/O;
  // the stream runs in its own process, so nothing done here delays queries or answers.
  const stage = join(dir, 'stage')
  const staged = generateZones(stage, opts, 2)
  const names = z.staticQueries.filter((q) => q.type === 'A').slice(0, 500)
  const svc = z.services.slice(0, 500)
  const lines = names.flatMap((n, i) => (svc[i] ? [`${n.name} 1`, `${svc[i]!.name} 1`] : [`${n.name} 1`]))
  const queriesFile = join(dir, 'stream.txt')
  writeFileSync(queriesFile, `${lines.join('\n')}\n`)
  const stream = await startStreamChild(s.port, queriesFile)
  await new Promise((r) => setTimeout(r, 1500))
  const logFrom = s.log.length
  stream.mark('trigger')
  const triggerWall = performance.now()
  say(`bench:scale: reload triggered ${f0(triggerWall - s.spawnedAt)} ms after the server was spawned`)
  const cpu0 = cpuSeconds(s.pid)
  const busy0 = cpuBusy(cpu)
  for (const f of staged.files) await copyFile(f, join(z.dir, f.slice(stage.length + 1)))
  if (opts.reloadVia === 'sighup') s.child.kill('SIGHUP')
  // Every file is reloaded once; the watch may need more than one reload to see them all.
  const done: LogLine[] = []
  const loaded = (): number => s.log.slice(logFrom).filter((l) => l.msg === 'zone loaded').length
  while (loaded() < z.files.length) {
    const from = done.length > 0 ? s.log.indexOf(done[done.length - 1]!) + 1 : logFrom
    done.push(await s.waitLog((l) => l.msg === 'zones reloaded' && l.obj['reason'] !== 'startup', 300_000, from))
  }
  let last = done[done.length - 1]!
  if (opts.serveFlags.includes('handover')) {
    // The answering threads have the change once every slot (one after the other, as "worker
    // threads answering" counted them) has been handed over: after the main thread's reload, or
    // before it when the main thread was still answering (the lazy handover's first change).
    const slots = Number(s.log.slice(0, logFrom).find((l) => l.msg === 'worker threads answering')?.obj['workers'] ?? 1)
    let from = logFrom
    for (let i = 0; i < slots; i++) {
      const h = await s.waitLog((l) => l.msg === 'zones handed over to a fresh worker', 300_000, from)
      from = s.log.indexOf(h) + 1
      if (s.log.indexOf(h) > s.log.indexOf(last)) last = h
      say(`bench:scale: worker ${String(h.obj['worker'])} handed over after ${f0(Number(h.obj['ms']))} ms`)
    }
  }
  stream.mark('end')
  const endWall = performance.now()
  say(`bench:scale: reload done ${f0(endWall - s.spawnedAt)} ms after the server was spawned`)
  const wall = (endWall - triggerWall) / 1000
  const serverCpuPct = (100 * (cpuSeconds(s.pid) - cpu0)) / wall
  const busy1 = cpuBusy(cpu)
  const cpuBusyPct = busy0 && busy1 ? (100 * (busy1[0] - busy0[0])) / (busy1[1] - busy0[1]) : Number.NaN
  // The settle period: the old table is garbage now, and V8 may take seconds to collect it.
  await new Promise((r) => setTimeout(r, Math.max(0, endWall + opts.settleMs - performance.now())))
  const memoryAfter = memory(s.pid)
  const settledWall = performance.now()
  say(`bench:scale: settle period (${f0(opts.settleMs)} ms) over ${f0(settledWall - s.spawnedAt)} ms after spawn`)
  const { result, marks } = await stream.stop()
  const trigger = marks['trigger']!
  const end = marks['end']!
  // The stream's clock to ms since the server was spawned, through the trigger mark.
  const sinceSpawn = triggerWall - s.spawnedAt - trigger
  const figures = (from: number, to: number): StallFigures => {
    const f = stallFigures(result, from, to)
    return { ...f, maxGapEndedAt: f.maxGapEndedAt + sinceSpawn }
  }
  const ms = done.map((l) => l.obj['ms']).filter((m) => typeof m === 'number') as number[]
  return {
    via: opts.reloadVia,
    serverMs: ms.length > 0 ? ms.reduce((a, b) => a + b, 0) : undefined,
    reloads: done.length,
    observedMs: last.at - triggerWall,
    baseline: figures(200, trigger),
    // The reload window: from the trigger (the watch adds its 200 ms debounce) to 200 ms after the
    // server's last "zones reloaded" line reached this process.
    during: figures(trigger, end + 200),
    after: figures(end + 200, end + opts.settleMs),
    duringAndAfter: figures(trigger, end + opts.settleMs),
    settleMs: opts.settleMs,
    triggerSinceSpawnMs: triggerWall - s.spawnedAt,
    endSinceSpawnMs: end + sinceSpawn,
    settledSinceSpawnMs: settledWall - s.spawnedAt,
    memoryAfter,
    serialAfter: await soaSerial(s.port, 'corp.example'),
    filesLoaded: loaded(),
    serverCpuPct,
    cpuBusyPct,
  }
}

// ---------------------------------------------------------------------------------------------
// Main

const f0 = (x: number | undefined): string =>
  x === undefined || Number.isNaN(x) ? '-' : Math.round(x).toLocaleString('en-US')
const f1 = (x: number | undefined): string => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(1))
const relative = (ms: number): string => `${f0(Math.abs(ms))} ms ${ms < 0 ? 'before' : 'after'}`
/** ms as seconds, for labels: 5000 -> "5 s", 2500 -> "2.5 s". */
const secs = (ms: number): string => `${Number((ms / 1000).toFixed(1))} s`
const f2 = (x: number | undefined): string => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(2))

function median(values: readonly number[]): number {
  const v = [...values].sort((a, b) => a - b)
  const mid = v.length >> 1
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2
}

function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (c: string[]): string =>
    `| ${c.map((x, i) => (i === 0 ? x.padEnd(w[i]!) : x.padStart(w[i]!))).join(' | ')} |`
  const sep = `|${w.map((n, i) => (i === 0 ? `:${'-'.repeat(n + 1)}` : `${'-'.repeat(n + 1)}:`)).join('|')}|`
  return [line(head), sep, ...rows.map(line)].join('\n')
}

function say(msg: string): void {
  process.stderr.write(`${msg}\n`)
}

async function main(argv: string[]): Promise<number> {
  let opts: Options
  try {
    const o = parseOptions(argv)
    if (o === 'help') {
      process.stdout.write(USAGE)
      return 0
    }
    opts = o
  } catch (e) {
    process.stderr.write(`bench:scale: ${(e as Error).message}\n\n${USAGE}`)
    return 2
  }
  if (spawnSync('dnsperf', ['-h']).error) {
    process.stderr.write('bench:scale: dnsperf is not installed (apt-get install dnsperf)\n')
    return 2
  }
  const pin = opts.pin && tasksetOk()
  const serverCpu = pin ? 0 : undefined
  const clientCpu = pin ? 1 : undefined
  // This process (readiness probes, the reload stream) stays off the server's CPU too.
  if (pin) spawnSync('taskset', ['-a', '-cp', '1', String(process.pid)])

  const base = opts.keep ?? mkdtempSync(join(tmpdir(), 'gslb-scale-'))
  const zonesDir = join(base, 'zones')
  rmSync(zonesDir, { recursive: true, force: true })
  const g0 = performance.now()
  const z = generateZones(zonesDir, opts, 1)
  const genMs = performance.now() - g0
  const q = writeQueries(join(base, 'queries'), z)
  const bytes = z.files.reduce((n, f) => n + readFileSync(f).length, 0)
  say(
    `bench:scale: ${z.counts.records} records, ${z.counts.services} services, ${z.counts.endpoints} endpoints ` +
      `in ${z.files.length} files (${(bytes / 1e6).toFixed(1)} MB) under ${zonesDir}, generated in ${f0(genMs)} ms`,
  )

  const commands: string[] = []
  const perf: Perf[] = []
  const startSmall = async (): Promise<Server> => {
    const small = startServer(SMALL_ZONES, await freePort(), serverCpu, [], opts.nodeFlags)
    commands.push(small.command)
    await waitCorrect(small, 'www.bench.example.', '192.0.2.10', 'weighted.gslb.bench.example.', 30_000)
    return small
  }
  /** The small zones' static and every-service runs. */
  const smallRuns = async (small: Server): Promise<void> => {
    perf.push(await dnsperf('small: static A', small, q['smallStatic']!, '$Q/smallStatic.txt', opts, clientCpu))
    say(`  ${perf.at(-1)!.label}: ${f0(perf.at(-1)!.qps)} qps`)
    const every = 'small: GSLB, 6 services + ECS'
    perf.push(await dnsperf(every, small, q['smallGslb']!, '$Q/smallGslb.txt', opts, clientCpu, ECS_UK.hex))
    say(`  ${perf.at(-1)!.label}: ${f0(perf.at(-1)!.qps)} qps`)
  }
  let load: Record<string, number | undefined> = {}
  let memAfterLoad = { rssMb: Number.NaN, hwmMb: Number.NaN }
  let memAfterPerf = { rssMb: Number.NaN, hwmMb: Number.NaN }
  let memAfterReload = { rssMb: Number.NaN, hwmMb: Number.NaN }
  let reload: ReloadResult | undefined
  let failed: Error | undefined
  try {
    const port = await freePort()
    const big = startServer(
      zonesDir,
      port,
      serverCpu,
      [...(opts.reloadVia === 'sighup' ? ['--no-watch'] : []), ...opts.serveFlags],
      opts.nodeFlags,
      opts.keep === undefined ? undefined : join(base, `server-${port}.out`),
    )
    commands.push(big.command)
    say(`bench:scale: ${big.command}`)
    try {
      const firstAnswerMs = await waitCorrect(big, z.readyStatic.name, z.readyStatic.address, z.readyService, 600_000)
      // The server answers before this process has read its log through the pipe: wait for the lines.
      const line = (match: (l: LogLine) => boolean): Promise<LogLine | undefined> =>
        big.waitLog(match, 5_000).catch(() => undefined)
      const logged = await line((l) => l.msg === 'zones reloaded' && l.obj['reason'] === 'startup')
      const listening = await line((l) => l.msg === 'listening on UDP and TCP')
      load = {
        firstAnswerMs,
        serverLoadMs: typeof logged?.obj['ms'] === 'number' ? (logged.obj['ms'] as number) : undefined,
        listeningMs: listening ? listening.at - big.spawnedAt : undefined,
      }
      memAfterLoad = memory(big.pid)
      say(`bench:scale: first correct answer after ${f0(firstAnswerMs)} ms, VmRSS ${f0(memAfterLoad.rssMb)} MB`)
      perf.push(await dnsperf('big: static (many names)', big, q['bigStatic']!, '$Q/bigStatic.txt', opts, clientCpu))
      say(`  ${perf.at(-1)!.label}: ${f0(perf.at(-1)!.qps)} qps`)
      perf.push(
        await dnsperf(
          'big: GSLB, every service + ECS',
          big,
          q['bigGslb']!,
          '$Q/bigGslb.txt',
          opts,
          clientCpu,
          ECS_UK.hex,
        ),
      )
      say(`  ${perf.at(-1)!.label}: ${f0(perf.at(-1)!.qps)} qps`)
      // By kind, next to the small zones: both servers run (pinned to the same CPU, one idle while
      // the other answers) and each kind's big and small runs alternate, so a slow spell of this
      // shared machine shows in both sides of a ratio rather than in one.
      if (opts.byKind && opts.small) {
        const small = await startSmall()
        try {
          for (let round = 1; round <= opts.rounds; round++) {
            const suffix = opts.rounds > 1 ? ` (round ${round})` : ''
            for (const kind of CHAIN_KINDS) {
              for (const [side, s] of [
                ['big', big],
                ['small', small],
              ] as const) {
                const key = `${side}Gslb-${kind}`
                const label = `${side}: GSLB ${kind} + ECS${suffix}`
                perf.push(await dnsperf(label, s, q[key]!, `$Q/${key}.txt`, opts, clientCpu, ECS_UK.hex))
                say(`  ${perf.at(-1)!.label}: ${f0(perf.at(-1)!.qps)} qps`)
              }
            }
          }
          await smallRuns(small)
        } finally {
          await stop(small.child)
        }
      }
      memAfterPerf = memory(big.pid)
      if (opts.reload) {
        say(`bench:scale: reload stall (${opts.reloadVia}): rewriting ${z.files.length} files with serial 2`)
        reload = await measureReload(big, z, opts, base, serverCpu)
        memAfterReload = reload.memoryAfter
        const r = reload
        say(`  reload: max latency ${f1(r.during.maxLatencyMs)} ms, max gap ${f1(r.during.maxGapMs)} ms`)
        say(
          `  after it (${f0(r.settleMs)} ms): max latency ${f1(r.after.maxLatencyMs)} ms, max gap ` +
            `${f1(r.after.maxGapMs)} ms; longest gap from the trigger on ${f1(r.duringAndAfter.maxGapMs)} ms, ` +
            `ended ${f0(r.duringAndAfter.maxGapEndedAt)} ms after the server was spawned`,
        )
      }
    } finally {
      await stop(big.child)
      if (big.child.exitCode !== 0 && big.stderr()) say(`server stderr:\n${big.stderr().slice(0, 4000)}`)
    }
    if (opts.small && !opts.byKind) {
      const small = await startSmall()
      try {
        await smallRuns(small)
      } finally {
        await stop(small.child)
      }
    }
  } catch (e) {
    failed = e as Error
  } finally {
    for (const c of live) c.kill('SIGKILL')
    if (opts.keep === undefined) rmSync(base, { recursive: true, force: true })
  }
  if (failed) {
    process.stderr.write(`bench:scale: ${failed.stack ?? failed.message}\n`)
    return 1
  }

  const result = {
    sizes: { ...z.counts, files: z.files.length, bytes },
    pinned: pin,
    load: { ...load, rssMb: memAfterLoad.rssMb, hwmMb: memAfterLoad.hwmMb },
    memory: { afterLoad: memAfterLoad, afterDnsperf: memAfterPerf, afterReload: memAfterReload },
    perf,
    reload,
    commands: {
      zones: `node test/bench/scale.ts --records ${opts.records} --services ${opts.services} --endpoints ${opts.endpoints} --keep DIR (zones in DIR/zones, queries in DIR/queries = $Q)`,
      servers: commands,
      dnsperf: perf.map((p) => p.command),
    },
  }
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`)
    return 0
  }
  const o: string[] = []
  o.push(
    `gslb-dns scale bench: ${z.counts.records} static records, ${z.counts.services} services, ` +
      `${z.counts.endpoints} endpoints; ${z.files.length} files, ${(bytes / 1e6).toFixed(1)} MB; ` +
      `${pin ? 'server on CPU 0, dnsperf and this process on CPU 1' : 'NOT pinned'}`,
  )
  o.push('')
  o.push(
    table(
      ['load', 'value'],
      [
        ['spawn to first correct answer (static + service)', `${f0(load['firstAnswerMs'])} ms`],
        ['server-logged zone load ("zones reloaded", startup)', `${f0(load['serverLoadMs'])} ms`],
        ['spawn to "listening" log line', `${f0(load['listeningMs'])} ms`],
        ['VmRSS after load', `${f0(memAfterLoad.rssMb)} MB`],
        ['VmHWM after load (peak so far)', `${f0(memAfterLoad.hwmMb)} MB`],
        ['VmRSS / VmHWM after dnsperf', `${f0(memAfterPerf.rssMb)} / ${f0(memAfterPerf.hwmMb)} MB`],
        [
          `VmRSS / VmHWM after the reload (${secs(opts.settleMs)} after it)`,
          `${f0(memAfterReload.rssMb)} / ${f0(memAfterReload.hwmMb)} MB`,
        ],
      ],
    ),
  )
  o.push('')
  o.push(
    table(
      ['dnsperf', 'qps', 'lost', 'avg ms', 'max ms', 'µs/query', 'rcodes'],
      perf.map((p) => [p.label, f0(p.qps), `${f2(p.lostPct)}%`, f2(p.avgMs), f1(p.maxMs), f2(p.usPerQuery), p.rcodes]),
    ),
  )
  // Per kind: the median over rounds of each side and of the per-round ratios (each round's big and
  // small runs were back to back).
  const byKind = CHAIN_KINDS.flatMap((kind) => {
    const side = (name: string): Perf[] => perf.filter((p) => p.label.startsWith(`${name}: GSLB ${kind} + ECS`))
    const big = side('big')
    const small = side('small')
    return big.length > 0 && big.length === small.length ? [{ kind, big, small }] : []
  })
  if (byKind.length > 0) {
    const rounds = byKind[0]!.big.length
    o.push('')
    o.push(
      table(
        [
          'chain kind',
          'big qps',
          'small qps',
          rounds > 1 ? `big / small qps (median; ${rounds} rounds)` : 'big / small qps',
          'µs/query big',
          'µs/query small',
        ],
        byKind.map(({ kind, big, small }) => {
          const ratios = big.map((b, i) => b.qps / small[i]!.qps)
          const each = rounds > 1 ? ` (${ratios.map((r) => f2(r)).join(', ')})` : ''
          return [
            kind,
            f0(median(big.map((p) => p.qps))),
            f0(median(small.map((p) => p.qps))),
            `${f2(median(ratios))}x${each}`,
            f2(median(big.map((p) => p.usPerQuery))),
            f2(median(small.map((p) => p.usPerQuery))),
          ]
        }),
      ),
    )
  }
  if (reload) {
    o.push('')
    const r = reload
    const w = [r.baseline, r.during, r.after]
    o.push(
      table(
        [
          'reload (1 query/ms stream)',
          'before the reload',
          'during the reload',
          `after the reload (${secs(r.settleMs)})`,
        ],
        [
          ['answers', ...w.map((f) => f0(f.answered))],
          ['lost', ...w.map((f) => f0(f.lost))],
          ['max latency', ...w.map((f) => `${f1(f.maxLatencyMs)} ms`)],
          ['p99 latency', ...w.map((f) => `${f1(f.p99LatencyMs)} ms`)],
          ['longest time without an answer', ...w.map((f) => `${f1(f.maxGapMs)} ms`)],
          ['answers not NOERROR with data', ...w.map((f) => f0(f.bad))],
        ],
      ),
    )
    o.push(
      `longest time without an answer from the trigger to ${secs(r.settleMs)} after the reload: ` +
        `${f1(r.duringAndAfter.maxGapMs)} ms, ending ${relative(r.duringAndAfter.maxGapEndedAt - r.endSinceSpawnMs)} ` +
        `the last "zones reloaded" line (max latency ${f1(r.duringAndAfter.maxLatencyMs)} ms)`,
    )
    o.push(
      `reload via ${r.via}: server-logged ${f0(r.serverMs)} ms in ${r.reloads} reload(s); trigger to last log line ` +
        `${f0(r.observedMs)} ms (includes the watch's 200 ms debounce); ${r.filesLoaded} zone files reloaded; ` +
        `corp.example serial now ${r.serialAfter}; the server had ${f0(r.serverCpuPct)}% of a CPU meanwhile, ` +
        `its CPU was ${f0(r.cpuBusyPct)}% busy (all processes)`,
    )
  }
  o.push('')
  o.push('commands:')
  o.push(`  ${result.commands.zones}`)
  for (const c of commands) o.push(`  ${c}`)
  for (const c of result.commands.dnsperf) o.push(`  ${c}`)
  process.stdout.write(`${o.join('\n')}\n`)
  return 0
}

process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL')
})
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    for (const c of live) c.kill('SIGKILL')
    process.exit(130)
  })
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    process.stderr.write(`bench:scale: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    for (const c of live) c.kill('SIGKILL')
    process.exitCode = 1
  },
)
