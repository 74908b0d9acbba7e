/**
 * `gslb doctor` against real servers on loopback: a parent serving `parent.example` with the
 * delegation of `child.parent.example`, and child instances serving the delegated zone. Glue
 * addresses are documentation addresses that are only compared, never contacted.
 */

import { createSocket } from 'node:dgram'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type DoctorServer, doctorExitCode, type Finding, formatFindings, runDoctor } from '../../src/ops/doctor.ts'
import { RedisStore } from '../../src/state/redis.ts'
import { hasRedis, startRedis, type TestRedis } from '../helpers/redis.ts'
import { FIXTURES, startTestServer, type TestServer } from '../helpers/server.ts'

const ZONE = 'child.parent.example'
const DOCTOR = join(FIXTURES, 'doctor')
const TIMEOUT_MS = 600

function at(s: TestServer): DoctorServer {
  return { address: '127.0.0.1', port: s.port }
}

function errors(findings: readonly Finding[]): Finding[] {
  return findings.filter((f) => f.level === 'error')
}

/** A loopback port nobody listens on (UDP nor TCP), taken from the kernel and released. */
async function deadPort(): Promise<number> {
  const port = await new Promise<number>((resolve) => {
    const srv = createServer()
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0))
    })
  })
  // Make sure no UDP socket holds it either.
  await new Promise<void>((resolve, reject) => {
    const sock = createSocket('udp4')
    sock.once('error', reject)
    sock.bind(port, '127.0.0.1', () => sock.close(() => resolve()))
  })
  return port
}

describe('gslb doctor', () => {
  let parent: TestServer
  let badParent: TestServer
  let child1: TestServer
  let child2: TestServer
  let oldChild: TestServer

  beforeAll(async () => {
    ;[parent, badParent, child1, child2, oldChild] = await Promise.all([
      startTestServer({ zones: join(DOCTOR, 'parent') }),
      startTestServer({ zones: join(DOCTOR, 'parent-bad-glue') }),
      startTestServer({ zones: join(DOCTOR, 'child') }),
      startTestServer({ zones: join(DOCTOR, 'child') }),
      startTestServer({ zones: join(DOCTOR, 'child-old-serial') }),
    ])
  })
  afterAll(async () => {
    await Promise.all([parent, badParent, child1, child2, oldChild].map((s) => s?.stop()))
  })

  it('finds nothing wrong with a consistent delegation', async () => {
    const findings = await runDoctor({
      zone: ZONE,
      parent: at(parent),
      instances: [at(child1), at(child2)],
      zonesDir: join(DOCTOR, 'child'),
      timeoutMs: TIMEOUT_MS,
    })
    expect(findings.filter((f) => f.level !== 'ok')).toEqual([])
    const checks = new Set(findings.map((f) => f.check))
    for (const c of ['delegation', 'glue', 'soa', 'ns', 'refused', 'ecs', 'edns', 'tcp', 'zone-file'])
      expect(checks, c).toContain(c)
    // Both instances echo ECS, and the out-of-bailiwick name server is recognised as needing no glue.
    expect(findings.filter((f) => f.check === 'ecs' && f.message.includes('198.51.100.0/24'))).toHaveLength(2)
    expect(findings.some((f) => f.check === 'glue' && f.message.includes('ns2.example.net. is outside'))).toBe(true)
    expect(doctorExitCode(findings)).toBe(0)
    expect(formatFindings(findings)).toMatch(/all \d+ check\(s\) ok$/)
  })

  it('reports wrong glue with the record to put at the parent', async () => {
    const findings = await runDoctor({
      zone: `${ZONE.toUpperCase()}.`,
      parent: at(badParent),
      instances: [at(child1)],
      timeoutMs: TIMEOUT_MS,
    })
    const glue = errors(findings).filter((f) => f.check === 'glue')
    expect(glue).toHaveLength(1)
    expect(glue[0]!.message).toContain('192.0.2.99')
    expect(glue[0]!.fix).toBe(
      'in the parent zone, remove:\nns1.child.parent.example.  3600 IN A  192.0.2.99\n' +
        'and add:\nns1.child.parent.example.  3600 IN A  192.0.2.53',
    )
    // The AAAA glue is right and is said to be.
    expect(findings.some((f) => f.level === 'ok' && f.check === 'glue' && f.message.includes('AAAA'))).toBe(true)
    expect(doctorExitCode(findings)).toBe(1)
    expect(formatFindings(findings)).toContain('fix: in the parent zone, remove:')
  })

  it('names the instance serving another serial, and blames its reload', async () => {
    const findings = await runDoctor({
      zone: ZONE,
      parent: at(parent),
      instances: [at(child1), at(child2), at(oldChild)],
      zonesDir: join(DOCTOR, 'child'),
      timeoutMs: TIMEOUT_MS,
    })
    const soa = errors(findings).filter((f) => f.check === 'soa')
    expect(soa).toHaveLength(1)
    expect(soa[0]!.message).toContain(`127.0.0.1:${oldChild.port} serves serial 2026010101, behind by 1`)
    const file = errors(findings).filter((f) => f.check === 'zone-file')
    expect(file).toHaveLength(1)
    expect(file[0]!.message).toContain(`127.0.0.1:${oldChild.port}`)
    expect(file[0]!.fix).toContain('rejected')
  })

  it('reports an instance nobody answers at', async () => {
    const port = await deadPort()
    const started = Date.now()
    const findings = await runDoctor({
      zone: ZONE,
      parent: at(parent),
      instances: [at(child1), { address: '127.0.0.1', port }],
      timeoutMs: TIMEOUT_MS,
    })
    const dead = errors(findings)
    expect(dead).toHaveLength(1)
    expect(dead[0]!.check).toBe('soa')
    expect(dead[0]!.message).toContain(`127.0.0.1:${port} does not answer`)
    // The live instance is still checked completely.
    expect(findings.some((f) => f.check === 'ecs' && f.level === 'ok')).toBe(true)
    expect(Date.now() - started).toBeLessThan(5_000)
  })

  it('reports a parent that does not serve the parent zone, with the delegation to add', async () => {
    const findings = await runDoctor({ zone: ZONE, parent: at(child1), instances: [at(child2)], timeoutMs: TIMEOUT_MS })
    // Asked for its own apex NS, the child answers authoritatively: the doctor says so and compares.
    expect(findings.some((f) => f.check === 'delegation' && f.message.includes('authoritatively'))).toBe(true)
    const none = await runDoctor({
      zone: 'other.parent.example',
      parent: at(parent),
      instances: [at(child1)],
      timeoutMs: TIMEOUT_MS,
    })
    expect(errors(none).some((f) => f.check === 'delegation')).toBe(true)
  })
})

describe.skipIf(!hasRedis)('gslb doctor with Redis', () => {
  let redis: TestRedis
  let store: RedisStore
  let parent: TestServer
  let child1: TestServer
  beforeAll(async () => {
    ;[redis, parent, child1] = await Promise.all([
      startRedis(),
      startTestServer({ zones: join(DOCTOR, 'parent') }),
      startTestServer({ zones: join(DOCTOR, 'child') }),
    ])
    store = new RedisStore({ url: redis.url, prefix: `doctor-${process.pid}:` })
    await store.ready()
  })
  afterAll(async () => {
    await store?.close()
    await Promise.all([redis?.stop(), parent?.stop(), child1?.stop()])
  })

  it('reports stale instances, instances at another generation and dead regions', async () => {
    const now = Date.now()
    await store.writeProbes('eu', [
      [
        'child.parent.example|web-1',
        {
          up: true,
          since: now - 60_000,
          rttMs: 3,
          lastRttMs: 3,
          error: undefined,
          load: undefined,
          at: now - 20_000,
          expiresAt: now + 5_000,
          prober: 'prober-eu-1',
        },
      ],
    ])
    const generation = (await store.load()).generation
    const info = { host: 'test', staleMs: 0, version: '0.1.0' }
    await store.instanceHeartbeat({ ...info, id: 'good', generation, at: Date.now() }, 60_000)
    await store.instanceHeartbeat({ ...info, id: 'stale', generation, at: now - 60_000 }, 60_000)
    await store.instanceHeartbeat({ ...info, id: 'behind', generation: generation - 1, at: Date.now() }, 60_000)
    await store.instanceHeartbeat({ ...info, id: 'cut-off', generation, staleMs: 30_000, at: Date.now() }, 60_000)

    const findings = await runDoctor({
      zone: ZONE,
      parent: at(parent),
      instances: [at(child1)],
      redis: store,
      regions: ['eu', 'us'],
      timeoutMs: TIMEOUT_MS,
    })
    const bad = errors(findings)
    const about = (id: string): Finding[] => bad.filter((f) => f.message.startsWith(`instance ${id} `))
    expect(about('stale').map((f) => f.message)).toEqual([expect.stringMatching(/last heartbeat 6\ds ago/)])
    expect(about('behind').map((f) => f.message)).toEqual([
      expect.stringContaining(`serves generation ${generation - 1}, the store is at ${generation}`),
    ])
    expect(about('cut-off').map((f) => f.message)).toEqual([expect.stringContaining('has not read the state store')])
    expect(about('good')).toEqual([])
    expect(findings.some((f) => f.level === 'ok' && f.message.startsWith('instance good '))).toBe(true)
    // eu's only prober stalled; us never reported at all.
    expect(findings.some((f) => f.level === 'warn' && f.message.includes('prober prober-eu-1 last reported'))).toBe(
      true,
    )
    expect(bad.some((f) => f.check === 'probers' && f.message.startsWith('vantage eu: no prober'))).toBe(true)
    expect(bad.some((f) => f.check === 'probers' && f.message.startsWith('region us: no live probe report'))).toBe(true)
    expect(findings.some((f) => f.level === 'ok' && f.check === 'redis')).toBe(true)
  })
})
