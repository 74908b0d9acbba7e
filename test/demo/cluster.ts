/**
 * `npm run demo:cluster [-- --seconds-per-step N]`: a narrated, step-by-step run of the cluster
 * setup that test/integration/cluster.test.ts checks. Everything stays on loopback: a private
 * redis-server, two HTTP backends on 127.0.0.1, two `gslb serve` instances and two `gslb probe`
 * workers. Each step changes one thing and prints, with timestamps, the real
 * `dig @127.0.0.1 -p PORT +short NAME` output of both instances every second, and how long the
 * answers took to follow. Every process started here is stopped on exit, error or Ctrl-C, and the
 * whole run is bounded in time.
 */

import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { createConnection } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { RedisStore } from '../../src/state/redis.ts'
import { freePort } from '../helpers/process.ts'
import { onPath, startRedis, type TestRedis } from '../helpers/redis.ts'

const CLI = new URL('../../src/cli.ts', import.meta.url).pathname
const ROOT = new URL('../../', import.meta.url).pathname
const INTERVAL_MS = 400
const FALL = 2
const A = '192.0.2.11'
const B = '192.0.2.21'
/** No single wait for answers to change lasts longer than this. */
const MAX_WAIT_MS = 20_000
const POLL_MS = 100

// ---------------------------------------------------------------------------------------------
// Arguments and prerequisites

const { values: flags } = parseArgs({
  args: process.argv.slice(2),
  strict: true,
  options: { 'seconds-per-step': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
})
if (flags.help) {
  process.stdout.write(
    'usage: npm run demo:cluster [-- --seconds-per-step N]\n' +
      '  N: seconds each step keeps watching the answers after they settled (default 4, 1..60)\n',
  )
  process.exit(0)
}
const STEP_S = Number(flags['seconds-per-step'] ?? 4)
if (!Number.isFinite(STEP_S) || STEP_S < 1 || STEP_S > 60) {
  process.stderr.write(`--seconds-per-step must be a number from 1 to 60, got ${flags['seconds-per-step']}\n`)
  process.exit(2)
}
const STEP_MS = STEP_S * 1000
/** The whole demo, whatever happens, ends within this. */
const DEADLINE_MS = 150_000 + 12 * STEP_MS

const missing = ['redis-server', 'dig'].filter((b) => !onPath(b))
if (missing.length > 0) {
  process.stderr.write(
    `This demo needs ${missing.join(' and ')} on PATH.\n` +
      'Install them (Debian/Ubuntu) with:\n\n  sudo apt-get install redis-server bind9-dnsutils\n\n' +
      '(redis-server is only started privately on 127.0.0.1 by the demo; the system service is not needed.)\n',
  )
  process.exit(1)
}

// ---------------------------------------------------------------------------------------------
// Output

const T0 = Date.now()
const pad = (n: number, w = 2) => String(n).padStart(w, '0')
function stamp(at = Date.now()): string {
  const d = new Date(at)
  const clock = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`
  return `${clock} +${((at - T0) / 1000).toFixed(1).padStart(5)}s`
}
const say = (text: string) => process.stdout.write(`${stamp()}  ${text}\n`)
const raw = (text: string) => process.stdout.write(`${text}\n`)
const indent = (text: string, by = '    ') =>
  text
    .trimEnd()
    .split('\n')
    .map((l) => by + l)
    .join('\n')
function heading(text: string): void {
  raw(`\n=== ${text} ${'='.repeat(Math.max(3, 92 - text.length))}`)
}

const timings: Array<{ what: string; ms: number | undefined }> = []
const problems: string[] = []

// ---------------------------------------------------------------------------------------------
// Processes: every child is tracked so cleanup can end it.

const children = new Set<ChildProcess>()

interface Exec {
  readonly code: number | null
  readonly out: string
}

/** Runs a command to completion (bounded by `timeoutMs`); never rejects. */
function exec(cmd: string, args: readonly string[], timeoutMs: number): Promise<Exec> {
  return new Promise((resolve) => {
    if (stopping) return resolve({ code: null, out: '(demo stopping)' })
    const child = execFile(
      cmd,
      args,
      { cwd: ROOT, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 4 << 20 },
      (err, stdout, stderr) => {
        children.delete(child)
        const code = err ? (typeof err.code === 'number' ? err.code : null) : 0
        resolve({ code, out: `${stdout}${stderr}` })
      },
    )
    children.add(child)
  })
}

interface Daemon {
  readonly name: string
  readonly child: ChildProcess
  /** Output so far (the tail, bounded). */
  log(): string
}

function spawnCli(name: string, args: string[]): Daemon {
  if (stopping) throw new Error('the demo is stopping')
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  children.add(child)
  let out = ''
  const collect = (d: Buffer) => {
    out = (out + d.toString()).slice(-500_000)
  }
  child.stdout!.on('data', collect)
  child.stderr!.on('data', collect)
  child.once('exit', (code, signal) => {
    children.delete(child)
    if (!stopping && !expectedExit.has(child)) {
      say(`!! ${name} exited unexpectedly (${signal ?? `code ${code}`}); last output:\n${indent(out.slice(-2000))}`)
      problems.push(`${name} exited unexpectedly`)
    }
  })
  return { name, child, log: () => out }
}
const expectedExit = new Set<ChildProcess>()

/** `gslb ...` through the real CLI, printed as a shell command and its output. */
async function gslb(...args: string[]): Promise<Exec> {
  say(`$ gslb ${args.join(' ')}`)
  const r = await exec(process.execPath, [CLI, ...args], 20_000)
  if (r.out.trim() !== '') raw(indent(r.out))
  if (r.code !== 0) {
    raw(`    (exit code ${r.code})`)
    problems.push(`gslb ${args[0]} exited with ${r.code}`)
  }
  return r
}

/** The pino log lines of a daemon whose msg contains `text`, as "time msg" strings. */
function logLines(d: Daemon, text: string): string[] {
  const found: string[] = []
  for (const line of d.log().split('\n')) {
    if (!line.includes(text)) continue
    try {
      const j = JSON.parse(line) as { time?: string; msg?: string; probers?: string[] }
      found.push(
        `${j.time ? stamp(new Date(j.time).getTime()) : ''}  ${d.name}: ${j.msg ?? line}${j.probers ? ` ${JSON.stringify(j.probers)}` : ''}`,
      )
    } catch {
      found.push(`${d.name}: ${line}`)
    }
  }
  return found
}

// ---------------------------------------------------------------------------------------------
// The world: Redis, two backends, a zone, two instances, two probers.

interface Backend {
  readonly name: string
  readonly port: number
  up: boolean
  delayMs: number
  readonly server: Server
}

async function backend(name: string, delayMs: number): Promise<Backend> {
  const b = { name, up: true, delayMs } as Backend
  const server = createServer((_req, res) => {
    setTimeout(() => res.writeHead(b.up ? 200 : 503).end(b.up ? 'ok' : 'down'), b.delayMs)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  Object.assign(b, { server, port: (server.address() as { port: number }).port })
  return b
}

/** One inline Redis command on loopback ('' when refused). */
function redisCommand(port: number, line: string): Promise<string> {
  return new Promise((resolve) => {
    let reply = ''
    const socket = createConnection({ host: '127.0.0.1', port })
    socket.setTimeout(5_000, () => socket.destroy())
    socket.on('connect', () => socket.write(`${line}\r\nQUIT\r\n`))
    socket.on('data', (chunk) => {
      reply += chunk.toString()
    })
    socket.on('error', () => {})
    socket.on('close', () => resolve(reply))
  })
}

let redis: TestRedis | undefined
let dir: string | undefined
const backends: Backend[] = []
const instances: Array<Daemon & { port: number }> = []
const probers: Daemon[] = []

// ---------------------------------------------------------------------------------------------
// Watching answers

type Answers = string[][] // per instance, the sorted answer lines

/** `dig @127.0.0.1 -p PORT +short NAME` (one try, one second) as its output lines. */
async function digShort(port: number, name: string): Promise<string[]> {
  const r = await exec('dig', ['@127.0.0.1', '-p', String(port), '+short', '+time=1', '+tries=1', name], 5_000)
  const lines = r.out.trim().split('\n').filter(Boolean)
  return r.code === 0
    ? lines.sort()
    : lines.length > 0
      ? lines.map((l) => l.replace(/^;; /, ''))
      : [`dig failed (${r.code})`]
}

const fqdn = (name: string) => `${name}.cluster.example`
const all = (name: string): Promise<Answers> => Promise.all(instances.map((i) => digShort(i.port, fqdn(name))))
const showAnswers = (a: Answers) =>
  instances.map((inst, i) => `${inst.name} ${(a[i] ?? []).join(' ') || '(empty)'}`).join('  |  ')
const onlyAll = (a: Answers, ip: string) => a.length > 0 && a.every((x) => x.length === 1 && x[0] === ip)

interface Watch {
  /** The names whose answers are printed each second. */
  readonly names: readonly string[]
  /** When given, the watch waits for this and reports how long it took. */
  readonly until?: { readonly what: string; readonly name: string; readonly ok: (a: Answers) => boolean }
  /** Counted from here (the moment of the change); default now. */
  readonly since?: number
  /** Keep printing this long after the condition held (or in all, without one). Default STEP_MS. */
  readonly holdMs?: number
  /** Called on every poll; its text is printed under the answers. */
  readonly extra?: () => Promise<string>
  /** Called on every poll: a condition that must hold throughout (e.g. "still answers b"). */
  readonly steady?: { readonly what: string; readonly ok: (a: Answers) => boolean }
}

/**
 * Polls both instances every 100 ms; prints their answers once a second and at the moment the
 * awaited change is seen. Returns the time the change took, or undefined if it did not come
 * within MAX_WAIT_MS.
 */
async function watch(w: Watch): Promise<number | undefined> {
  const since = w.since ?? Date.now()
  const holdMs = w.holdMs ?? STEP_MS
  let tookMs: number | undefined
  let nextPrint = Date.now()
  let steadyBroken = false
  for (;;) {
    const pollStart = Date.now()
    const results = await Promise.all(w.names.map(async (n) => [n, await all(n)] as const))
    const by = new Map(results)
    const extra = w.extra ? await w.extra() : ''
    let event = ''
    if (w.until && tookMs === undefined && w.until.ok(by.get(w.until.name)!)) {
      tookMs = pollStart - since
      event = `  <- ${w.until.what} after ${(tookMs / 1000).toFixed(2)} s`
      timings.push({ what: w.until.what, ms: tookMs })
    }
    if (w.steady && !steadyBroken && !w.steady.ok(by.get(w.names[0]!)!)) {
      steadyBroken = true
      event += `  !! expected: ${w.steady.what} (broken after ${((pollStart - since) / 1000).toFixed(2)} s)`
      problems.push(`not ${w.steady.what}`)
    }
    if (event !== '' || pollStart >= nextPrint) {
      for (const [n, a] of results)
        raw(`${stamp(pollStart)}  ${n.padEnd(5)} ${showAnswers(a)}${n === w.names[0] ? event : ''}`)
      if (extra) raw(`${' '.repeat(26)}${extra}`)
      if (pollStart >= nextPrint) nextPrint += 1000 * Math.max(1, Math.ceil((pollStart - nextPrint + 1) / 1000))
    }
    const elapsed = Date.now() - since
    if (w.until && tookMs === undefined && elapsed > MAX_WAIT_MS) {
      say(`!! ${w.until.what}: did not happen within ${MAX_WAIT_MS / 1000} s`)
      problems.push(`${w.until.what} did not happen within ${MAX_WAIT_MS / 1000} s`)
      timings.push({ what: w.until.what, ms: undefined })
      return undefined
    }
    const settledAt = w.until ? (tookMs === undefined ? undefined : since + tookMs) : since
    if (settledAt !== undefined && Date.now() - settledAt >= holdMs) return tookMs
    await sleep(Math.max(0, POLL_MS - (Date.now() - pollStart)))
  }
}

// ---------------------------------------------------------------------------------------------
// Cleanup, however the demo ends

let stopping = false
let cleaning: Promise<void> | undefined
/** Stops everything the demo started; every caller waits for the same run. */
function cleanup(): Promise<void> {
  cleaning ??= stopAll()
  return cleaning
}
async function stopAll(): Promise<void> {
  stopping = true
  const live = [...children]
  for (const c of live) c.kill('SIGTERM')
  await Promise.race([
    Promise.all(
      live.map((c) =>
        c.exitCode !== null || c.signalCode !== null ? undefined : new Promise<void>((r) => c.once('exit', () => r())),
      ),
    ),
    sleep(3_000),
  ])
  for (const c of children) c.kill('SIGKILL')
  await Promise.race([redis?.stop(), sleep(6_000)])
  for (const b of backends) {
    b.server.closeAllConnections()
    b.server.close()
  }
  if (dir) rmSync(dir, { recursive: true, force: true })
}
process.once('exit', () => {
  // Last resort (e.g. process.exit from elsewhere): nothing outlives the demo.
  for (const c of children) c.kill('SIGKILL')
  if (dir) rmSync(dir, { recursive: true, force: true })
})
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    if (stopping) {
      // A second signal: no more waiting (the exit hook above still kills every child).
      process.exit(130)
    }
    raw(`\n${stamp()}  ${signal}: stopping every process the demo started...`)
    void cleanup().finally(() => process.exit(130))
  })
}
const watchdog = setTimeout(() => {
  raw(`\n${stamp()}  !! the demo ran longer than ${DEADLINE_MS / 1000} s; stopping everything`)
  void cleanup().finally(() => process.exit(1))
}, DEADLINE_MS)
watchdog.unref()

// ---------------------------------------------------------------------------------------------
// The demo

async function setUp(): Promise<void> {
  heading('setup')
  redis = await startRedis()
  say(`redis-server on ${redis.url} (private, loopback only, no persistence configured)`)
  backends.push(await backend('a', 0), await backend('b', 20))
  const [a, b] = backends as [Backend, Backend]
  say(`backend a: http://127.0.0.1:${a.port}/health  (pool a, endpoint a-1 = ${A}, answers at once)`)
  say(`backend b: http://127.0.0.1:${b.port}/health  (pool b, endpoint b-1 = ${B}, answers after 20 ms)`)
  dir = mkdtempSync(join(tmpdir(), 'gslb-demo-cluster-'))
  const check = (port: number) =>
    `{ type: http, address: 127.0.0.1, port: ${port}, path: /health, interval: ${INTERVAL_MS}ms, timeout: 300ms, rise: 2, fall: ${FALL} }`
  const zone = `zone: cluster.example
records: |
  @   3600 SOA ns1 hostmaster 1 7200 3600 1209600 5
  @   3600 NS  ns1
  ns1 3600 A   192.0.2.53
checks:
  a: ${check(a.port)}
  b: ${check(b.port)}
pools:
  a: { check: a, endpoints: { a-1: ${A} } }
  b: { check: b, endpoints: { b-1: ${B} } }
services:
  www: { ttl: 5, pools: [a, b], chain: [failover, weighted] }
  multi: { ttl: 5, pools: [a, b], chain: [{ first: 8 }] }
  fast:
    ttl: 5
    pools: [a, b]
    chain:
      - latency: { default: test, hysteresis: 0.3 }
      - { first: 1 }
`
  writeFileSync(join(dir, 'cluster.example.yaml'), zone)
  say(`zone file ${join(dir, 'cluster.example.yaml')}:`)
  raw(indent(zone))
  for (let i = 1; i <= 2; i++) {
    const port = await freePort()
    const args = ['serve', '--zones', dir, '--listen', `127.0.0.1:${port}`, '--redis', redis.url, '--admin', 'off']
    const d = spawnCli(`dns${i}`, [...args, '--slow-start', '0', '--log-level', 'info'])
    instances.push({ ...d, port })
    say(`started dns${i} (pid ${d.child.pid}): gslb ${args.join(' ')} --slow-start 0`)
  }
  for (const id of ['p1', 'p2']) {
    const args = ['probe', '--zones', dir, '--redis', redis.url, '--region', 'test', '--id', id]
    const d = spawnCli(id, args)
    probers.push(d)
    say(`started prober ${id} (pid ${d.child.pid}): gslb ${args.join(' ')}`)
  }
  for (const inst of instances) {
    const deadline = Date.now() + 15_000
    while (!inst.log().includes('listening on UDP and TCP')) {
      if (Date.now() > deadline || inst.child.exitCode !== null)
        throw new Error(`${inst.name} did not start listening:\n${inst.log().slice(-3000)}`)
      await sleep(50)
    }
  }
  say('both instances listen; waiting for the probers to report both backends up...')
  // Settled: both endpoints up on both instances and fast on a (the first probes of a fresh
  // prober can be slow, so latency needs a moment), for a whole second.
  const deadline = Date.now() + 20_000
  for (let settled = 0; ; ) {
    const [multi, fast] = await Promise.all([all('multi'), all('fast')])
    settled = multi.every((x) => x.length === 2) && onlyAll(fast, A) ? settled + 1 : 0
    if (settled >= 10) break
    if (Date.now() > deadline) throw new Error(`the instances never saw both backends up: ${showAnswers(multi)}`)
    await sleep(POLL_MS)
  }
  say('ready.')
  raw(`
Legend: ${A} is pool a (endpoint a-1), ${B} is pool b (endpoint b-1).
Each answer line is the output of \`dig @127.0.0.1 -p PORT +short +time=1 +tries=1 NAME.cluster.example\`
against ${instances.map((i) => `${i.name} (port ${i.port})`).join(' and ')}, one line per name, once a second.`)
}

async function demo(): Promise<void> {
  await setUp()
  const [a, b] = backends as [Backend, Backend]
  const r = redis!
  const zones = dir!

  heading('1. everything up')
  say('www is [failover, weighted] over pools a then b: it answers pool a. multi answers every up endpoint.')
  say('fast is latency-based: a answers its health check faster than b, so it answers a.')
  await watch({
    names: ['www', 'multi', 'fast'],
    steady: { what: `www answers ${A} on both`, ok: (x) => onlyAll(x, A) },
  })

  heading('2. backend a goes down')
  say(`backend a now answers /health with 503 (checks every ${INTERVAL_MS} ms, fall ${FALL})`)
  a.up = false
  await watch({
    names: ['www', 'multi'],
    since: Date.now(),
    until: { what: 'a down: both instances answer b', name: 'www', ok: (x) => onlyAll(x, B) },
  })

  heading('3. backend a comes back')
  say('backend a answers /health with 200 again (rise 2)')
  a.up = true
  await watch({
    names: ['www', 'multi'],
    since: Date.now(),
    until: { what: 'a back: both instances answer a', name: 'www', ok: (x) => onlyAll(x, A) },
  })

  heading('4. an operator drains a-1')
  let t = Date.now()
  await gslb('drain', 'a-1', '--redis', r.url, '--zones', zones, '--for', '1m', '--why', 'demo')
  await watch({
    names: ['www'],
    since: t,
    until: { what: 'drain a-1 (from the CLI call): both answer b', name: 'www', ok: (x) => onlyAll(x, B) },
  })
  t = Date.now()
  await gslb('undrain', 'a-1', '--redis', r.url, '--zones', zones)
  await watch({
    names: ['www'],
    since: t,
    until: { what: 'undrain a-1 (from the CLI call): both answer a', name: 'www', ok: (x) => onlyAll(x, A) },
  })

  heading('5. Redis goes away and comes back')
  say('first, backend a goes down again, so the instances answer b')
  a.up = false
  await watch({
    names: ['www'],
    since: Date.now(),
    until: { what: 'a down (before the Redis stop): both answer b', name: 'www', ok: (x) => onlyAll(x, B) },
    holdMs: 1000,
  })
  say('$ redis-cli SAVE   (a snapshot, so Redis restarts with its data, as with RDB persistence)')
  raw(indent((await redisCommand(r.port, 'SAVE')).split('\r\n')[0] ?? ''))
  t = Date.now()
  await r.stop()
  say('redis-server stopped (SIGTERM); a is still down. The instances should keep the last view they read (b).')
  await watch({
    names: ['www'],
    since: t,
    steady: { what: `still answering ${B} from the last view`, ok: (x) => onlyAll(x, B) },
  })
  for (const inst of instances) for (const l of logLines(inst, 'unreachable').slice(0, 2)) raw(`    log ${l}`)
  t = Date.now()
  await r.restart()
  say(`redis-server restarted on the same port (${((Date.now() - t) / 1000).toFixed(2)} s), a still down:`)
  say('the instances reconnect, re-read the state, the probers report again, and both resynchronise')
  await watch({
    names: ['www'],
    since: t,
    until: { what: 'Redis back: both instances resync (a down, so b)', name: 'www', ok: (x) => onlyAll(x, B) },
  })
  for (const inst of instances) for (const l of logLines(inst, 'reachable again').slice(0, 2)) raw(`    log ${l}`)
  say('backend a recovers')
  a.up = true
  await watch({
    names: ['www'],
    since: Date.now(),
    until: { what: 'a back after the Redis restart: both answer a', name: 'www', ok: (x) => onlyAll(x, A) },
  })

  heading('6. a prober dies')
  const store = new RedisStore({ url: r.url })
  try {
    await store.ready()
    const reports = async () => {
      const d = await store.load()
      return [...(d.probes.get('test') ?? new Map()).entries()].sort(([x], [y]) => x.localeCompare(y))
    }
    const owners = async () =>
      `probe reports in Redis: ${
        (await reports())
          .map(
            ([id, rep]) =>
              `${id.replace('|', '/')} by ${rep.prober} (${((Date.now() - rep.at) / 1000).toFixed(1)} s old${rep.expiresAt <= Date.now() ? ', expired' : ''})`,
          )
          .join(', ') || '(none)'
      }`
    await gslb('status', '--redis', r.url, '--zones', zones)
    // Kill a prober that owns a target, so the takeover is real whatever the hashing chose.
    let live: Array<[string, { prober: string; expiresAt: number }]> = []
    for (let i = 0; i < 50; i++) {
      live = (await reports()).filter(([, rep]) => rep.expiresAt > Date.now())
      if (live.length === 2) break
      await sleep(POLL_MS)
    }
    say(await owners())
    const victimId = live[0]?.[1].prober ?? 'p1'
    const survivorId = victimId === 'p1' ? 'p2' : 'p1'
    const victim = probers.find((p) => p.name === victimId)!
    const survivor = probers.find((p) => p.name === survivorId)!
    expectedExit.add(victim.child)
    victim.child.kill('SIGKILL')
    const killedAt = Date.now()
    say(`killed prober ${victimId} (pid ${victim.child.pid}) with SIGKILL; ${survivorId} should take its targets`)
    let takeover: number | undefined
    await watch({
      names: ['www'],
      since: killedAt,
      holdMs: 1000,
      extra: async () => {
        const reps = await reports()
        if (
          takeover === undefined &&
          reps.length === 2 &&
          reps.every(([, rep]) => rep.prober === survivorId && rep.at > killedAt)
        ) {
          takeover = Date.now() - killedAt
          timings.push({ what: `prober ${victimId} killed: ${survivorId} probes every target`, ms: takeover })
          return `${await owners()}  <- ${survivorId} took over after ${(takeover / 1000).toFixed(2)} s`
        }
        return await owners()
      },
      until: {
        what: `answers unchanged while ${survivorId} takes over`,
        name: 'www',
        ok: (x) => onlyAll(x, A) && takeover !== undefined,
      },
    })
    for (const l of logLines(survivor, 'live probers changed')) raw(`    log ${l}`)
    await gslb('status', '--redis', r.url, '--zones', zones)
    say(`and the answers still follow health with one prober: backend b goes down`)
    b.up = false
    await watch({
      names: ['multi'],
      since: Date.now(),
      holdMs: 1000,
      until: { what: `b down, probed by ${survivorId} alone: multi drops b`, name: 'multi', ok: (x) => onlyAll(x, A) },
    })
    b.up = true
    await watch({
      names: ['multi'],
      since: Date.now(),
      holdMs: 1000,
      until: {
        what: 'b back: multi answers both',
        name: 'multi',
        ok: (x) => x.every((y) => y.length === 2),
      },
    })
  } finally {
    await store.close()
  }

  heading('7. latency')
  say('backend a now takes 150 ms to answer its health check, b answers at once')
  a.delayMs = 150
  b.delayMs = 0
  await watch({
    names: ['fast'],
    since: Date.now(),
    until: { what: 'a slow, b fast: fast.cluster.example answers b', name: 'fast', ok: (x) => onlyAll(x, B) },
  })

  heading('status and audit log')
  await gslb('status', '--redis', r.url, '--zones', zones, '--audit')

  heading('summary')
  for (const { what, ms } of timings)
    raw(`  ${ms === undefined ? '  (not seen)' : `${(ms / 1000).toFixed(2).padStart(6)} s`}  ${what}`)
  if (problems.length > 0) {
    raw('\nproblems:')
    for (const p of problems) raw(`  - ${p}`)
  } else raw('\nevery step behaved as expected.')
}

let code = 0
try {
  await demo()
  if (problems.length > 0) code = 1
} catch (err) {
  // After a signal the steps fail as their processes go away: that is not news.
  if (stopping) await new Promise(() => {})
  raw(`\n${stamp()}  !! demo failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
  code = 1
} finally {
  raw(`\n${stamp()}  stopping the instances, probers, backends and redis-server...`)
  await cleanup()
  raw(`${stamp()}  done (${((Date.now() - T0) / 1000).toFixed(1)} s in all).`)
}
process.exit(code)
