/**
 * Self-check for the gdnsd comparison target (test/bench/gdnsd.ts, test/bench/gdnsd/):
 *
 *   node test/bench/gdnsd-check.ts [--dnsperf SECONDS] [--server-cpu 0] [--client-cpu 1]
 *
 * Starts gdnsd on a free 127.0.0.1 port, asks it with dig for every benchmark name and checks the
 * answers match what our server gives for the same name (addresses, pools per client subnet), that
 * it listens on 127.0.0.1:PORT only, and that it stops cleanly. Exits 1 on the first failure list.
 *
 * With --dnsperf N it then also runs dnsperf for N seconds per kind on run.ts's own query files
 * (gdnsd pinned to --server-cpu, dnsperf to --client-cpu) and prints each command, its qps, gdnsd's
 * CPU time per query and how busy both cores were (a shared or saturated core makes qps read low).
 *
 * ECS subnets are documentation ranges (the fixture table in test/fixtures/geo/README.md), plus
 * 81.2.69.0/24, the benchmark's own ECS client. They are only bytes inside queries to 127.0.0.1.
 */

import { spawnSync } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { type GdnsdTarget, gdnsdAvailable, startGdnsd } from './gdnsd.ts'

const ROOT = new URL('../../', import.meta.url).pathname.replace(/\/$/, '')
const HOST = '127.0.0.1'
const G = 'gslb.bench.example'

const EU_A = ['192.0.2.11', '192.0.2.12']
const EU_AAAA = ['2001:db8:e0::11', '2001:db8:e0::12']
const US_A = ['192.0.2.21', '192.0.2.22']
const AP_A = ['192.0.2.31']
const ALL_A = [...EU_A, ...US_A, ...AP_A]
const ALL_AAAA = [...EU_AAAA, '2001:db8:a0::21', '2001:db8:a0::22', '2001:db8:f0::31']

/** The benchmark's ECS client (run.ts ECS_UK_24) and fixture networks with a known continent. */
const ECS = {
  bench: '81.2.69.0/24', // GB, EU (as the bundled database says)
  eu: '198.51.100.0/25', // DE, EU
  na: '198.51.100.128/25', // US, NA
  as: '203.0.113.0/24', // JP, AS
  sa: '192.0.2.0/24', // BR, SA: not in the map -> default
  as6: '2001:db8:f0::/48', // JP, AS over IPv6
} as const

/** dnsperf -E value run.ts sends with geo/latency/sticky: ECS 81.2.69.0/24 (family 1, /24, 3 bytes). */
const ECS_UK_24 = '8:00011800510245'

// ---------------------------------------------------------------------------------------------
// dig

interface DigAnswer {
  readonly status: string
  /** rdata of the answer section's records of the asked type (CNAMEs are left out). */
  readonly data: string[]
  /** The ECS scope prefix gdnsd returned, if the reply carried ECS. */
  readonly scope: number | undefined
}

function dig(port: number, name: string, type: string, subnet?: string): DigAnswer {
  const args = [`@${HOST}`, '-p', String(port), '+norec', '+tries=1', '+time=2', name, type]
  if (subnet !== undefined) args.push(`+subnet=${subnet}`)
  const r = spawnSync('dig', args, { encoding: 'utf8', timeout: 10_000 })
  if (r.error || r.status !== 0) throw new Error(`dig ${args.join(' ')} failed: ${r.error?.message ?? r.stderr}`)
  const status = /status: (\w+)/.exec(r.stdout)?.[1] ?? 'none'
  const scope = /CLIENT-SUBNET: \S+\/(\d+)\s*$/m.exec(r.stdout)?.[1]
  const answer = r.stdout.split('ANSWER SECTION:\n')[1]?.split('\n\n')[0] ?? ''
  const data = answer
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[3] === type)
    .map((f) => f.slice(4).join(' '))
  return { status, data, scope: scope === undefined ? undefined : Number(scope) }
}

/** `count` queries in one dig process (batch mode, -f): the A/AAAA rdata of every answer. */
function digMany(port: number, name: string, type: string, count: number, scratch: string): string[] {
  const file = join(scratch, 'dig-batch.txt')
  writeFileSync(file, `${name} ${type}\n`.repeat(count))
  const r = spawnSync('dig', [`@${HOST}`, '-p', String(port), '+norec', '+tries=1', '+time=2', '+short', '-f', file], {
    encoding: 'utf8',
    timeout: 60_000,
  })
  if (r.error || r.status !== 0) throw new Error(`dig -f failed: ${r.error?.message ?? r.stderr}`)
  return r.stdout.split('\n').filter(Boolean)
}

// ---------------------------------------------------------------------------------------------
// Checks

const failures: string[] = []

function check(what: string, ok: boolean, detail: string): void {
  process.stdout.write(`${ok ? 'ok  ' : 'FAIL'}  ${what}${ok ? '' : `: ${detail}`}\n`)
  if (!ok) failures.push(`${what}: ${detail}`)
}

const sameSet = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && [...a].sort().join() === [...b].sort().join()

/** NOERROR with a non-empty answer whose every address is in `allowed` (and exactly `n` if given). */
function expectFrom(
  port: number,
  what: string,
  name: string,
  type: string,
  allowed: readonly string[],
  subnet?: string,
  n = 1,
): DigAnswer {
  const a = dig(port, name, type, subnet)
  check(
    what,
    a.status === 'NOERROR' && a.data.length === n && a.data.every((d) => allowed.includes(d)),
    `${a.status} [${a.data.join(', ')}], want ${n} of [${allowed.join(', ')}]`,
  )
  return a
}

function runChecks(t: GdnsdTarget, scratch: string): void {
  const p = t.port

  // Static zone, copied verbatim from test/bench/zones/bench.example.zone.
  expectFrom(p, 'static A www.bench.example', 'www.bench.example', 'A', ['192.0.2.10'])
  expectFrom(p, 'static AAAA www.bench.example', 'www.bench.example', 'AAAA', ['2001:db8::10'])
  expectFrom(p, 'CNAME chase alias2 -> alias -> www', 'alias2.bench.example', 'A', ['192.0.2.10'])
  expectFrom(p, 'wildcard x.wild', 'x.wild.bench.example', 'A', ['192.0.2.80'])
  const mx = dig(p, 'bench.example', 'MX')
  check('MX bench.example', sameSet(mx.data, ['10 mail.bench.example.', '20 mail2.bench.example.']), mx.data.join(', '))
  const nx = dig(p, 'nope0001.bench.example', 'A')
  check('NXDOMAIN nope0001', nx.status === 'NXDOMAIN', nx.status)

  // GSLB static records.
  expectFrom(p, 'static.gslb A', `static.${G}`, 'A', ['192.0.2.9'])
  expectFrom(p, 'ns1.gslb A', `ns1.${G}`, 'A', ['192.0.2.1'])

  // weighted: one eu address per answer, eu-1:eu-2 = 3:1.
  expectFrom(p, 'weighted A', `weighted.${G}`, 'A', EU_A)
  expectFrom(p, 'weighted AAAA', `weighted.${G}`, 'AAAA', EU_AAAA)
  const sample = digMany(p, `weighted.${G}`, 'A', 400, scratch)
  const eu1 = sample.filter((a) => a === '192.0.2.11').length / sample.length
  check(
    'weighted A: 400 answers, all eu, eu-1 share ~0.75',
    sample.length === 400 && sample.every((a) => EU_A.includes(a)) && eu1 > 0.65 && eu1 < 0.85,
    `${sample.length} answers, eu-1 share ${eu1.toFixed(2)}`,
  )

  // geo: continent of the ECS subnet -> pool, then weighted within it.
  const geoBench = expectFrom(p, `geo A ECS ${ECS.bench} (bench client, GB) -> eu`, `geo.${G}`, 'A', EU_A, ECS.bench)
  check('geo ECS scope for the bench client is /18 (as our server)', geoBench.scope === 18, `scope ${geoBench.scope}`)
  expectFrom(p, `geo AAAA ECS ${ECS.bench} -> eu`, `geo.${G}`, 'AAAA', EU_AAAA, ECS.bench)
  expectFrom(p, `geo A ECS ${ECS.eu} (DE) -> eu`, `geo.${G}`, 'A', EU_A, ECS.eu)
  expectFrom(p, `geo A ECS ${ECS.na} (US) -> us`, `geo.${G}`, 'A', US_A, ECS.na)
  expectFrom(p, `geo A ECS ${ECS.as} (JP) -> ap`, `geo.${G}`, 'A', AP_A, ECS.as)
  expectFrom(p, `geo A ECS ${ECS.as6} (JP, IPv6) -> ap`, `geo.${G}`, 'A', AP_A, ECS.as6)
  expectFrom(p, `geo A ECS ${ECS.sa} (BR, SA) -> default us`, `geo.${G}`, 'A', US_A, ECS.sa)
  expectFrom(p, 'geo A no ECS (127.0.0.1, unknown) -> default us', `geo.${G}`, 'A', US_A)

  // failover: eu is up, so always eu (weighted within).
  expectFrom(p, 'failover A -> eu', `failover.${G}`, 'A', EU_A)
  expectFrom(p, 'failover AAAA -> eu', `failover.${G}`, 'AAAA', EU_AAAA)

  // latency: nearest pool from the client's continent, then its first endpoint.
  expectFrom(p, `latency A ECS ${ECS.bench} -> eu-1`, `latency.${G}`, 'A', ['192.0.2.11'], ECS.bench)
  expectFrom(p, `latency AAAA ECS ${ECS.bench} -> eu-1`, `latency.${G}`, 'AAAA', ['2001:db8:e0::11'], ECS.bench)
  expectFrom(p, `latency A ECS ${ECS.na} -> us-1`, `latency.${G}`, 'A', ['192.0.2.21'], ECS.na)
  expectFrom(p, `latency A ECS ${ECS.as} -> ap-1`, `latency.${G}`, 'A', ['192.0.2.31'], ECS.as)
  expectFrom(p, 'latency A no ECS -> default us-1', `latency.${G}`, 'A', ['192.0.2.21'])

  // multi: every endpoint (5, under the cap of 8).
  expectFrom(p, 'multi A: all 5', `multi.${G}`, 'A', ALL_A, undefined, 5)
  expectFrom(p, 'multi AAAA: all 5', `multi.${G}`, 'AAAA', ALL_AAAA, undefined, 5)

  // sticky has no gdnsd counterpart: absent on purpose (README).
  const sticky = dig(p, `sticky.${G}`, 'A', ECS.bench)
  check('sticky is absent (NXDOMAIN, documented)', sticky.status === 'NXDOMAIN', sticky.status)

  // Network rule: gdnsd's only inet sockets are 127.0.0.1:PORT (UDP and TCP).
  const ss = spawnSync('ss', ['-H', '-tuanp'], { encoding: 'utf8' })
  if (ss.error) {
    check('sockets (ss)', false, `ss not available: ${ss.error.message}`)
  } else {
    const mine = ss.stdout.split('\n').filter((l) => l.includes(`pid=${t.pid},`))
    const locals = mine.map((l) => l.trim().split(/\s+/)[4])
    check(
      `gdnsd's inet sockets are ${HOST}:${p} only (udp + tcp)`,
      mine.length >= 2 && locals.every((a) => a === `${HOST}:${p}`),
      mine.join(' | ') || 'none found',
    )
  }
}

// ---------------------------------------------------------------------------------------------
// Optional quick dnsperf

/** A port free for both UDP and TCP on 127.0.0.1 (as run.ts picks one). */
async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer()
      srv.once('error', reject)
      srv.listen(0, HOST, () => {
        const addr = srv.address()
        srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0))
      })
    })
    const udpFree = await new Promise<boolean>((resolve) => {
      const s = createSocket('udp4')
      s.once('error', () => resolve(false))
      s.bind(port, HOST, () => s.close(() => resolve(true)))
    })
    if (udpFree) return port
  }
  throw new Error(`no free port on ${HOST}`)
}

/** Kinds measured, with the query file run.ts uses and whether it sends ECS. */
const PERF_KINDS = [
  { kind: 'static A', file: 'static', ecs: false },
  { kind: 'GSLB weighted', file: 'weighted', ecs: false },
  { kind: 'GSLB geo + ECS', file: 'geo', ecs: true },
  { kind: 'GSLB failover', file: 'failover', ecs: false },
  { kind: 'GSLB latency + ECS', file: 'latency', ecs: true },
  { kind: 'GSLB multivalue (8)', file: 'multi', ecs: false },
] as const

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100

/** CPU seconds (user + system) `pid` has used so far, from /proc/PID/stat; NaN if unreadable. */
function procCpuSeconds(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(f[11]) + Number(f[12])) / CLK_TCK
  } catch {
    return Number.NaN
  }
}

/** [busy, total] jiffies of one CPU from /proc/stat, to tell a saturated or shared core. */
function cpuJiffies(cpu: number): [number, number] {
  const line = readFileSync('/proc/stat', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`cpu${cpu} `))
  const f = (line ?? '').trim().split(/\s+/).slice(1, 9).map(Number)
  const total = f.reduce((a, b) => a + b, 0)
  return [total - (f[3] ?? 0) - (f[4] ?? 0), total]
}

const busyPct = (a: [number, number], b: [number, number]): number => (100 * (b[0] - a[0])) / (b[1] - a[1] || 1)

/**
 * Besides dnsperf's qps: gdnsd's own CPU time per query (µs), which does not depend on how fast
 * dnsperf can send, and how busy each pinned core was (another process on the server core, or
 * dnsperf's core at 100%, both make qps read low).
 */
function runDnsperf(t: GdnsdTarget, seconds: number, serverCpu: number, clientCpu: number, scratch: string): void {
  // The very query files the benchmark sends (run.ts --write-queries), not a copy of them.
  const qdir = join(scratch, 'queries')
  const w = spawnSync(process.execPath, ['test/bench/run.ts', '--write-queries', qdir], { cwd: ROOT, encoding: 'utf8' })
  if (w.status !== 0) throw new Error(`run.ts --write-queries failed: ${w.stderr}`)
  process.stdout.write(`\ngdnsd ${t.version}: ${t.command}\n`)
  for (const k of PERF_KINDS) {
    const args = ['-s', HOST, '-p', String(t.port), '-d', join(qdir, `${k.file}.txt`), '-l', String(seconds)]
    if (k.ecs) args.push('-E', ECS_UK_24)
    args.push('-c', '4', '-q', '100')
    const argv = ['taskset', '-c', String(clientCpu), 'dnsperf', ...args]
    const [srv0, sc0, cc0, t0] = [
      procCpuSeconds(t.pid),
      cpuJiffies(serverCpu),
      cpuJiffies(clientCpu),
      performance.now(),
    ]
    const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: (seconds + 30) * 1000 })
    const [srv1, sc1, cc1, t1] = [
      procCpuSeconds(t.pid),
      cpuJiffies(serverCpu),
      cpuJiffies(clientCpu),
      performance.now(),
    ]
    const qps = /Queries per second:\s+([\d.]+)/.exec(r.stdout ?? '')?.[1]
    const lost = /Queries lost:\s+(\d+ \([\d.]+%\))/.exec(r.stdout ?? '')?.[1]
    const rcodes = /Response codes:\s+(.*)/.exec(r.stdout ?? '')?.[1]
    const cpuPct = (100 * (srv1 - srv0)) / ((t1 - t0) / 1000)
    const usPerQuery = (cpuPct * 1e4) / Number(qps)
    process.stdout.write(
      `  ${argv.join(' ')}\n    ${k.kind}: ${qps === undefined ? '?' : Math.round(Number(qps))} qps, ` +
        `lost ${lost ?? '?'}, ${rcodes ?? r.stderr}\n` +
        `      gdnsd CPU ${cpuPct.toFixed(0)}% = ${usPerQuery.toFixed(2)} µs/query; ` +
        `core ${serverCpu} busy ${busyPct(sc0, sc1).toFixed(0)}%, core ${clientCpu} (dnsperf) busy ${busyPct(cc0, cc1).toFixed(0)}%\n`,
    )
    if (qps === undefined) failures.push(`dnsperf ${k.kind}: no result (${r.error?.message ?? r.stderr})`)
  }
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      dnsperf: { type: 'string' },
      'server-cpu': { type: 'string', default: '0' },
      'client-cpu': { type: 'string', default: '1' },
    },
    strict: true,
  })
  if (gdnsdAvailable() === undefined) {
    process.stderr.write('gdnsd-check: gdnsd 3.x not found (apt-get install gdnsd, or set GDNSD=...)\n')
    return 2
  }
  const seconds = values.dnsperf === undefined ? undefined : Number(values.dnsperf)
  if (seconds !== undefined && !(Number.isInteger(seconds) && seconds >= 1 && seconds <= 300)) {
    process.stderr.write('gdnsd-check: --dnsperf expects 1..300 seconds\n')
    return 2
  }
  const scratch = mkdtempSync(join(tmpdir(), 'gdnsd-check-'))
  let target: GdnsdTarget | undefined
  try {
    const port = await freePort()
    // Pinned only for the dnsperf run, where the numbers mean something.
    target = await startGdnsd({
      port,
      scratch,
      cpu: seconds === undefined ? undefined : Number(values['server-cpu']),
    })
    process.stdout.write(`gdnsd ${target.version} on ${HOST}:${port}: ${target.command}\n`)
    runChecks(target, scratch)
    if (seconds !== undefined && failures.length === 0) {
      runDnsperf(target, seconds, Number(values['server-cpu']), Number(values['client-cpu']), scratch)
    }
  } finally {
    if (target) {
      const code = await target.stop()
      check('gdnsd stops cleanly on SIGTERM', code === 0, `exit code ${code}\n${target.stderr()}`)
    }
    rmSync(scratch, { recursive: true, force: true })
  }
  if (failures.length > 0) {
    process.stdout.write(`\n${failures.length} check(s) failed\n`)
    if (target) process.stdout.write(`gdnsd stderr:\n${target.stderr()}\n`)
    return 1
  }
  process.stdout.write('\nall checks passed\n')
  return 0
}

main().then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    process.stderr.write(`gdnsd-check: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    process.exitCode = 1
  },
)
