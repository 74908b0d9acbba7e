/**
 * `npm run bench`: throughput and latency of the real server under dnsperf, per answer kind.
 *
 *   node test/bench/run.ts [--seconds 10] [--runs 1] [--kinds static,cname,...] [--json] [--baseline]
 *
 * The server (`node src/cli.ts serve`) is pinned to one CPU and dnsperf to another with taskset,
 * so the two never share a core; every figure is the median over --runs. Each kind's qps is also
 * shown as a ratio to the static-A qps measured in the same invocation, which is the number to
 * compare across machines. With --baseline, a naive dns-packet decode+encode server
 * (test/bench/baseline.ts) is measured the same way on the static-A queries.
 *
 * Traffic goes to 127.0.0.1 only, and every loop is bounded in time: dnsperf runs with -l and a
 * watchdog, the readiness probe gives up after 15 s, and stopping a server escalates to SIGKILL.
 */

import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import {
  closeSync,
  createReadStream,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { availableParallelism, cpus, loadavg, release, tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { seededRandom } from '../../src/policy/random.ts'
import { freePort } from '../helpers/process.ts'
import { gdnsdAvailable, startGdnsd } from './gdnsd.ts'
import { shellQuote, waitExit, waitReady } from './process.ts'

const ROOT = new URL('../../', import.meta.url).pathname.replace(/\/$/, '')
const ZONES_DIR = 'test/bench/zones'
const GSLB_ZONE = 'gslb.bench.example.'
const ZONE = 'bench.example'
const HOST = '127.0.0.1'

// ---------------------------------------------------------------------------------------------
// Options

const KINDS = [
  'static',
  'cname',
  'mx',
  'wildcard',
  'nxdomain',
  'mix',
  'tcp',
  'static-ecs',
  'weighted',
  'geo',
  'failover',
  'latency',
  'sticky',
  'multi',
] as const
type Kind = (typeof KINDS)[number]

const KIND_LABEL: Record<Kind, string> = {
  static: 'static A',
  cname: 'CNAME chase',
  mx: 'MX + additional',
  wildcard: 'wildcard',
  nxdomain: 'NXDOMAIN',
  mix: 'mix',
  tcp: 'static A over TCP',
  'static-ecs': 'static A + ECS',
  weighted: 'GSLB weighted',
  geo: 'GSLB geo + ECS',
  failover: 'GSLB failover',
  latency: 'GSLB latency + ECS',
  sticky: 'GSLB sticky + ECS',
  multi: 'GSLB multivalue (8)',
}

/** Which query file each kind sends; `tcp` reuses the static-A file. */
const KIND_FILE: Record<Kind, string> = {
  static: 'static',
  cname: 'cname',
  mx: 'mx',
  wildcard: 'wildcard',
  nxdomain: 'nxdomain',
  mix: 'mix',
  tcp: 'static',
  'static-ecs': 'static',
  weighted: 'weighted',
  geo: 'geo',
  failover: 'failover',
  latency: 'latency',
  sticky: 'sticky',
  multi: 'multi',
}

/**
 * ECS sent with every query of a kind (dnsperf -E code:hex): a /24 client subnet, so geo, latency
 * and sticky decide per client as they would behind a public resolver. 81.2.69.0/24 is a UK network
 * in the bundled geo database; only its bytes travel, inside queries to 127.0.0.1.
 */
const ECS_UK_24 = '8:00011800510245'
const KIND_EDNS: Partial<Record<Kind, string>> = {
  'static-ecs': ECS_UK_24,
  geo: ECS_UK_24,
  latency: ECS_UK_24,
  sticky: ECS_UK_24,
}

const EXPECTED_RCODES: Record<Kind, readonly string[]> = {
  static: ['NOERROR'],
  cname: ['NOERROR'],
  mx: ['NOERROR'],
  wildcard: ['NOERROR'],
  nxdomain: ['NXDOMAIN'],
  mix: ['NOERROR', 'NXDOMAIN'],
  tcp: ['NOERROR'],
  'static-ecs': ['NOERROR'],
  weighted: ['NOERROR'],
  geo: ['NOERROR'],
  failover: ['NOERROR'],
  latency: ['NOERROR'],
  sticky: ['NOERROR'],
  multi: ['NOERROR'],
}

const USAGE = `Usage: node test/bench/run.ts [options]   (npm run bench -- [options])

  --seconds N        length of each dnsperf run (default 10, at most 300)
  --runs N           measure each kind N times and report the median (default 1, at most 25)
  --kinds a,b        kinds to measure, from: ${KINDS.join(', ')} (default: all);
                     static is always measured, as the reference for the ratios
  --baseline         also measure, on static A, our server with --udp-io dgram (Node's sockets instead
                     of batched recvmmsg/sendmmsg), test/bench/baseline.ts (naive dns-packet
                     decode+encode) and test/bench/ceiling.ts (pre-encoded answer, dgram, only ID and
                     question copied)
  --no-gdnsd         do not measure gdnsd even when it is installed (by default, an installed gdnsd 3.x
                     runs on the server's CPU with test/bench/gdnsd/, the same names, and every kind
                     but sticky, which gdnsd has no equivalent for, is measured against it too)
  --half-rate        after the full-rate runs, run each kind again at half its measured qps (dnsperf
                     -Q) with per-query latencies: p50/p99/p99.9 where the server is not saturated
  --clients N        dnsperf -c (default 4)
  --outstanding N    dnsperf -q (default 100)
  --max-qps N        dnsperf -Q (default: unlimited)
  --warmup N         seconds of mixed queries before measuring, to let V8 optimise (default 5, 0 = none)
  --percentiles      run dnsperf with -v and compute p50/p99/p99.9 latency from its per-query lines
                     (costs dnsperf some CPU, so qps may read lower)
  --workers N        run the server with --workers N (N worker threads, SO_REUSEPORT); implies
                     --no-pin, since the threads need every core (dnsperf then shares them)
  --no-pin           do not use taskset
  --json             print the results as JSON on stdout (progress still goes to stderr)
  --write-queries D  write the query files into directory D and exit
`

interface Options {
  readonly seconds: number
  readonly runs: number
  readonly kinds: readonly Kind[]
  readonly baseline: boolean
  readonly clients: number
  readonly outstanding: number
  readonly maxQps: number | undefined
  readonly warmup: number
  readonly percentiles: boolean
  readonly halfRate: boolean
  readonly gdnsd: boolean
  readonly workers: number
  readonly pin: boolean
  readonly json: boolean
  readonly writeQueries: string | undefined
}

class UsageError extends Error {}

function intFlag(value: string | undefined, name: string, dflt: number, min: number, max: number): number {
  if (value === undefined) return dflt
  const n = Number(value)
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name}: expected an integer ${min}..${max}`)
  return n
}

function parseOptions(argv: string[]): Options | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      seconds: { type: 'string' },
      runs: { type: 'string' },
      kinds: { type: 'string' },
      baseline: { type: 'boolean' },
      clients: { type: 'string' },
      outstanding: { type: 'string' },
      'max-qps': { type: 'string' },
      warmup: { type: 'string' },
      percentiles: { type: 'boolean' },
      'half-rate': { type: 'boolean' },
      'no-gdnsd': { type: 'boolean' },
      workers: { type: 'string' },
      'no-pin': { type: 'boolean' },
      json: { type: 'boolean' },
      'write-queries': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  })
  if (values.help) return 'help'
  let kinds: Kind[] = [...KINDS]
  if (values.kinds !== undefined) {
    const asked = values.kinds
      .split(',')
      .map((k) => k.trim())
      .filter(Boolean)
    for (const k of asked) {
      if (!(KINDS as readonly string[]).includes(k))
        throw new UsageError(`--kinds: unknown kind "${k}"; known: ${KINDS.join(', ')}`)
    }
    // static is the reference of every ratio; static + ECS that of the kinds sending ECS.
    const ecs = asked.some((k) => KIND_EDNS[k as Kind] !== undefined)
    kinds = KINDS.filter((k) => k === 'static' || (k === 'static-ecs' && ecs) || asked.includes(k))
  }
  const maxQps = values['max-qps'] === undefined ? undefined : intFlag(values['max-qps'], 'max-qps', 0, 1, 10_000_000)
  return {
    seconds: intFlag(values.seconds, 'seconds', 10, 1, 300),
    runs: intFlag(values.runs, 'runs', 1, 1, 25),
    kinds,
    baseline: values.baseline ?? false,
    clients: intFlag(values.clients, 'clients', 4, 1, 1000),
    outstanding: intFlag(values.outstanding, 'outstanding', 100, 1, 65535),
    maxQps,
    warmup: intFlag(values.warmup, 'warmup', 5, 0, 60),
    percentiles: values.percentiles ?? false,
    halfRate: values['half-rate'] ?? false,
    gdnsd: !(values['no-gdnsd'] ?? false),
    workers: intFlag(values.workers, 'workers', 1, 1, 64),
    pin: !(values['no-pin'] ?? false) && values.workers === undefined,
    json: values.json ?? false,
    writeQueries: values['write-queries'],
  }
}

// ---------------------------------------------------------------------------------------------
// Query files

/** The shared deterministic PRNG (mulberry32) so the mix file is the same on every machine. */
const prng = seededRandom

function queryFiles(): Record<string, string[]> {
  const staticA = ['www', 'api', 'cdn', 'static'].map((n) => `${n}.${ZONE} A`)
  const staticAAAA = ['www', 'api', 'cdn'].map((n) => `${n}.${ZONE} AAAA`)
  const cname = [`alias.${ZONE} A`, `alias2.${ZONE} A`]
  const mx = [`${ZONE} MX`]
  const pad = (i: number): string => String(i).padStart(4, '0')
  const wildcard = Array.from({ length: 1000 }, (_, i) => `w${pad(i)}.wild.${ZONE} ${i % 4 === 3 ? 'AAAA' : 'A'}`)
  const nxdomain = Array.from({ length: 1000 }, (_, i) => `nope${pad(i)}.${ZONE} A`)
  const rnd = prng(20260101)
  const pick = (list: readonly string[]): string => list[Math.floor(rnd() * list.length)]!
  // 45% static A, 15% AAAA, 10% each CNAME chase, MX, wildcard, NXDOMAIN.
  const mix = Array.from({ length: 1000 }, () => {
    const r = rnd()
    if (r < 0.45) return pick(staticA)
    if (r < 0.6) return pick(staticAAAA)
    if (r < 0.7) return pick(cname)
    if (r < 0.8) return pick(mx)
    if (r < 0.9) return pick(wildcard)
    return pick(nxdomain)
  })
  const gslb = (name: string): string[] => [
    `${name}.${GSLB_ZONE} A`,
    `${name}.${GSLB_ZONE} AAAA`,
    `${name}.${GSLB_ZONE} A`,
  ]
  return {
    static: staticA,
    cname,
    mx,
    wildcard,
    nxdomain,
    mix,
    weighted: gslb('weighted'),
    geo: gslb('geo'),
    failover: gslb('failover'),
    latency: gslb('latency'),
    sticky: gslb('sticky'),
    multi: gslb('multi'),
  }
}

function writeQueryFiles(dir: string): Record<string, string> {
  mkdirSync(dir, { recursive: true })
  const paths: Record<string, string> = {}
  for (const [name, lines] of Object.entries(queryFiles())) {
    const path = join(dir, `${name}.txt`)
    writeFileSync(path, `${lines.join('\n')}\n`)
    paths[name] = path
  }
  return paths
}

// ---------------------------------------------------------------------------------------------
// Environment

interface Pinning {
  readonly pinned: boolean
  readonly serverCpu: number | undefined
  readonly clientCpu: number | undefined
  readonly note: string
}

function parseCpuList(list: string): number[] {
  const out: number[] = []
  for (const part of list.split(',')) {
    const [a, b] = part.trim().split('-').map(Number)
    if (a === undefined || Number.isNaN(a)) continue
    for (let c = a; c <= (b ?? a); c++) out.push(c)
  }
  return out
}

function choosePinning(wanted: boolean): Pinning {
  const none = (note: string): Pinning => ({ pinned: false, serverCpu: undefined, clientCpu: undefined, note })
  if (!wanted) return none('not pinned (--no-pin): server and dnsperf share the CPUs as the scheduler sees fit')
  const r = spawnSync('taskset', ['-cp', String(process.pid)], { encoding: 'utf8' })
  if (r.error || r.status !== 0) {
    return none('NOT PINNED: taskset is missing (apt-get install util-linux); server and dnsperf may share a core')
  }
  const m = /list:\s*([\d,\s-]+)/.exec(r.stdout)
  const allowed = m ? parseCpuList(m[1]!) : []
  if (allowed.length < 2) {
    return none(
      `NOT PINNED: only ${allowed.length || availableParallelism()} CPU available; server and dnsperf share it`,
    )
  }
  return {
    pinned: true,
    serverCpu: allowed[0]!,
    clientCpu: allowed[1]!,
    note: `server on CPU ${allowed[0]}, dnsperf on CPU ${allowed[1]} (taskset)`,
  }
}

function dnsperfVersion(): string | undefined {
  const r = spawnSync('dnsperf', ['-h'], { encoding: 'utf8' })
  if (r.error) return undefined
  return /Version\s+(\S+)/.exec(`${r.stdout}${r.stderr}`)?.[1] ?? 'unknown'
}

function machine(): { nproc: number; cpuModel: string; kernel: string; loadAvg: number[] } {
  let cpuModel = cpus()[0]?.model ?? 'unknown'
  try {
    cpuModel = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpuModel
  } catch {}
  const nproc = Number(spawnSync('nproc', { encoding: 'utf8' }).stdout?.trim()) || availableParallelism()
  return {
    nproc,
    cpuModel,
    kernel: `${process.platform} ${release()}`,
    loadAvg: loadavg().map((l) => Number(l.toFixed(2))),
  }
}

function packageVersion(name: string): string {
  try {
    return (JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string })
      .version
  } catch {
    return 'unknown'
  }
}

/** Short commit id, with "+dirty" when the working tree differs from it. */
function gitRevision(): string {
  const head = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' })
  if (head.error || head.status !== 0) return 'unknown'
  const dirty = spawnSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8' })
  return `${head.stdout.trim()}${dirty.stdout?.trim() ? '+dirty' : ''}`
}

/** Per-CPU jiffies from /proc/stat: [busy, total]. */
function cpuTimes(): Map<number, [number, number]> {
  const out = new Map<number, [number, number]>()
  try {
    for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
      const m = /^cpu(\d+)\s+(.*)$/.exec(line)
      if (!m) continue
      const f = m[2]!.trim().split(/\s+/).map(Number)
      const total = f.slice(0, 8).reduce((s, x) => s + x, 0)
      const idle = (f[3] ?? 0) + (f[4] ?? 0)
      out.set(Number(m[1]), [total - idle, total])
    }
  } catch {}
  return out
}

function busyPct(before: Map<number, [number, number]>, after: Map<number, [number, number]>, cpu: number): number {
  const b = before.get(cpu)
  const a = after.get(cpu)
  if (!a || !b || a[1] === b[1]) return Number.NaN
  return (100 * (a[0] - b[0])) / (a[1] - b[1])
}

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100

/** CPU seconds (user + system) a process has used so far, from /proc/PID/stat. */
function procCpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(f[11]) + Number(f[12])) / CLK_TCK
  } catch {
    return Number.NaN
  }
}

/** Udp RcvbufErrors from /proc/net/snmp (machine-wide), NaN where unavailable. */
function udpRcvbufErrors(): number {
  try {
    const lines = readFileSync('/proc/net/snmp', 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('Udp:'))
    const names = lines[0]?.split(/\s+/) ?? []
    const values = lines[1]?.split(/\s+/) ?? []
    const i = names.indexOf('RcvbufErrors')
    return i > 0 ? Number(values[i]) : Number.NaN
  } catch {
    return Number.NaN
  }
}

/** Drops counted on the 127.0.0.1 UDP socket bound to `port` (/proc/net/udp), NaN where unavailable. */
function udpSocketDrops(port: number): number {
  try {
    const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`
    let drops = 0
    for (const line of readFileSync('/proc/net/udp', 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/)
      if (f[1] === local) drops += Number(f[f.length - 1])
    }
    return drops
  } catch {
    return Number.NaN
  }
}

// ---------------------------------------------------------------------------------------------
// Processes (every child is tracked so it can be stopped on error, SIGINT or SIGTERM)

const live = new Set<ChildProcess>()

function track(child: ChildProcess): ChildProcess {
  live.add(child)
  child.once('exit', () => live.delete(child))
  return child
}

function withPin(cpu: number | undefined, cmd: string, args: string[]): [string, string[]] {
  return cpu === undefined ? [cmd, args] : ['taskset', ['-c', String(cpu), cmd, ...args]]
}
interface Target {
  readonly name: string
  readonly pid: number | undefined
  readonly port: number
  readonly command: string
  stderr(): string
  stop(): Promise<number | null>
}
async function startTarget(name: string, cpu: number | undefined, script: string, args: string[]): Promise<Target> {
  const port = await freePort()
  const fullArgs = args.map((a) => a.replace('{PORT}', String(port)))
  const [cmd, argv] = withPin(cpu, process.execPath, [script, ...fullArgs])
  const shown = shellQuote([...(cpu === undefined ? [] : ['taskset', '-c', String(cpu)]), 'node', script, ...fullArgs])
  const child = track(spawn(cmd, argv, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] }))
  let err = ''
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    if (err.length < 64 * 1024) err += d
  })
  const target: Target = {
    name,
    pid: child.pid,
    port,
    command: shown,
    stderr: () => err,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode
      child.kill('SIGTERM')
      if (!(await waitExit(child, 5000))) {
        child.kill('SIGKILL')
        await waitExit(child, 2000)
      }
      return child.exitCode
    },
  }
  try {
    await waitReady(port, child, 15_000, `www.${ZONE}`)
  } catch (e) {
    await target.stop()
    throw new Error(`${name} did not start: ${(e as Error).message}\n${err}`)
  }
  return target
}

// ---------------------------------------------------------------------------------------------
// dnsperf

interface Measurement {
  readonly sent: number
  readonly completed: number
  readonly lost: number
  readonly lostPct: number
  readonly qps: number
  readonly runTime: number
  readonly avgMs: number
  readonly minMs: number
  readonly maxMs: number
  readonly sdMs: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly p999Ms: number
  readonly requestBytes: number
  readonly responseBytes: number
  readonly rcodes: Record<string, number>
  readonly reconnections: number
  /** Server process CPU time over the run, as % of one core. */
  readonly serverCpuPct: number
  /** Server CPU time per answered query, in microseconds: the figure that sets its capacity. */
  readonly serverUsPerQuery: number
  /** Busy % of the server's and dnsperf's cores over the run (incl. kernel and softirq). */
  readonly serverCoreBusyPct: number
  readonly clientCoreBusyPct: number
  /** Machine-wide UDP receive-buffer overflows (/proc/net/snmp RcvbufErrors) during the run. */
  readonly udpRcvbufErrors: number
  /** Of those, the ones dropped at the server's own socket (/proc/net/udp drops). */
  readonly serverSocketDrops: number
  readonly warnings: readonly string[]
}

function num(re: RegExp, text: string): number {
  const m = re.exec(text)
  return m ? Number(m[1]) : Number.NaN
}

function parseDnsperf(
  stdout: string,
): Omit<
  Measurement,
  | 'p50Ms'
  | 'p99Ms'
  | 'p999Ms'
  | 'serverCpuPct'
  | 'serverUsPerQuery'
  | 'udpRcvbufErrors'
  | 'serverSocketDrops'
  | 'serverCoreBusyPct'
  | 'clientCoreBusyPct'
  | 'warnings'
> {
  // TCP runs append "Connection Statistics" with their own latency lines: read the query part.
  const cut = stdout.indexOf('Connection Statistics')
  const stats = cut >= 0 ? stdout.slice(0, cut) : stdout
  const qps = num(/Queries per second:\s+([\d.]+)/, stats)
  if (Number.isNaN(qps)) throw new Error(`could not read dnsperf's statistics:\n${stdout.slice(-2000)}`)
  const lat = /Average Latency \(s\):\s+([\d.]+) \(min ([\d.]+), max ([\d.]+)\)/.exec(stats)
  const rcodes: Record<string, number> = {}
  const rc = /Response codes:\s+(.*)/.exec(stats)?.[1] ?? ''
  for (const m of rc.matchAll(/([A-Z]+) (\d+)/g)) rcodes[m[1]!] = Number(m[2])
  return {
    sent: num(/Queries sent:\s+(\d+)/, stats),
    completed: num(/Queries completed:\s+(\d+)/, stats),
    lost: num(/Queries lost:\s+(\d+)/, stats),
    lostPct: num(/Queries lost:\s+\d+ \(([\d.]+)%\)/, stats),
    qps,
    runTime: num(/Run time \(s\):\s+([\d.]+)/, stats),
    avgMs: lat ? Number(lat[1]) * 1000 : Number.NaN,
    minMs: lat ? Number(lat[2]) * 1000 : Number.NaN,
    maxMs: lat ? Number(lat[3]) * 1000 : Number.NaN,
    sdMs: num(/Latency StdDev \(s\):\s+([\d.]+)/, stats) * 1000,
    requestBytes: num(/Average packet size:\s+request (\d+)/, stats),
    responseBytes: num(/Average packet size:\s+request \d+, response (\d+)/, stats),
    rcodes,
    reconnections: cut >= 0 ? num(/Reconnections:\s+(\d+)/, stdout.slice(cut)) : 0,
  }
}

interface DnsperfSpec {
  /** An EDNS option for every query (dnsperf -E code:hex), e.g. ECS. */
  readonly edns?: string | undefined
  readonly port: number
  readonly file: string
  readonly seconds: number
  readonly tcp: boolean
  readonly opts: Options
  readonly clientCpu: number | undefined
  readonly serverCpu: number | undefined
  readonly serverPid: number | undefined
  readonly verbose: boolean
  readonly scratch: string
  /** dnsperf -Q for this run, overriding --max-qps (the half-rate pass). */
  readonly rate?: number | undefined
}

function dnsperfArgs(
  s: Pick<DnsperfSpec, 'port' | 'file' | 'seconds' | 'tcp' | 'opts' | 'verbose' | 'edns' | 'rate'>,
): string[] {
  const args = ['-s', HOST, '-p', String(s.port), '-d', s.file, '-l', String(s.seconds)]
  if (s.edns !== undefined) args.push('-E', s.edns)
  args.push('-c', String(s.opts.clients), '-q', String(s.opts.outstanding))
  const rate = s.rate ?? s.opts.maxQps
  if (rate !== undefined) args.push('-Q', String(rate))
  if (s.tcp) args.push('-m', 'tcp')
  if (s.verbose) args.push('-v')
  return args
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

async function runDnsperf(s: DnsperfSpec): Promise<Measurement> {
  if (interrupted) throw new Error('interrupted')
  const [cmd, argv] = withPin(s.clientCpu, 'dnsperf', dnsperfArgs(s))
  const outFile = join(s.scratch, 'dnsperf.out')
  const fd = openSync(outFile, 'w')
  const child = track(spawn(cmd, argv, { stdio: ['ignore', fd, 'pipe'] }))
  closeSync(fd)
  let stderr = ''
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    if (stderr.length < 64 * 1024) stderr += d
  })
  const udpBefore = udpRcvbufErrors()
  const dropsBefore = udpSocketDrops(s.port)
  const cpuBefore = cpuTimes()
  const srvBefore = procCpuSeconds(s.serverPid)
  const t0 = performance.now()
  const watchdog = setTimeout(() => child.kill('SIGKILL'), (s.seconds + 30) * 1000)
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject)
    child.once('exit', (c) => resolve(c))
  }).finally(() => clearTimeout(watchdog))
  const wall = (performance.now() - t0) / 1000
  const cpuAfter = cpuTimes()
  const srvAfter = procCpuSeconds(s.serverPid)
  const udpAfter = udpRcvbufErrors()
  const dropsAfter = udpSocketDrops(s.port)
  if (code !== 0) {
    const out = readFileSync(outFile, 'utf8').slice(-2000)
    throw new Error(`dnsperf exited with code ${code}\n${stderr}${out}`)
  }
  // Read the output line by line: with -v it holds one line per query.
  let stats = ''
  let lat = new Float64Array(1 << 16)
  let n = 0
  const rl = createInterface({
    input: createReadStream(outFile, { encoding: 'utf8' }),
    crlfDelay: Number.POSITIVE_INFINITY,
  })
  for await (const line of rl) {
    if (line.startsWith('> ')) {
      const v = Number(line.slice(line.lastIndexOf(' ') + 1))
      if (n === lat.length) {
        const grown = new Float64Array(lat.length * 2)
        grown.set(lat)
        lat = grown
      }
      lat[n++] = v * 1000
    } else if (!line.startsWith('[Timeout]')) {
      stats += `${line}\n`
    }
  }
  rmSync(outFile, { force: true })
  const sorted = lat.subarray(0, n).sort()
  const parsed = parseDnsperf(stats)
  const warnings = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
  const cpuPct = (100 * (srvAfter - srvBefore)) / wall
  return {
    ...parsed,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    p999Ms: percentile(sorted, 99.9),
    serverCpuPct: cpuPct,
    serverUsPerQuery: (cpuPct * 1e4) / parsed.qps,
    udpRcvbufErrors: udpAfter - udpBefore,
    serverSocketDrops: dropsAfter - dropsBefore,
    serverCoreBusyPct: s.serverCpu === undefined ? Number.NaN : busyPct(cpuBefore, cpuAfter, s.serverCpu),
    clientCoreBusyPct: s.clientCpu === undefined ? Number.NaN : busyPct(cpuBefore, cpuAfter, s.clientCpu),
    warnings,
  }
}

// ---------------------------------------------------------------------------------------------
// Results

/** Comparison servers measured on static A only. */
type Other = 'dgram' | 'baseline' | 'ceiling' | 'gdnsd'

const OTHERS = [
  // Our own server with Node's dgram sockets instead of the batched addon: what batching buys.
  {
    name: 'dgram',
    script: 'src/cli.ts',
    // No admin endpoint: the server under test already holds the default one.
    args: [
      'serve',
      '--zones',
      ZONES_DIR,
      '--listen',
      `${HOST}:{PORT}`,
      '--log-level',
      'warn',
      '--admin',
      'off',
      '--udp-io',
      'dgram',
    ],
    label: 'ours with --udp-io dgram, static A',
  },
  {
    name: 'baseline',
    script: 'test/bench/baseline.ts',
    args: ['--port', '{PORT}'],
    label: 'baseline: dns-packet, static A',
  },
  {
    name: 'ceiling',
    script: 'test/bench/ceiling.ts',
    args: ['--port', '{PORT}'],
    label: 'ceiling: pre-encoded, static A',
  },
] as const

/** One kind measured on our server and on gdnsd, each pinned to the same CPU in turn. */
interface GdnsdRow {
  readonly kind: Kind
  readonly label: string
  readonly ours: Measurement
  readonly gdnsd: Measurement
  readonly notes: readonly string[]
}

function gdnsdTable(rows: readonly GdnsdRow[]): string {
  const head = [
    'kind',
    'ours qps',
    'gdnsd qps',
    'ours/gdnsd',
    'ours µs/q',
    'gdnsd µs/q',
    'CPU ratio',
    'gdnsd client core',
  ]
  const body = rows.map((r) => [
    r.label,
    f0(r.ours.qps),
    f0(r.gdnsd.qps),
    f2(r.ours.qps / r.gdnsd.qps),
    f2(r.ours.serverUsPerQuery),
    f2(r.gdnsd.serverUsPerQuery),
    f2(r.gdnsd.serverUsPerQuery / r.ours.serverUsPerQuery),
    pct(r.gdnsd.clientCoreBusyPct),
  ])
  return markdownTable(head, body)
}

/** One kind at half its full-rate qps: latency where the server is not saturated. */
interface HalfRow {
  readonly kind: Kind
  readonly label: string
  readonly rate: number
  readonly m: Measurement
  readonly command: string
}

interface Row {
  readonly kind: Kind | Other
  readonly label: string
  readonly transport: 'udp' | 'tcp'
  readonly runs: readonly Measurement[]
  readonly median: Measurement
  /** qps / static-A qps (median over median); for the baseline row too. */
  readonly ratioToStatic: number
  /** qps / static-A qps with the same EDNS options (static + ECS for the ECS kinds). */
  readonly ratioToRef: number
  readonly command: string
  readonly notes: readonly string[]
}

function median(values: readonly number[]): number {
  const v = values.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b)
  if (v.length === 0) return Number.NaN
  const mid = v.length >> 1
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2
}

function medianOf(runs: readonly Measurement[]): Measurement {
  const m = (k: keyof Measurement): number => median(runs.map((r) => r[k] as number))
  const rcodes: Record<string, number> = {}
  for (const r of runs) for (const [k, v] of Object.entries(r.rcodes)) rcodes[k] = (rcodes[k] ?? 0) + v
  return {
    sent: runs.reduce((s, r) => s + r.sent, 0),
    completed: runs.reduce((s, r) => s + r.completed, 0),
    lost: runs.reduce((s, r) => s + r.lost, 0),
    lostPct: m('lostPct'),
    qps: m('qps'),
    runTime: m('runTime'),
    avgMs: m('avgMs'),
    minMs: m('minMs'),
    maxMs: m('maxMs'),
    sdMs: m('sdMs'),
    p50Ms: m('p50Ms'),
    p99Ms: m('p99Ms'),
    p999Ms: m('p999Ms'),
    requestBytes: m('requestBytes'),
    responseBytes: m('responseBytes'),
    rcodes,
    reconnections: runs.reduce((s, r) => s + r.reconnections, 0),
    serverCpuPct: m('serverCpuPct'),
    serverUsPerQuery: m('serverUsPerQuery'),
    udpRcvbufErrors: runs.reduce((s, r) => s + r.udpRcvbufErrors, 0),
    serverSocketDrops: runs.reduce((s, r) => s + r.serverSocketDrops, 0),
    serverCoreBusyPct: m('serverCoreBusyPct'),
    clientCoreBusyPct: m('clientCoreBusyPct'),
    warnings: [...new Set(runs.flatMap((r) => r.warnings))],
  }
}

function notesFor(kind: Kind | Other, m: Measurement): string[] {
  const notes: string[] = []
  if (m.lost > 0) notes.push(`${m.lost} queries lost (median ${m.lostPct}% per run)`)
  const expected =
    kind === 'dgram' || kind === 'baseline' || kind === 'ceiling' || kind === 'gdnsd'
      ? ['NOERROR']
      : EXPECTED_RCODES[kind]
  for (const [rc, count] of Object.entries(m.rcodes)) {
    if (!expected.includes(rc)) notes.push(`unexpected rcode ${rc} x${count}`)
  }
  if (m.reconnections > 0) notes.push(`${m.reconnections} TCP reconnections`)
  if (m.udpRcvbufErrors > 0) {
    notes.push(
      `kernel dropped ${m.udpRcvbufErrors} datagrams on full UDP receive buffers (RcvbufErrors, machine-wide), ` +
        `${m.serverSocketDrops} of them at the server's socket`,
    )
  }
  const foreign = m.serverCoreBusyPct - m.serverCpuPct
  if (foreign > 10) {
    notes.push(
      `the server's CPU was ${foreign.toFixed(0)}% busy with other work (kernel softirq or other processes): qps may read low`,
    )
  }
  for (const w of m.warnings.slice(0, 5)) notes.push(`dnsperf: ${w}`)
  return notes
}

const f0 = (x: number): string => (Number.isNaN(x) ? '-' : Math.round(x).toLocaleString('en-US'))
const f2 = (x: number): string => (Number.isNaN(x) ? '-' : x.toFixed(2))
const f3 = (x: number): string => (Number.isNaN(x) ? '-' : x.toFixed(3))
const pct = (x: number): string => (Number.isNaN(x) ? '-' : `${x.toFixed(0)}%`)

function table(rows: readonly Row[], withPercentiles: boolean): string {
  const head = ['kind', 'qps', 'vs static', 'vs ref', 'lost', 'avg ms', 'sd ms', 'max ms']
  if (withPercentiles) head.push('p50 ms', 'p99 ms', 'p99.9 ms')
  head.push('resp B', 'server CPU', 'µs/query', 'srv core', 'client core')
  const body = rows.map((r) => {
    const m = r.median
    const cells = [
      r.label,
      f0(m.qps),
      f2(r.ratioToStatic),
      f2(r.ratioToRef),
      `${f2(m.lostPct)}%`,
      f3(m.avgMs),
      f3(m.sdMs),
      f2(m.maxMs),
    ]
    if (withPercentiles) cells.push(f3(m.p50Ms), f3(m.p99Ms), f3(m.p999Ms))
    cells.push(
      f0(m.responseBytes),
      pct(m.serverCpuPct),
      f2(m.serverUsPerQuery),
      pct(m.serverCoreBusyPct),
      pct(m.clientCoreBusyPct),
    )
    return cells
  })
  return markdownTable(head, body)
}

// ---------------------------------------------------------------------------------------------
// Main

function log(msg: string): void {
  process.stderr.write(`${msg}\n`)
}

async function stopAll(): Promise<void> {
  const children = [...live]
  // A Ctrl-C in the terminal reaches the children too; give them a moment to stop on their own.
  await Promise.all(children.map((c) => waitExit(c, 500)))
  for (const c of live) c.kill('SIGTERM')
  await Promise.all([...live].map((c) => waitExit(c, 5000)))
  for (const c of live) c.kill('SIGKILL')
}

type Results = Map<Kind, { runs: Measurement[]; command: string }>

/**
 * Measures every target on its kinds, interleaved: each run goes kind by kind, and for each kind
 * every target that serves it is measured back to back, so a noisy minute hits all of them
 * alike (the ratios are what counts). Targets wait idle, pinned to the same CPU, while another
 * one is measured.
 */
async function measureTargets(
  list: readonly { readonly target: Target; readonly kinds: readonly Kind[] }[],
  opts: Options,
  pin: Pinning,
  files: Record<string, string>,
  scratch: string,
): Promise<Map<string, Results>> {
  const spec = (target: Target, kind: Kind, seconds: number, verbose: boolean): DnsperfSpec => ({
    // The comparison servers ignore EDNS; only gdnsd (like the real server) is sent ECS.
    edns: target.name === 'baseline' || target.name === 'ceiling' ? undefined : KIND_EDNS[kind],
    port: target.port,
    file: files[KIND_FILE[kind]]!,
    seconds,
    tcp: kind === 'tcp',
    opts,
    clientCpu: pin.clientCpu,
    serverCpu: pin.serverCpu,
    serverPid: target.pid,
    verbose,
    scratch,
  })
  if (opts.warmup > 0) {
    for (const { target } of list) {
      const plain = target.name === 'baseline' || target.name === 'ceiling'
      log(`  warm-up ${target.name}: ${opts.warmup} s of ${plain ? 'static A' : 'mixed'} queries`)
      await runDnsperf(spec(target, plain ? 'static' : 'mix', opts.warmup, false))
    }
  }
  const all = new Map<string, Results>(list.map(({ target }) => [target.name, new Map()]))
  for (let run = 1; run <= opts.runs; run++) {
    for (const kind of KINDS) {
      for (const { target, kinds } of list) {
        if (!kinds.includes(kind)) continue
        const s = spec(target, kind, opts.seconds, opts.percentiles)
        const m = await runDnsperf(s)
        log(
          `  run ${run}/${opts.runs} ${target.name} ${KIND_LABEL[kind]}: ${f0(m.qps)} qps, lost ${m.lostPct}%, avg ${f3(m.avgMs)} ms`,
        )
        const results = all.get(target.name)!
        const entry = results.get(kind) ?? { runs: [], command: '' }
        entry.runs.push(m)
        const args = dnsperfArgs({ ...s, file: `$Q/${KIND_FILE[kind]}.txt` })
        entry.command = shellQuote([
          ...(pin.clientCpu === undefined ? [] : ['taskset', '-c', String(pin.clientCpu)]),
          'dnsperf',
          ...args,
        ])
        results.set(kind, entry)
      }
    }
  }
  return all
}

/** One dnsperf run of `kind` at a fixed rate, with per-query latencies (dnsperf -Q and -v). */
async function measureHalfRate(
  target: Target,
  kind: Kind,
  rate: number,
  opts: Options,
  pin: Pinning,
  files: Record<string, string>,
  scratch: string,
): Promise<HalfRow> {
  const s: DnsperfSpec = {
    edns: KIND_EDNS[kind],
    port: target.port,
    file: files[KIND_FILE[kind]]!,
    seconds: opts.seconds,
    tcp: kind === 'tcp',
    opts,
    clientCpu: pin.clientCpu,
    serverCpu: pin.serverCpu,
    serverPid: target.pid,
    verbose: true,
    scratch,
    rate,
  }
  const m = await runDnsperf(s)
  log(`  half rate ${KIND_LABEL[kind]}: -Q ${rate}: p50 ${f3(m.p50Ms)} ms, p99 ${f3(m.p99Ms)} ms, lost ${m.lostPct}%`)
  const args = dnsperfArgs({ ...s, file: `$Q/${KIND_FILE[kind]}.txt` })
  const command = shellQuote([
    ...(pin.clientCpu === undefined ? [] : ['taskset', '-c', String(pin.clientCpu)]),
    'dnsperf',
    ...args,
  ])
  return { kind, label: KIND_LABEL[kind], rate, m, command }
}

function halfTable(rows: readonly HalfRow[]): string {
  const head = ['kind', 'dnsperf -Q', 'qps', 'lost', 'avg ms', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms']
  const body = rows.map((r) => [
    r.label,
    f0(r.rate),
    f0(r.m.qps),
    `${f2(r.m.lostPct)}%`,
    f3(r.m.avgMs),
    f3(r.m.p50Ms),
    f3(r.m.p99Ms),
    f3(r.m.p999Ms),
    f2(r.m.maxMs),
  ])
  return markdownTable(head, body)
}

function markdownTable(head: readonly string[], body: readonly string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)))
  const line = (cells: readonly string[]): string =>
    `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`
  const sep = `|${widths.map((w, i) => (i === 0 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`
  return [line(head), sep, ...body.map(line)].join('\n')
}

async function main(argv: string[]): Promise<number> {
  let opts: Options
  try {
    const parsed = parseOptions(argv)
    if (parsed === 'help') {
      process.stdout.write(USAGE)
      return 0
    }
    opts = parsed
  } catch (e) {
    process.stderr.write(`bench: ${(e as Error).message}\n\n${USAGE}`)
    return 2
  }
  if (opts.writeQueries !== undefined) {
    const paths = writeQueryFiles(opts.writeQueries)
    for (const p of Object.values(paths)) process.stdout.write(`${p}\n`)
    return 0
  }

  const dnsperf = dnsperfVersion()
  if (dnsperf === undefined) {
    process.stderr.write(
      'bench: dnsperf is not installed. Install it with:\n' +
        '  sudo apt-get install dnsperf        (Debian/Ubuntu)\n' +
        '  sudo dnf install dnsperf            (Fedora)\n' +
        '  brew install dnsperf                (macOS)\n',
    )
    return 2
  }
  const pin = choosePinning(opts.pin)
  const mach = machine()
  const scratch = mkdtempSync(join(tmpdir(), 'gslb-bench-'))
  scratchDir = scratch
  const files = writeQueryFiles(join(scratch, 'queries'))
  const started = new Date().toISOString()
  log(pin.pinned ? `bench: ${pin.note}` : `bench: WARNING: ${pin.note}`)

  const rows: Row[] = []
  const half: HalfRow[] = []
  const gdnsdRows: GdnsdRow[] = []
  let gdnsdVersion: string | undefined
  const targets: { name: string; command: string; stderr: string; exitCode: number | null }[] = []
  let failed: Error | undefined
  const running: Target[] = []
  const stopTargets = async (): Promise<void> => {
    for (const t of running.splice(0)) {
      const code = await t.stop()
      // gdnsd logs its whole startup to stderr; keep it only when it did not stop cleanly.
      const stderr = t.name === 'gdnsd' && code === 0 ? '' : t.stderr()
      targets.push({ name: t.name, command: t.command, stderr, exitCode: code })
    }
  }
  try {
    const serverArgs = ['serve', '--zones', ZONES_DIR, '--listen', `${HOST}:{PORT}`, '--log-level', 'warn']
    if (opts.workers > 1) serverArgs.push('--workers', String(opts.workers))
    log('bench: starting server')
    const server = await startTarget('server', pin.serverCpu, 'src/cli.ts', serverArgs)
    running.push(server)
    log(`bench: ${server.command}`)
    const list: { target: Target; kinds: readonly Kind[] }[] = [{ target: server, kinds: opts.kinds }]
    const gdnsdBin = opts.gdnsd ? gdnsdAvailable() : undefined
    if (gdnsdBin !== undefined) {
      log(`bench: starting gdnsd (${gdnsdBin})`)
      // As many gdnsd listener threads as our workers, so the two use the cores alike.
      const g = await startGdnsd({ port: await freePort(), cpu: pin.serverCpu, scratch, threads: opts.workers })
      stopGdnsd = () => g.stop()
      gdnsdVersion = g.version
      const t: Target = { name: 'gdnsd', pid: g.pid, port: g.port, command: g.command, stderr: g.stderr, stop: g.stop }
      running.push(t)
      log(`bench: ${g.command}`)
      list.push({ target: t, kinds: opts.kinds.filter((k) => k !== 'sticky') })
    }
    if (opts.baseline) {
      for (const other of OTHERS) {
        log(`bench: starting ${other.name}`)
        const t = await startTarget(other.name, pin.serverCpu, other.script, [...other.args])
        running.push(t)
        log(`bench: ${t.command}`)
        list.push({ target: t, kinds: ['static'] })
      }
    }
    const measured = await measureTargets(list, opts, pin, files, scratch)
    if (opts.halfRate) {
      const ours = measured.get('server')!
      for (const kind of opts.kinds) {
        const rate = Math.max(1, Math.floor(median(ours.get(kind)!.runs.map((r) => r.qps)) / 2))
        half.push(await measureHalfRate(server, kind, rate, opts, pin, files, scratch))
      }
    }
    await stopTargets()
    stopGdnsd = undefined

    const results = measured.get('server')!
    const qpsOf = (k: Kind): number => {
      const r = results.get(k)
      return r ? median(r.runs.map((m) => m.qps)) : Number.NaN
    }
    const staticQps = qpsOf('static')
    for (const kind of opts.kinds) {
      const r = results.get(kind)!
      const med = medianOf(r.runs)
      const ref = KIND_EDNS[kind] !== undefined && kind !== 'static-ecs' ? qpsOf('static-ecs') : staticQps
      rows.push({
        kind,
        label: KIND_LABEL[kind],
        transport: kind === 'tcp' ? 'tcp' : 'udp',
        runs: r.runs,
        median: med,
        ratioToStatic: med.qps / staticQps,
        ratioToRef: med.qps / ref,
        command: r.command,
        notes: notesFor(kind, med),
      })
    }
    for (const other of opts.baseline ? OTHERS : []) {
      const r = measured.get(other.name)!.get('static')!
      const med = medianOf(r.runs)
      rows.push({
        kind: other.name,
        label: other.label,
        transport: 'udp',
        runs: r.runs,
        median: med,
        ratioToStatic: med.qps / staticQps,
        ratioToRef: med.qps / staticQps,
        command: r.command,
        notes: notesFor(other.name, med),
      })
    }
    const theirs = measured.get('gdnsd')
    if (theirs !== undefined) {
      for (const [kind, r] of theirs) {
        const ours = rows.find((row) => row.kind === kind)!
        const g = medianOf(r.runs)
        gdnsdRows.push({ kind, label: KIND_LABEL[kind], ours: ours.median, gdnsd: g, notes: notesFor(kind, g) })
      }
    }
  } catch (e) {
    failed = e as Error
  } finally {
    await stopTargets().catch(() => {})
    await stopGdnsd?.()
    await stopAll()
    rmSync(scratch, { recursive: true, force: true })
  }
  if (failed) {
    process.stderr.write(`bench: ${failed.message}\n`)
    for (const t of targets) if (t.stderr) process.stderr.write(`${t.name} stderr:\n${t.stderr}\n`)
    return 1
  }

  const baselineRow = rows.find((r) => r.kind === 'baseline')
  const staticRow = rows.find((r) => r.kind === 'static')!
  const versions = {
    node: process.version,
    dnsperf,
    dnsPacket: packageVersion('dns-packet'),
    server: (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version,
    git: gitRevision(),
  }
  const queryFileNote = 'node test/bench/run.ts --write-queries $Q'
  if (opts.json) {
    const out = {
      started,
      machine: mach,
      versions,
      pinning: pin,
      settings: { ...opts, writeQueries: undefined },
      commands: {
        queryFiles: queryFileNote,
        targets: targets.map((t) => ({ name: t.name, command: t.command, exitCode: t.exitCode })),
        dnsperf: rows.map((r) => ({ kind: r.kind, command: r.command })),
      },
      results: rows.map((r) => ({
        kind: r.kind,
        label: r.label,
        transport: r.transport,
        ratioToStatic: r.ratioToStatic,
        ratioToRef: r.ratioToRef,
        median: r.median,
        runsQps: r.runs.map((m) => m.qps),
        notes: r.notes,
      })),
      staticVsBaseline: baselineRow ? staticRow.median.qps / baselineRow.median.qps : undefined,
      halfRate: half.map((h) => ({ kind: h.kind, rate: h.rate, command: h.command, m: h.m })),
      gdnsd: gdnsdRows.map((r) => ({
        kind: r.kind,
        version: gdnsdVersion,
        oursQps: r.ours.qps,
        gdnsdQps: r.gdnsd.qps,
        oursUsPerQuery: r.ours.serverUsPerQuery,
        gdnsdUsPerQuery: r.gdnsd.serverUsPerQuery,
        gdnsd: r.gdnsd,
      })),
      staticVsBaselineCpuPerQuery: baselineRow
        ? baselineRow.median.serverUsPerQuery / staticRow.median.serverUsPerQuery
        : undefined,
      serverStderr: targets.map((t) => ({ name: t.name, stderr: t.stderr })).filter((t) => t.stderr),
    }
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`)
    return 0
  }

  const o: string[] = []
  o.push(`gslb-dns benchmark, ${started}`)
  o.push(
    `machine:  ${mach.nproc} CPUs (nproc), ${mach.cpuModel}, ${mach.kernel}, load average ${mach.loadAvg.join(' ')}`,
  )
  o.push(
    `versions: node ${versions.node}, dnsperf ${versions.dnsperf}, dns-packet ${versions.dnsPacket}, ` +
      `gslb-dns ${versions.server} (git ${versions.git})`,
  )
  o.push(`pinning:  ${pin.note}`)
  o.push(
    `settings: ${opts.seconds} s per run, median of ${opts.runs} run(s), ${opts.warmup} s warm-up, ` +
      `dnsperf -c ${opts.clients} -q ${opts.outstanding}${opts.maxQps ? ` -Q ${opts.maxQps}` : ''}`,
  )
  o.push('')
  o.push('commands (PORT is a free port picked per target; $Q holds the query files):')
  o.push(`  ${queryFileNote}`)
  for (const t of targets) o.push(`  ${t.command}`)
  for (const r of rows) o.push(`  ${r.command}    # ${r.label}`)
  o.push('')
  o.push(table(rows, opts.percentiles))
  o.push('')
  o.push('qps and latencies are dnsperf\'s; "vs static" = qps / static-A qps of this invocation; "vs ref" = the same')
  o.push('against static A sent with the same EDNS options (static A + ECS for the ECS kinds); "server CPU" = server')
  o.push('process CPU time per wall second, "µs/query" = that CPU time per answered query (capacity ~ 1e6 / µs/query);')
  o.push('"srv core"/"client core" = busy share of each pinned CPU, whoever used it (incl. softirq, other processes).')
  if (!opts.percentiles) o.push('dnsperf prints no latency percentiles; sd = its latency StdDev (use --percentiles).')
  if (baselineRow) {
    o.push('')
    o.push(
      `static A vs baseline: ${f0(staticRow.median.qps)} / ${f0(baselineRow.median.qps)} qps = ` +
        `${f2(staticRow.median.qps / baselineRow.median.qps)}x the naive dns-packet decode+encode server`,
    )
    o.push(
      `server CPU per query: ${f2(staticRow.median.serverUsPerQuery)} µs vs ${f2(baselineRow.median.serverUsPerQuery)} µs = ` +
        `${f2(baselineRow.median.serverUsPerQuery / staticRow.median.serverUsPerQuery)}x the baseline's efficiency ` +
        '(robust to other load on the machine)',
    )
  }
  const dgramRow = rows.find((r) => r.kind === 'dgram')
  if (dgramRow) {
    o.push(
      `static A batched vs dgram: ${f0(staticRow.median.qps)} / ${f0(dgramRow.median.qps)} qps = ` +
        `${f2(staticRow.median.qps / dgramRow.median.qps)}x (CPU per query ${f2(staticRow.median.serverUsPerQuery)} µs ` +
        `vs ${f2(dgramRow.median.serverUsPerQuery)} µs)`,
    )
  }
  const ceilingRow = rows.find((r) => r.kind === 'ceiling')
  if (ceilingRow) {
    o.push(
      `static A vs ceiling: ${f0(staticRow.median.qps)} / ${f0(ceilingRow.median.qps)} qps = ` +
        `${f2(staticRow.median.qps / ceilingRow.median.qps)}x the pre-encoded-answer Node server ` +
        `(CPU per query ${f2(staticRow.median.serverUsPerQuery)} µs vs ${f2(ceilingRow.median.serverUsPerQuery)} µs)`,
    )
  }
  if (gdnsdRows.length > 0) {
    o.push('')
    o.push(
      `gdnsd ${gdnsdVersion} on the same CPU, same query files (test/bench/gdnsd/; sticky has no gdnsd equivalent). ` +
        'ours/gdnsd = qps ratio; CPU ratio = gdnsd µs/query / ours, the fairer figure when dnsperf ' +
        "saturates its own core before gdnsd does (see 'gdnsd client core'):",
    )
    o.push('')
    o.push(gdnsdTable(gdnsdRows))
  } else if (opts.gdnsd) {
    o.push('')
    o.push('gdnsd: not installed (apt-get install gdnsd), so no side-by-side figures.')
  }
  if (half.length > 0) {
    o.push('')
    o.push('half rate: each kind again at half its full-rate qps (dnsperf -Q), latency from per-query lines (-v):')
    for (const h of half) o.push(`  ${h.command}    # ${h.label}`)
    o.push('')
    o.push(halfTable(half))
  }
  const notes = rows.flatMap((r) => r.notes.map((n) => `${r.label}: ${n}`))
  for (const r of gdnsdRows) for (const n of r.notes) notes.push(`gdnsd ${r.label}: ${n}`)
  for (const t of targets) {
    if (t.exitCode !== 0) notes.push(`${t.name} exited with code ${t.exitCode} on SIGTERM`)
    if (t.stderr.trim()) notes.push(`${t.name} stderr: ${t.stderr.trim().slice(0, 2000)}`)
  }
  if (!pin.pinned) notes.push(pin.note)
  if (notes.length > 0) {
    o.push('')
    o.push('notes:')
    for (const n of notes) o.push(`  - ${n}`)
  }
  process.stdout.write(`${o.join('\n')}\n`)
  return 0
}

let interrupted = false
let scratchDir: string | undefined
/** gdnsd is not one of `live`'s children (gdnsd.ts spawns it): stopped through this on the way out. */
let stopGdnsd: (() => Promise<number | null>) | undefined
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (interrupted) process.exit(130)
    interrupted = true
    log(`bench: ${sig}; stopping the server and dnsperf`)
    void Promise.all([stopAll(), stopGdnsd?.()]).finally(() => process.exit(130))
  })
}
// Last resort if something throws past main: never leave a server behind.
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL')
  if (scratchDir) rmSync(scratchDir, { recursive: true, force: true })
})

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  async (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    await stopAll()
    process.exitCode = 1
  },
)
