/**
 * Several instances against one Redis, as operators run them: two `gslb serve` processes and
 * `gslb probe` workers, a real redis-server on a free loopback port, and real HTTP backends on
 * 127.0.0.1 that the test switches up and down and slows. Answers are read with dig.
 */

import { type ChildProcess, execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { RedisStore } from '../../src/state/redis.ts'
import { dig } from '../helpers/dig.ts'
import { CLI, freePort, ROOT, spawnCli, waitFor } from '../helpers/process.ts'
import { hasRedis, startRedis, type TestRedis } from '../helpers/redis.ts'

const run = promisify(execFile)
const INTERVAL_MS = 400
const FALL = 2
/** The issue's bound: fall x interval + 1 s, plus the checks' 10% jitter and one timeout. */
const DETECT_BOUND_MS = FALL * INTERVAL_MS * 1.1 + 300 + 1000

interface Backend {
  readonly port: number
  up: boolean
  delayMs: number
  readonly server: Server
}

async function backend(): Promise<Backend> {
  const b = { up: true, delayMs: 0 } as Backend
  const server = createServer((_req, res) => {
    setTimeout(() => res.writeHead(b.up ? 200 : 503).end(b.up ? 'ok' : 'down'), b.delayMs)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  Object.assign(b, { server, port: (server.address() as { port: number }).port })
  return b
}

const until = <T>(what: () => Promise<T>, ok: (v: T) => boolean, timeoutMs: number) => waitFor(what, ok, timeoutMs)

describe.skipIf(!hasRedis)('two instances, probers and one Redis', () => {
  let redis: TestRedis
  let dir: string
  let a: Backend
  let b: Backend
  const dnsPorts: number[] = []
  const procs: Array<{ child: ChildProcess; log: () => string }> = []
  let probers: Array<{ child: ChildProcess; log: () => string }> = []

  const answers = async (port: number, name: string): Promise<string[]> =>
    (await dig('127.0.0.1', port, '+short', `${name}.cluster.example`, 'A')).raw
      .trim()
      .split('\n')
      .filter(Boolean)
      .sort()
  const both = async (name: string): Promise<string[][]> => Promise.all(dnsPorts.map((p) => answers(p, name)))
  const gslb = async (...args: string[]) => run(process.execPath, [CLI, ...args], { cwd: ROOT })

  beforeAll(async () => {
    redis = await startRedis()
    a = await backend()
    b = await backend()
    dir = mkdtempSync(join(tmpdir(), 'gslb-cluster-'))
    const check = (port: number) =>
      `{ type: http, address: 127.0.0.1, port: ${port}, path: /health, interval: ${INTERVAL_MS}ms, timeout: 300ms, rise: 2, fall: ${FALL} }`
    writeFileSync(
      join(dir, 'cluster.example.yaml'),
      `zone: cluster.example
records: |
  @   3600 SOA ns1 hostmaster 1 7200 3600 1209600 5
  @   3600 NS  ns1
  ns1 3600 A   192.0.2.53
checks:
  a: ${check(a.port)}
  b: ${check(b.port)}
pools:
  a: { check: a, endpoints: { a-1: 192.0.2.11 } }
  b: { check: b, endpoints: { b-1: 192.0.2.21 } }
services:
  www: { ttl: 5, pools: [a, b], chain: [failover, weighted] }
  multi: { ttl: 5, pools: [a, b], chain: [{ first: 8 }] }
  fast:
    ttl: 5
    pools: [a, b]
    chain:
      - latency: { default: test, hysteresis: 0.3 }
      - { first: 1 }
`,
    )
    for (let i = 0; i < 2; i++) {
      const port = await freePort()
      dnsPorts.push(port)
      const p = spawnCli([
        'serve',
        '--zones',
        dir,
        '--listen',
        `127.0.0.1:${port}`,
        '--redis',
        redis.url,
        '--admin',
        'off',
        '--slow-start',
        '0',
        '--log-level',
        'info',
      ])
      procs.push(p)
    }
    probers = [
      spawnCli(['probe', '--zones', dir, '--redis', redis.url, '--region', 'test', '--id', 'p1']),
      spawnCli(['probe', '--zones', dir, '--redis', redis.url, '--region', 'test', '--id', 'p2']),
    ]
    procs.push(...probers)
    for (const p of procs.slice(0, 2))
      await until(
        async () => p.log(),
        (l) => l.includes('listening on UDP and TCP'),
        10_000,
      )
    // Both instances see both endpoints up once the probers reported.
    await until(
      () => both('multi'),
      (r) => r.every((x) => x.length === 2),
      10_000,
    )
  }, 60_000)

  let redisDown = false
  const stopRedis = async (): Promise<void> => {
    redisDown = true
    await redis.stop()
  }
  const restartRedis = async (): Promise<void> => {
    await redis.restart()
    redisDown = false
  }

  // Each case starts from the same place even if the one before failed half-way: Redis running,
  // both backends healthy and fast, and both instances answering from pool a.
  beforeEach(async () => {
    if (redisDown) await restartRedis()
    a.up = true
    b.up = true
    a.delayMs = 0
    b.delayMs = 0
    await until(
      () => both('www'),
      (r) => r.every((x) => x[0] === '192.0.2.11'),
      15_000,
    )
  }, 20_000)

  afterAll(async () => {
    for (const p of procs) p.child.kill('SIGKILL')
    await redis?.stop()
    a?.server.close()
    b?.server.close()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('both instances stop answering a dead backend within fall x interval + 1 s, and take it back', async () => {
    expect(await both('www')).toEqual([['192.0.2.11'], ['192.0.2.11']])
    a.up = false
    const gone = await until(
      () => both('www'),
      (r) => r.every((x) => x[0] === '192.0.2.21'),
      10_000,
    )
    expect(gone.value).toEqual([['192.0.2.21'], ['192.0.2.21']])
    expect(gone.ms).toBeLessThan(DETECT_BOUND_MS)
    a.up = true
    const back = await until(
      () => both('www'),
      (r) => r.every((x) => x[0] === '192.0.2.11'),
      10_000,
    )
    expect(back.value).toEqual([['192.0.2.11'], ['192.0.2.11']])
  }, 30_000)

  it('keeps answering from the last view while Redis is down, and resynchronises after', async () => {
    a.up = false
    await until(
      () => both('www'),
      (r) => r.every((x) => x[0] === '192.0.2.21'),
      10_000,
    )
    await stopRedis()
    // Well past the reports' own lifetime (3 intervals): the last view must not age into "unknown".
    for (let i = 0; i < 10; i++) {
      expect(await both('www')).toEqual([['192.0.2.21'], ['192.0.2.21']])
      await new Promise((r) => setTimeout(r, 300))
    }
    a.up = true
    await restartRedis()
    // Redis came back empty (no persistence): instances re-read, probers write again, a returns.
    const back = await until(
      () => both('www'),
      (r) => r.every((x) => x[0] === '192.0.2.11'),
      15_000,
    )
    expect(back.value).toEqual([['192.0.2.11'], ['192.0.2.11']])
    expect(procs[0]!.log()).toContain('state store unreachable')
  }, 40_000)

  it('starts a new instance from the stored view, and fails open after the stale limit when so configured', async () => {
    a.up = false
    await until(
      () => both('www'),
      (r) => r.every((x) => x[0] === '192.0.2.21'),
      10_000,
    )
    const port = await freePort()
    const third = spawnCli([
      'serve',
      '--zones',
      dir,
      '--listen',
      `127.0.0.1:${port}`,
      '--redis',
      redis.url,
      '--admin',
      'off',
      '--stale-after',
      '1s',
      '--stale-mode',
      'fail-open',
    ])
    procs.push(third)
    await until(
      async () => third.log(),
      (l) => l.includes('listening on UDP and TCP'),
      10_000,
    )
    // Its very first answer already reflects the stored state: a is down.
    expect(await answers(port, 'www')).toEqual(['192.0.2.21'])
    await stopRedis()
    const open = await until(
      () => answers(port, 'www'),
      (r) => r[0] === '192.0.2.11',
      6_000,
    )
    expect(open.value).toEqual(['192.0.2.11'])
    expect(third.log()).toContain('failing open')
    // The default instances keep their last view.
    expect(await both('www')).toEqual([['192.0.2.21'], ['192.0.2.21']])
    a.up = true
    await restartRedis()
    await until(
      () => both('www'),
      (r) => r.every((x) => x[0] === '192.0.2.11'),
      15_000,
    )
    third.child.kill('SIGKILL')
  }, 40_000)

  it('a drain from the CLI reaches both instances within 1 s', async () => {
    await until(
      () => both('www'),
      (r) => r.every((x) => x[0] === '192.0.2.11'),
      10_000,
    )
    const t0 = Date.now()
    await gslb('drain', 'a-1', '--redis', redis.url, '--zones', dir, '--for', '1m', '--why', 'test')
    const drained = await until(
      () => both('www'),
      (r) => r.every((x) => x[0] === '192.0.2.21'),
      5_000,
    )
    expect(drained.value).toEqual([['192.0.2.21'], ['192.0.2.21']])
    expect(Date.now() - t0).toBeLessThan(1000 + 500) // 1 s, plus the CLI process start
    await gslb('undrain', 'a-1', '--redis', redis.url, '--zones', dir)
    await until(
      () => both('www'),
      (r) => r.every((x) => x[0] === '192.0.2.11'),
      5_000,
    )
    const { stdout } = await gslb('status', '--redis', redis.url, '--zones', dir, '--audit')
    expect(stdout).toMatch(/cluster\.example\/a-1\s+drain until/)
    expect(stdout).toMatch(/cluster\.example\s+a\s+a-1\s+192\.0\.2\.11\s+up/)
  }, 30_000)

  it('shows every live instance with the generation it serves, all alike', async () => {
    type Report = { generation: number; instances: Array<{ generation: number }> }
    const status = async (): Promise<Report> =>
      JSON.parse((await gslb('status', '--redis', redis.url, '--zones', dir, '--json')).stdout) as Report
    // Heartbeats come every 2 s and expire after 6 s: the killed third instance drops out, and after
    // a Redis restart the survivors reappear.
    const r = await until(
      status,
      (x) => x.instances.length === 2 && x.instances.every((i) => i.generation === x.generation),
      15_000,
    )
    expect(r.value.instances).toHaveLength(2)
    expect(r.value.instances.map((i) => i.generation)).toEqual([r.value.generation, r.value.generation])
    const text = (await gslb('status', '--redis', redis.url, '--zones', dir)).stdout
    expect(text).toMatch(/instances\n.*generation \d+, stale \ds/)
  }, 30_000)

  it('answers the faster pool by latency, switches when delays swap, and does not flap on small differences', async () => {
    a.delayMs = 15
    b.delayMs = 120
    const first = await until(
      () => both('fast'),
      (r) => r.every((x) => x[0] === '192.0.2.11'),
      10_000,
    )
    expect(first.value).toEqual([['192.0.2.11'], ['192.0.2.11']])
    a.delayMs = 120
    b.delayMs = 15
    const swapped = await until(
      () => both('fast'),
      (r) => r.every((x) => x[0] === '192.0.2.21'),
      15_000,
    )
    expect(swapped.value).toEqual([['192.0.2.21'], ['192.0.2.21']])
    // a is now only slightly slower than b: the 30% hysteresis keeps b.
    a.delayMs = 20
    b.delayMs = 25
    for (let i = 0; i < 8; i++) {
      expect(await both('fast')).toEqual([['192.0.2.21'], ['192.0.2.21']])
      await new Promise((r) => setTimeout(r, 400))
    }
    a.delayMs = 0
    b.delayMs = 0
  }, 40_000)

  it('another prober of the region takes over the targets of one that dies', async () => {
    const store = new RedisStore({ url: redis.url })
    try {
      await store.ready()
      const owners = async (): Promise<string[]> => {
        const d = await store.load()
        return [...(d.probes.get('test')?.values() ?? [])].filter((r) => r.expiresAt > Date.now()).map((r) => r.prober)
      }
      const before = await until(owners, (o) => o.length === 2, 10_000)
      expect(before.value).toHaveLength(2)
      // b goes down first; then the prober that watches b dies. Its last report must bridge the
      // takeover: b may not come back into the answers while nobody is probing it.
      b.up = false
      await until(
        () => both('multi'),
        (r) => r.every((x) => x.length === 1 && x[0] === '192.0.2.11'),
        10_000,
      )
      const bReport = (await store.load()).probes.get('test')?.get('cluster.example|b-1')
      const victimId = bReport!.prober
      const survivorId = victimId === 'p1' ? 'p2' : 'p1'
      probers[victimId === 'p1' ? 0 : 1]!.child.kill('SIGKILL')
      const killedAt = Date.now()
      while (Date.now() - killedAt < 4_000) {
        expect(await both('multi')).toEqual([['192.0.2.11'], ['192.0.2.11']])
        await new Promise((r) => setTimeout(r, 200))
      }
      const after = await until(
        async () => {
          const d = await store.load()
          return [...(d.probes.get('test')?.values() ?? [])].filter((r) => r.at > killedAt).map((r) => r.prober)
        },
        (o) => o.length === 2 && o.every((p) => p === survivorId),
        15_000,
      )
      expect(after.value).toEqual([survivorId, survivorId])
      b.up = true
      const back = await until(
        () => both('multi'),
        (r) => r.every((x) => x.length === 2),
        10_000,
      )
      expect(back.value).toEqual([
        ['192.0.2.11', '192.0.2.21'],
        ['192.0.2.11', '192.0.2.21'],
      ])
    } finally {
      await store.close()
    }
  }, 40_000)
})
