/**
 * Probe load: can one core keep N HTTP health checks on schedule?
 *
 *   node test/bench/probe-load.ts [--targets 5000] [--interval 5000] [--seconds 30] [--servers 8]
 *                                 [--check http|tcp|noop] [--max-in-flight 256] [--no-pin] [--json]
 *
 * A child process runs `--servers` small HTTP servers, each bound to its own loopback address
 * (127.0.0.11, 127.0.0.12, ...; Linux routes all of 127/8 to lo), pinned to CPU 1. This process
 * re-executes itself under `taskset -c 0` and runs a ProbeScheduler with a MemoryStore over
 * `--targets` targets spread over those servers, every `--interval` ms. The first interval is a
 * warm-up (first probes are spread over it); the figures cover the rest of the run: probes/s
 * achieved against targets/interval, CPU time of this process (user+system, % of one core), event
 * loop utilisation, lateness of probe starts against their due time, and failed probes by error.
 * `--check noop` replaces the check with an immediate success, which isolates the scheduler's own
 * cost; `--check tcp` probes the same servers with a TCP connect.
 *
 * Traffic stays on 127.0.0.0/8, and every loop is bounded in time: the run stops after
 * `--seconds`, a watchdog kills everything 60 s later, and the server child exits when its stdin
 * closes (that is, when this process goes away) or after its own deadline.
 */

import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { createServer, type Server } from 'node:http'
import { cpus, loadavg, release } from 'node:os'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { runCheck } from '../../src/probe/checks/index.ts'
import { ProbeScheduler, type ProbeSchedulerStats } from '../../src/probe/scheduler.ts'
import type { CheckConfig, CheckResult, ProbeTarget } from '../../src/probe/types.ts'
import { MemoryStore } from '../../src/state/memory.ts'

const PINNED_ENV = 'GSLB_PROBE_BENCH_PINNED'
const SELF = new URL(import.meta.url).pathname

const { values: opts } = parseArgs({
  options: {
    targets: { type: 'string', default: '5000' },
    interval: { type: 'string', default: '5000' },
    seconds: { type: 'string', default: '30' },
    servers: { type: 'string', default: '8' },
    check: { type: 'string', default: 'http' },
    'max-in-flight': { type: 'string', default: '256' },
    timeout: { type: 'string', default: '2000' },
    'no-pin': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    serve: { type: 'boolean', default: false },
  },
})

function intOption(name: string, value: string, min: number): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < min) {
    console.error(`--${name} must be an integer >= ${min}, got ${JSON.stringify(value)}`)
    process.exit(2)
  }
  return n
}

const TARGETS = intOption('targets', opts.targets, 1)
const INTERVAL_MS = intOption('interval', opts.interval, 10)
const SECONDS = intOption('seconds', opts.seconds, 1)
const SERVERS = intOption('servers', opts.servers, 1)
const MAX_IN_FLIGHT = intOption('max-in-flight', opts['max-in-flight'], 1)
const TIMEOUT_MS = intOption('timeout', opts.timeout, 1)
const CHECK = opts.check
if (CHECK !== 'http' && CHECK !== 'tcp' && CHECK !== 'noop') {
  console.error(`--check must be http, tcp or noop, got ${JSON.stringify(CHECK)}`)
  process.exit(2)
}
if (SERVERS > 200) {
  console.error('--servers must be at most 200 (one loopback address each, 127.0.0.11 upwards)')
  process.exit(2)
}

const hasTaskset = spawnSync('taskset', ['-V'], { stdio: 'ignore' }).status === 0
const cpuCount = cpus().length

// -------------------------------------------------------------------------------------------
// Server child: one HTTP server per loopback address, answering 200 "ok".

if (opts.serve) {
  const servers: Server[] = []
  const listening: Array<{ address: string; port: number }> = []
  for (let i = 0; i < SERVERS; i++) {
    const address = `127.0.0.${11 + i}`
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '3' })
      res.end('ok\n')
    })
    server.keepAliveTimeout = 1000
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(0, address, () => resolve())
    })
    const a = server.address()
    if (a === null || typeof a === 'string') throw new Error('no address')
    listening.push({ address, port: a.port })
    servers.push(server)
  }
  process.stdout.write(`${JSON.stringify({ ready: listening })}\n`)
  const exit = () => {
    for (const s of servers) s.closeAllConnections()
    process.exit(0)
  }
  process.stdin.on('end', exit)
  process.stdin.on('close', exit)
  process.stdin.resume()
  setTimeout(exit, (SECONDS + 90) * 1000).unref()
} else if (!opts['no-pin'] && hasTaskset && process.env[PINNED_ENV] !== '1') {
  // -------------------------------------------------------------------------------------------
  // Re-run this script pinned to CPU 0, so "% of one core" means exactly that.
  const child = spawn('taskset', ['-c', '0', process.execPath, ...process.execArgv, SELF, ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, [PINNED_ENV]: '1' },
  })
  const watchdog = setTimeout(() => child.kill('SIGKILL'), (SECONDS + 60) * 1000)
  child.on('exit', (code, signal) => {
    clearTimeout(watchdog)
    process.exit(code ?? (signal === null ? 1 : 128))
  })
} else {
  await bench()
}

// -------------------------------------------------------------------------------------------
// The measured process.

async function startServers(): Promise<{ child: ChildProcess; servers: Array<{ address: string; port: number }> }> {
  const args = [...process.execArgv, SELF, '--serve', '--servers', String(SERVERS), '--seconds', String(SECONDS)]
  // On CPU 1 when there is one, so the servers never compete with the measured process.
  const pin = hasTaskset && !opts['no-pin'] && cpuCount > 1
  const child = pin
    ? spawn('taskset', ['-c', '1', process.execPath, ...args], { stdio: ['pipe', 'pipe', 'inherit'] })
    : spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines = createInterface({ input: child.stdout! })
  const servers = await new Promise<Array<{ address: string; port: number }>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('servers not ready after 15 s')), 15_000)
    lines.once('line', (line) => {
      clearTimeout(timer)
      const parsed = JSON.parse(line) as { ready: Array<{ address: string; port: number }> }
      resolve(parsed.ready)
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`server child exited with ${code}`))
    })
  })
  return { child, servers }
}

function makeCheck(port: number): CheckConfig {
  const common = {
    name: 'bench',
    intervalMs: INTERVAL_MS,
    jitter: 0.1,
    timeoutMs: TIMEOUT_MS,
    rise: 2,
    fall: 3,
    address: undefined,
    port,
  }
  if (CHECK === 'tcp') return { ...common, kind: 'tcp' }
  return {
    ...common,
    kind: 'http',
    method: 'GET',
    path: '/health',
    host: undefined,
    sni: undefined,
    ca: undefined,
    insecure: false,
    statuses: undefined,
    bodyContains: undefined,
    bodyMatches: undefined,
    load: undefined,
  }
}

function pct(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
}

function cpuModel(): string {
  return cpus()[0]?.model.trim() ?? 'unknown'
}

async function bench(): Promise<void> {
  const watchdog = setTimeout(
    () => {
      console.error('watchdog: run exceeded its time limit')
      process.exit(3)
    },
    (SECONDS + 60) * 1000,
  )
  watchdog.unref()

  const loadBefore = loadavg()[0]!
  const { child, servers } = await startServers()
  const targets: ProbeTarget[] = []
  for (let i = 0; i < TARGETS; i++) {
    const s = servers[i % servers.length]!
    targets.push({
      id: `bench.example|ep-${i}`,
      zone: 'bench.example',
      endpoint: `ep-${i}`,
      address: s.address,
      check: makeCheck(s.port),
    })
  }

  // Counts results (and their latency) around the real check; the wrapper itself is a few
  // property reads per probe.
  const errors = new Map<string, number>()
  let measuring = false
  const latencies: number[] = []
  const NOOP: CheckResult = { ok: true, latencyMs: 0, error: undefined, load: undefined }
  const run = async (t: ProbeTarget, signal: AbortSignal): Promise<CheckResult> => {
    const r = CHECK === 'noop' ? NOOP : await runCheck(t, signal)
    if (measuring) {
      // An aborted signal here means the scheduler's deadline fired first; it recorded a timeout.
      const error = signal.aborted ? 'timeout (scheduler)' : (r.error ?? 'failed')
      if (!r.ok) errors.set(error, (errors.get(error) ?? 0) + 1)
      else if (r.latencyMs !== undefined && latencies.length < 2_000_000) latencies.push(r.latencyMs)
    }
    return r
  }

  const store = new MemoryStore()
  const scheduler = new ProbeScheduler({ vantage: 'bench', prober: 'bench', store, run, maxInFlight: MAX_IN_FLIGHT })
  const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

  scheduler.setTargets(targets)
  const warmupMs = Math.min(INTERVAL_MS, Math.floor((SECONDS * 1000) / 3))
  await sleep(warmupMs)

  measuring = true
  const start = { at: performance.now(), cpu: process.cpuUsage(), elu: performance.eventLoopUtilization() }
  const startStats = scheduler.stats()
  const perSecond: ProbeSchedulerStats[] = []
  const measureMs = SECONDS * 1000 - warmupMs
  const until = start.at + measureMs
  while (performance.now() < until) {
    await sleep(Math.min(1000, until - performance.now()))
    perSecond.push(scheduler.stats())
  }
  const wallMs = performance.now() - start.at
  const cpu = process.cpuUsage(start.cpu)
  const elu = performance.eventLoopUtilization(start.elu)
  const end = scheduler.stats()
  measuring = false
  await scheduler.stop()
  child.stdin?.end()
  const rss = process.memoryUsage().rss

  const probes = end.probesDone - startStats.probesDone
  const expectedPerSec = (TARGETS * 1000) / INTERVAL_MS
  const achievedPerSec = (probes * 1000) / wallMs
  const cpuPct = ((cpu.user + cpu.system) / 1000 / wallMs) * 100
  const failed = [...errors.values()].reduce((a, b) => a + b, 0)
  latencies.sort((a, b) => a - b)
  const p99s = perSecond.map((s) => s.lateMsP99)
  const result = {
    command: `node test/bench/probe-load.ts ${process.argv.slice(2).join(' ')}`.trim(),
    machine: {
      nproc: cpuCount,
      cpu: cpuModel(),
      node: process.version,
      kernel: release(),
      pinned: process.env[PINNED_ENV] === '1' ? 'taskset -c 0 (servers on CPU 1)' : 'no',
      // Other work on the machine shows up as lateness and missed probes; this says how much there was.
      loadavg1m: { before: round(loadBefore), after: round(loadavg()[0]!) },
    },
    config: {
      targets: TARGETS,
      intervalMs: INTERVAL_MS,
      seconds: SECONDS,
      warmupMs,
      servers: servers.length,
      check: CHECK,
      maxInFlight: MAX_IN_FLIGHT,
      timeoutMs: TIMEOUT_MS,
    },
    probesPerSec: { expected: round(expectedPerSec), achieved: round(achievedPerSec), probes },
    cpu: {
      pctOfOneCore: round(cpuPct),
      userMs: Math.round(cpu.user / 1000),
      systemMs: Math.round(cpu.system / 1000),
      eventLoopUtilisation: round(elu.utilization),
      usPerProbe: round((cpu.user + cpu.system) / Math.max(1, probes)),
    },
    lateMs: {
      p50: round(end.lateMsP50),
      p99: round(end.lateMsP99),
      max: round(end.lateMsMax),
      worstSecondP99: round(Math.max(0, ...p99s)),
      note: 'p50/p99/max over the last 4096 starts; worstSecondP99 is the worst of the per-second readings',
    },
    checkLatencyMs: { p50: round(pct(latencies, 0.5)), p99: round(pct(latencies, 0.99)) },
    failed,
    errors: Object.fromEntries(errors),
    scheduler: {
      inFlightAtEnd: end.inFlight,
      queuedAtEnd: end.queued,
      flushes: end.flushes,
      writeErrors: end.writeErrors,
    },
    rssMiB: Math.round(rss / 1048576),
  }

  if (opts.json) console.log(JSON.stringify(result, null, 2))
  else {
    const m = result.machine
    console.log(`probe-load: ${result.command}`)
    console.log(
      `machine: nproc ${m.nproc}, ${m.cpu}, node ${m.node}, linux ${m.kernel}, pinned: ${m.pinned}, ` +
        `load average ${m.loadavg1m.before} before, ${m.loadavg1m.after} after`,
    )
    console.log(
      `config: ${TARGETS} ${CHECK} targets on ${servers.length} servers, interval ${INTERVAL_MS} ms ±10%, ` +
        `timeout ${TIMEOUT_MS} ms, maxInFlight ${MAX_IN_FLIGHT}, measured ${round(wallMs / 1000)} s after ${warmupMs} ms warm-up`,
    )
    console.log(
      `probes/s: ${result.probesPerSec.achieved} achieved / ${result.probesPerSec.expected} expected ` +
        `(${round((achievedPerSec / expectedPerSec) * 100)} %)`,
    )
    console.log(
      `cpu: ${result.cpu.pctOfOneCore} % of one core (user ${result.cpu.userMs} ms, system ${result.cpu.systemMs} ms), ` +
        `event loop ${round(elu.utilization * 100)} % busy, ${result.cpu.usPerProbe} µs CPU per probe`,
    )
    console.log(
      `lateness ms: p50 ${result.lateMs.p50}, p99 ${result.lateMs.p99}, max ${result.lateMs.max}, ` +
        `worst per-second p99 ${result.lateMs.worstSecondP99}`,
    )
    console.log(`check latency ms: p50 ${result.checkLatencyMs.p50}, p99 ${result.checkLatencyMs.p99}`)
    console.log(`failed probes: ${failed}${failed > 0 ? ` ${JSON.stringify(result.errors)}` : ''}`)
    console.log(
      `store: ${end.flushes} flushes, ${end.writeErrors} write errors; in flight at end ${end.inFlight}, ` +
        `queued ${end.queued}; rss ${result.rssMiB} MiB`,
    )
  }
  clearTimeout(watchdog)
}

function round(n: number): number {
  return Math.round(n * 100) / 100
}
