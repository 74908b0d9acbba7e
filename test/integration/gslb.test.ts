/**
 * Load-balanced names answered by a real listening server, asked by the real `dig` (with
 * `+subnet` for ECS). Fixture: test/fixtures/gslb/gslb.example.yaml and the tiny geo database
 * test/fixtures/geo/test-city.mmdb. Health changes go through the server's HealthStore, the same
 * interface the probing side drives.
 */

import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { GeoDatabase } from '../../src/geo/reader.ts'
import { ALL_UP } from '../../src/health/state.ts'
import { dig } from '../helpers/dig.ts'
import { answerData, decode, query, udpExchange } from '../helpers/raw.ts'
import { FIXTURES, startTestServer, type TestServer } from '../helpers/server.ts'

let s: TestServer
let geo: GeoDatabase
const ZONE = 'gslb.example'
const q = (...args: string[]) => dig('127.0.0.1', s.port, ...args)
const addrs = async (...args: string[]) => (await q('+short', ...args)).raw.trim().split('\n').filter(Boolean).sort()
const setDown = (...names: string[]) => {
  for (const n of names) s.server.answerer.health.setEndpoint(ZONE, n, { up: false })
}

beforeAll(async () => {
  geo = await GeoDatabase.open([join(FIXTURES, 'geo', 'test-city.mmdb')])
  s = await startTestServer({ zones: join(FIXTURES, 'gslb'), answer: { geo } })
})
afterAll(async () => {
  await s.stop()
  geo.close()
})
afterEach(() => {
  s.server.answerer.health.replace(ALL_UP)
})

describe('weighted', () => {
  it('answers one endpoint of the pool, authoritatively, with the service TTL', async () => {
    const r = await q('weighted.gslb.example', 'A')
    expect(r.flags.has('aa')).toBe(true)
    expect(r.answer).toHaveLength(1)
    expect(['192.0.2.11', '192.0.2.12']).toContain(r.answer[0]!.data)
    expect(r.answer[0]!.ttl).toBe(30)
  })

  it('follows the 3:1 weights over many queries', async () => {
    const counts = new Map<string, number>()
    for (let i = 0; i < 800; i++) {
      const reply = await udpExchange(s.port, query('weighted.gslb.example', 'A', { id: i }))
      const a = answerData(decode(reply!))!
      counts.set(a, (counts.get(a) ?? 0) + 1)
    }
    const share = (counts.get('192.0.2.11') ?? 0) / 800
    // Expected 0.75; 800 draws give a standard deviation of about 0.015.
    expect(share).toBeGreaterThan(0.68)
    expect(share).toBeLessThan(0.82)
  })

  it('answers AAAA from the same pools', async () => {
    expect(['2001:db8:e0::11', '2001:db8:e0::12']).toContain((await addrs('weighted.gslb.example', 'AAAA'))[0])
  })

  it('echoes ECS with scope /0: a weighted answer does not depend on the client', async () => {
    const r = await q('weighted.gslb.example', 'A', '+subnet=198.51.100.0/24')
    expect(r.opt.join('\n')).toContain('CLIENT-SUBNET: 198.51.100.0/24/0')
  })

  it('keeps serving static data of other types at a service name', async () => {
    const r = await q('info.gslb.example', 'TXT')
    expect(r.answer.map((a) => a.data)).toEqual(['"weighted has a TXT too"'])
    expect(await addrs('info.gslb.example', 'A')).toHaveLength(1)
  })
})

describe('geo with EDNS Client Subnet', () => {
  it.each([
    ['198.51.100.0/25', ['192.0.2.11', '192.0.2.12'], 25],
    ['198.51.100.128/26', ['192.0.2.21', '192.0.2.22'], 25],
    ['203.0.113.0/24', ['192.0.2.31'], 24],
    ['192.0.2.0/24', ['192.0.2.21', '192.0.2.22'], 24],
  ])('sends %s to its region and reports the scope the decision used', async (subnet, allowed, scope) => {
    const r = await q('geo.gslb.example', 'A', `+subnet=${subnet}`)
    expect(allowed).toContain(r.answer[0]!.data)
    const source = subnet.split('/')[1]
    expect(r.opt.join('\n')).toContain(`CLIENT-SUBNET: ${subnet}/${Math.min(scope, Number(source))}`)
  })

  it('lets a CIDR rule beat the country, with the CIDR prefix as scope', async () => {
    const r = await q('geo.gslb.example', 'A', '+subnet=198.51.100.192/27')
    expect(r.answer[0]!.data).toBe('192.0.2.31')
    expect(r.opt.join('\n')).toContain('CLIENT-SUBNET: 198.51.100.192/27/26')
  })

  it('never reports more scope bits than the client sent', async () => {
    const r = await q('geo.gslb.example', 'A', '+subnet=198.51.100.0/16')
    expect(r.opt.join('\n')).toMatch(/CLIENT-SUBNET: 198\.51\.0\.0\/16\/(\d+)/)
    const scope = Number(/CLIENT-SUBNET: [^/]+\/16\/(\d+)/.exec(r.opt.join('\n'))![1])
    expect(scope).toBeLessThanOrEqual(16)
  })

  it('uses the packet source when there is no ECS (loopback is in no region: default pool)', async () => {
    expect(['192.0.2.21', '192.0.2.22']).toContain((await addrs('geo.gslb.example', 'A'))[0])
  })

  it('spreads the clients of a region that is down over the others by capacity', async () => {
    setDown('eu-1', 'eu-2')
    const seen = new Set<string>()
    for (let i = 0; i < 40; i++) {
      const reply = await udpExchange(s.port, ecsQuery('geo.gslb.example', `198.51.100.${i}`, 32))
      seen.add(answerData(decode(reply!))!)
    }
    expect([...seen].every((a) => ['192.0.2.21', '192.0.2.22', '192.0.2.31'].includes(a))).toBe(true)
  })
})

describe('failover', () => {
  it('answers the primary pool while it is up', async () => {
    expect(await addrs('failover.gslb.example', 'A')).toEqual(['192.0.2.11', '192.0.2.12'])
  })

  it('answers only the healthy members of the primary', async () => {
    setDown('eu-1')
    expect(await addrs('failover.gslb.example', 'A')).toEqual(['192.0.2.12'])
  })

  it('moves to the secondary when the primary is down, with the lower TTL while degraded', async () => {
    setDown('eu-1', 'eu-2')
    const r = await q('failover.gslb.example', 'A')
    expect(r.answer.map((a) => a.data).sort()).toEqual(['192.0.2.21', '192.0.2.22'])
    // us pool TTL is 20, lower than the service's 50; the us pool itself is healthy.
    expect(r.answer[0]!.ttl).toBe(20)
  })
})

describe('TTL follows health', () => {
  it('halves the TTL while a member of the answering pool is down', async () => {
    expect((await q('failover.gslb.example', 'A')).answer[0]!.ttl).toBe(50)
    setDown('eu-2')
    expect((await q('failover.gslb.example', 'A')).answer[0]!.ttl).toBe(25)
  })
})

describe('latency', () => {
  it('picks the lowest RTT pool from the static table for the client region', async () => {
    expect(await addrs('latency.gslb.example', 'A', '+subnet=203.0.113.0/24')).toEqual(['192.0.2.31'])
    expect(await addrs('latency.gslb.example', 'A', '+subnet=198.51.100.0/25')).toEqual(['192.0.2.11'])
  })

  it('switches when measurements say another pool is much faster, not on small differences', async () => {
    const health = s.server.answerer.health
    health.setRtt(ZONE, 'ap', 'ap', 100)
    health.setRtt(ZONE, 'us', 'ap', 95)
    expect(await addrs('latency.gslb.example', 'A', '+subnet=203.0.113.0/24')).toEqual(['192.0.2.31'])
    health.setRtt(ZONE, 'us', 'ap', 40)
    expect(await addrs('latency.gslb.example', 'A', '+subnet=203.0.113.0/24')).toEqual(['192.0.2.21'])
  })
})

describe('proximity', () => {
  it('answers the nearest pool to the client location', async () => {
    expect(await addrs('nearest.gslb.example', 'A', '+subnet=203.0.113.0/24')).toEqual(['192.0.2.31'])
    expect(await addrs('nearest.gslb.example', 'A', '+subnet=198.51.100.0/25')).toEqual(['192.0.2.11'])
    expect(await addrs('nearest.gslb.example', 'A', '+subnet=198.51.100.128/25')).toEqual(['192.0.2.21'])
  })
})

describe('sticky', () => {
  it('gives a client subnet the same endpoint every time, and moves it only when it goes down', async () => {
    const first = await addrs('sticky.gslb.example', 'A', '+subnet=198.51.100.0/24')
    for (let i = 0; i < 10; i++)
      expect(await addrs('sticky.gslb.example', 'A', '+subnet=198.51.100.0/24')).toEqual(first)
    const names: Record<string, string> = {
      '192.0.2.11': 'eu-1',
      '192.0.2.12': 'eu-2',
      '192.0.2.21': 'us-1',
      '192.0.2.22': 'us-2',
    }
    setDown(names[first[0]!]!)
    const moved = await addrs('sticky.gslb.example', 'A', '+subnet=198.51.100.0/24')
    expect(moved).not.toEqual(first)
  })
})

describe('multivalue and first N', () => {
  it('answers up to N healthy addresses', async () => {
    const r = await addrs('multi.gslb.example', 'A')
    expect(r).toHaveLength(3)
    setDown('eu-1', 'eu-2', 'us-1')
    expect(await addrs('multi.gslb.example', 'A')).toEqual(['192.0.2.22', '192.0.2.31'])
  })

  it('returns NODATA for AAAA when the chosen endpoints have no IPv6 address', async () => {
    const r = await q('*.apps.gslb.example', 'AAAA')
    expect(r.status).toBe('NOERROR')
    expect(r.answer.map((a) => a.data)).toEqual(['2001:db8:a0::21'])
  })
})

describe('wildcard and CNAME services', () => {
  it('answers a wildcard service for any name below it, with the query name as owner', async () => {
    const r = await q('anything.apps.gslb.example', 'A')
    expect(r.answer.map((a) => `${a.name} ${a.data}`).sort()).toEqual([
      'anything.apps.gslb.example. 192.0.2.21',
      'anything.apps.gslb.example. 192.0.2.22',
    ])
  })

  it('answers a CNAME pool with one CNAME, never the weight-0 member while the other is up', async () => {
    for (let i = 0; i < 10; i++) {
      const r = await q('cdn.gslb.example', 'A')
      expect(r.answer.map((a) => `${a.type} ${a.data}`)).toEqual(['CNAME edge-a.cdn.example.net.'])
    }
    setDown('cdn-a')
    expect((await q('cdn.gslb.example', 'A')).answer[0]!.data).toBe('edge-b.cdn.example.net.')
  })
})

describe('all-down modes', () => {
  it.each([
    ['down-servfail', (r: Awaited<ReturnType<typeof q>>) => expect(r.status).toBe('SERVFAIL')],
    [
      'down-nodata',
      (r: Awaited<ReturnType<typeof q>>) => {
        expect(r.status).toBe('NOERROR')
        expect(r.answer).toHaveLength(0)
        expect(r.authority.map((a) => a.type)).toEqual(['SOA'])
      },
    ],
    [
      'down-pool',
      (r: Awaited<ReturnType<typeof q>>) => expect(['192.0.2.21', '192.0.2.22']).toContain(r.answer[0]!.data),
    ],
    [
      'down-address',
      (r: Awaited<ReturnType<typeof q>>) => expect(r.answer.map((a) => a.data)).toEqual(['192.0.2.250']),
    ],
    [
      'down-cname',
      (r: Awaited<ReturnType<typeof q>>) => expect(r.answer.map((a) => a.data)).toEqual(['sorry.example.net.']),
    ],
    ['down-open', (r: Awaited<ReturnType<typeof q>>) => expect(r.answer.map((a) => a.data)).toEqual(['192.0.2.31'])],
  ])('%s applies its mode when every endpoint is down, and answers normally otherwise', async (name, check) => {
    expect(await addrs(`${name}.gslb.example`, 'A')).toEqual(['192.0.2.31'])
    setDown('ap-1')
    check(await q(`${name}.gslb.example`, 'A'))
  })
})

describe('static names beside services', () => {
  it('are untouched', async () => {
    expect(await addrs('static.gslb.example', 'A')).toEqual(['192.0.2.99'])
    expect((await q('nothing.gslb.example', 'A')).status).toBe('NXDOMAIN')
  })
})

/** A query with an ECS option for address/prefix (dig's +subnet, for raw-socket loops). */
function ecsQuery(name: string, address: string, prefix: number): Buffer {
  const base = query(name, 'A', { edns: true })
  const addr = Buffer.from(address.split('.').map(Number)).subarray(0, (prefix + 7) >> 3)
  const opt = Buffer.alloc(8 + addr.length)
  opt.writeUInt16BE(8, 0)
  opt.writeUInt16BE(4 + addr.length, 2)
  opt.writeUInt16BE(1, 4)
  opt[6] = prefix
  opt[7] = 0
  addr.copy(opt, 8)
  // The OPT record is the last 11 bytes of `base`; grow its rdata with the option.
  const out = Buffer.concat([base, opt])
  out.writeUInt16BE(opt.length, base.length - 2)
  return out
}
