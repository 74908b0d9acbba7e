/**
 * The query path's decision cache (CompiledService.decideCached) against the reference chain run
 * (CompiledService.decide): for every service of the GSLB fixture zone, many clients (IPv4 and
 * IPv6, with and without ECS, unknown), both address types and a series of health states, the
 * cached answer, its ECS scope and the random numbers consumed must be exactly what an uncached
 * run gives, on the first (miss) and on later (hit) queries. Also: the client key packing, the
 * geo-reload invalidation and the shuffled-at-render multivalue answers.
 */

import { join } from 'node:path'
import * as dnsPacket from 'dns-packet'
import { beforeAll, describe, expect, it } from 'vitest'
import { loadFile } from '../../../src/config/zone-set.ts'
import { nameFromWire, nameToString, parseName } from '../../../src/dns/name.ts'
import { ParseResult, parseQuery, Query } from '../../../src/dns/query.ts'
import { type Template, templateMessage } from '../../../src/dns/template.ts'
import { T } from '../../../src/dns/types.ts'
import { GeoDatabase } from '../../../src/geo/reader.ts'
import { ALL_UP, HealthSnapshot, HealthStore } from '../../../src/health/state.ts'
import { describeDecision } from '../../../src/policy/golden.ts'
import { seededRandom } from '../../../src/policy/random.ts'
import { type CompiledService, type Decision, drawIndex, type Ready } from '../../../src/policy/service.ts'
import type { GeoInfo, PolicyContext, Pool } from '../../../src/policy/types.ts'
import { clientFromText, type GeoLookup, ipv4Value, QueryContext } from '../../../src/query/context.ts'
import { Answerer } from '../../../src/query/handle.ts'
import type { CompiledZone } from '../../../src/zone/compile.ts'
import { buildTable } from '../../../src/zone/table.ts'
import { answerData, decode, query } from '../../helpers/raw.ts'

const FIXTURES = join(import.meta.dirname, '../../fixtures')
const ZONE_FILE = join(FIXTURES, 'gslb/gslb.example.yaml')

let zone: CompiledZone
let geo: GeoDatabase

beforeAll(async () => {
  const load = await loadFile(ZONE_FILE, join(FIXTURES, 'gslb'))
  expect(load.errors).toEqual([])
  zone = load.zone!
  geo = await GeoDatabase.open([join(FIXTURES, 'geo/test-city.mmdb')])
})

/** Clients across the fixture's geo table, both families, several ECS prefixes, and "unknown". */
const CLIENTS: readonly (readonly [address: string, ecsPrefix: number | undefined])[] = [
  ['198.51.100.7', undefined],
  ['198.51.100.7', 24],
  ['198.51.100.70', 25],
  ['198.51.100.130', undefined],
  ['198.51.100.200', 24],
  ['198.51.100.200', 26],
  ['198.51.100.193', undefined],
  ['203.0.113.9', undefined],
  ['203.0.113.9', 16],
  ['192.0.2.77', undefined],
  ['10.1.2.3', 8],
  ['100.64.9.9', undefined],
  ['127.0.0.1', undefined],
  ['8.0.0.0', 6],
  ['2001:db8:e0::5', undefined],
  ['2001:db8:e0::', 48],
  ['2001:db8:a0:1::', 56],
  ['2001:db8:f0::1', 64],
  ['2001:db8:ffff::1', undefined],
  ['::1', undefined],
  ['0.0.0.0', 0],
]

function healthStates(z: CompiledZone): [label: string, snapshot: HealthSnapshot][] {
  const key = z.services[0]!.zoneKey
  const states: [string, HealthSnapshot][] = [['all up', ALL_UP]]
  for (const name of ['eu-1', 'us-1', 'ap-1', 'cdn-a'])
    states.push([`${name} down`, ALL_UP.with([[key, name, { up: false }]])])
  states.push([
    'eu down',
    ALL_UP.with([
      [key, 'eu-1', { up: false }],
      [key, 'eu-2', { drained: true }],
    ]),
  ])
  states.push([
    'everything down',
    ALL_UP.with(
      ['eu-1', 'eu-2', 'us-1', 'us-2', 'ap-1', 'cdn-a', 'cdn-b'].map((n) => [key, n, { up: false }] as const),
    ),
  ])
  states.push(['eu-2 ramping', ALL_UP.with([[key, 'eu-2', { ramp: 0.5 }]])])
  states.push(['eu measured slow from eu', ALL_UP.withRtt([[key, 'eu', 'eu', 400]])])
  states.push(['us forced down', ALL_UP.with([[key, 'us-2', { forced: 'down' }]])])
  return states
}

interface Outcome {
  readonly decision: Decision
  readonly text: string
  readonly scope: number
  /** The next random number after deciding: equal only if both consumed the same count. */
  readonly nextRandom: number
}

function run(
  svc: CompiledService,
  ctx: QueryContext,
  client: readonly [string, number | undefined],
  qtype: number,
  health: HealthSnapshot,
  cached: boolean,
  seed: number,
): Outcome {
  const c = clientFromText(client[0], client[1])!
  ctx.resetFor(c, client[1] !== undefined, health.view(svc.zoneKey))
  const random = seededRandom(seed)
  ctx.random = random
  const decision = cached ? svc.decideCached(qtype, ctx) : svc.decide(qtype, ctx)
  return { decision, text: describeDecision(decision), scope: ctx.ecsScope, nextRandom: random() }
}

describe('decideCached', () => {
  it('gives the reference decision, scope and random use for every service, client and health state', () => {
    const ctx = new QueryContext(geo)
    let compared = 0
    let seed = 1
    for (const [label, health] of healthStates(zone)) {
      // Two passes: the first fills the caches (misses), the second reads them (hits).
      for (const pass of [1, 2]) {
        for (const svc of zone.services) {
          for (const client of CLIENTS) {
            for (const qtype of [T.A, T.AAAA]) {
              seed++
              const want = run(svc, ctx, client, qtype, health, false, seed)
              const got = run(svc, ctx, client, qtype, health, true, seed)
              const where = `${label}, pass ${pass}, ${svc.config.owner.key} ${qtype === T.A ? 'A' : 'AAAA'} for ${client.join('/')}`
              // A chain ending in a shuffling step picks its set without shuffling it on the query
              // path (the response is shuffled at render), so it may draw fewer random numbers.
              const shuffles = svc.steps.at(-1)?.unordered !== undefined
              expect({ where, text: got.text, scope: got.scope, next: shuffles || got.nextRandom }).toEqual({
                where,
                text: want.text,
                scope: want.scope,
                next: shuffles || want.nextRandom,
              })
              if (want.decision.kind === 'answer' && got.decision.kind === 'answer') {
                expect(got.decision.endpoints.map((e) => e.name)).toEqual(want.decision.endpoints.map((e) => e.name))
              }
              compared++
            }
          }
        }
      }
    }
    expect(compared).toBe(healthStates(zone).length * 2 * zone.services.length * CLIENTS.length * 2)
  })

  it('interns answers: the same decision twice is the same object, so its template is reused', () => {
    const ctx = new QueryContext(geo)
    const svc = zone.services.find((s) => s.config.owner.key.startsWith('\x03geo'))!
    const first = run(svc, ctx, ['198.51.100.7', 24], T.A, ALL_UP, true, 7).decision
    const again = run(svc, ctx, ['198.51.100.9', 24], T.A, ALL_UP, true, 7).decision
    expect(first.kind).toBe('answer')
    expect(again).toBe(first)
  })

  it('follows a geo database reload (generation) instead of serving the cached answer', () => {
    // A wrapper that moves every client to the US once "reloaded". (203.0.113.0/24 is one /24
    // network in the fixture, so its decision is cacheable under the /24 key.)
    let moved = false
    let generation = 0
    const fake: GeoLookup = {
      lookup: (address: string): GeoInfo | undefined => {
        const real = geo.lookup(address)
        return moved && real ? { ...real, country: 'US', continent: 'NA' } : real
      },
      get generation() {
        return generation
      },
    }
    const ctx = new QueryContext(fake)
    const svc = zone.services.find((s) => s.config.owner.key.startsWith('\x03geo'))!
    const before = run(svc, ctx, ['203.0.113.0', 24], T.A, ALL_UP, true, 3)
    expect(before.text).toMatch(/^192\.0\.2\.31 /)
    moved = true
    // Same generation: the cache may (and does) keep answering from the old data.
    expect(run(svc, ctx, ['203.0.113.0', 24], T.A, ALL_UP, true, 3).text).toBe(before.text)
    generation++
    expect(run(svc, ctx, ['203.0.113.0', 24], T.A, ALL_UP, true, 3).text).toMatch(/^192\.0\.2\.2[12] /)
  })
})

describe('client cache keys', () => {
  function keyOf(ctx: QueryContext): [number, number, number] {
    ctx.computeKey()
    return [ctx.keyFamily, ctx.keyHi, ctx.keyLo]
  }

  function queryWithEcs(address: string, prefix: number, family: 1 | 2): Query {
    const packet = dnsPacket.encode({
      type: 'query',
      id: 1,
      questions: [{ name: 'x.example', type: 'A' }],
      additionals: [
        {
          type: 'OPT',
          name: '.',
          udpPayloadSize: 1232,
          options: [{ code: 8, family, sourcePrefixLength: prefix, scopePrefixLength: 0, ip: address }],
        } as dnsPacket.Answer,
      ],
    })
    const q = new Query()
    expect(parseQuery(packet, q)).toBe(ParseResult.OK)
    return q
  }

  it('packs the same client alike from a packet source, an ECS option and a client record', () => {
    const health = ALL_UP.view('x')
    const ctx = new QueryContext(undefined)
    const plain = new Query()
    parseQuery(dnsPacket.encode({ type: 'query', id: 1, questions: [{ name: 'x.example', type: 'A' }] }), plain)

    ctx.reset(plain, '198.51.100.77', health)
    const fromSource = keyOf(ctx)
    ctx.reset(plain, '::ffff:198.51.100.77', health)
    expect(keyOf(ctx)).toEqual(fromSource)
    ctx.resetFor(clientFromText('198.51.100.77')!, false, health)
    expect(keyOf(ctx)).toEqual(fromSource)
    // Everything in the /24 shares the key; the next /24 does not.
    ctx.reset(plain, '198.51.100.1', health)
    expect(keyOf(ctx)).toEqual(fromSource)
    ctx.reset(plain, '198.51.101.77', health)
    expect(keyOf(ctx)).not.toEqual(fromSource)
    // ECS /24 of the same network: same key as the /32 source (both cover the /24 key bits).
    ctx.reset(queryWithEcs('198.51.100.0', 24, 1), '127.0.0.1', health)
    expect(keyOf(ctx)).toEqual(fromSource)
    // A shorter ECS prefix is a different client (fewer bits vouched for).
    ctx.reset(queryWithEcs('198.51.0.0', 16, 1), '127.0.0.1', health)
    const slash16 = keyOf(ctx)
    expect(slash16).not.toEqual(fromSource)
    ctx.resetFor(clientFromText('198.51.0.0', 16)!, true, health)
    expect(keyOf(ctx)).toEqual(slash16)
    // ECS source prefix 0: unknown client.
    ctx.reset(queryWithEcs('0.0.0.0', 0, 1), '127.0.0.1', health)
    expect(keyOf(ctx)[0]).toBe(0)
  })

  it('keys IPv6 clients by /56 and tells the families apart', () => {
    const health = ALL_UP.view('x')
    const ctx = new QueryContext(undefined)
    const plain = new Query()
    parseQuery(dnsPacket.encode({ type: 'query', id: 1, questions: [{ name: 'x.example', type: 'A' }] }), plain)
    ctx.reset(plain, '2001:db8:a0:1200::1', health)
    const a = keyOf(ctx)
    expect(a[0]).toBe(6)
    ctx.reset(plain, '2001:db8:a0:12ff:ffff::1', health)
    expect(keyOf(ctx)).toEqual(a)
    ctx.reset(plain, '2001:db8:a0:1300::1', health)
    expect(keyOf(ctx)).not.toEqual(a)
    ctx.reset(queryWithEcs('2001:db8:a0:1200::', 56, 2), '127.0.0.1', health)
    expect(keyOf(ctx)).toEqual(a)
    ctx.reset(queryWithEcs('2001:db8::', 32, 2), '127.0.0.1', health)
    const short = keyOf(ctx)
    expect(short).not.toEqual(a)
    ctx.resetFor(clientFromText('2001:db8::', 32)!, true, health)
    expect(keyOf(ctx)).toEqual(short)
  })

  it('parses dotted quads without allocating and rejects everything else', () => {
    expect(ipv4Value('0.0.0.0')).toBe(0)
    expect(ipv4Value('198.51.100.77')).toBe(((198 << 24) | (51 << 16) | (100 << 8) | 77) >>> 0)
    expect(ipv4Value('255.255.255.255')).toBe(0xffffffff)
    expect(ipv4Value('::ffff:10.1.2.3')).toBe(0x0a010203)
    for (const bad of [
      '',
      '1.2.3',
      '1.2.3.4.5',
      '256.1.1.1',
      '1..2.3',
      '1.2.3.',
      'a.b.c.d',
      '::1',
      '1.2.3.4 ',
      '1234.1.1.1',
    ])
      expect([bad, ipv4Value(bad)]).toEqual([bad, -1])
  })
})

describe('answers a node made ahead (Ready, on the query path)', () => {
  function packetFor(name: string, qtype: number, ecs: readonly [string, number] | undefined): Buffer {
    return query(name, qtype === T.A ? 'A' : 'AAAA', { id: 7, edns: true, ecs })
  }

  it('give what the reference chain gives, with its scope and random use, across health states', () => {
    let random = seededRandom(1)
    const store = new HealthStore()
    const answerer = new Answerer({ geo, health: store, random: () => random() })
    answerer.table = buildTable([zone])
    const ctx = new QueryContext(geo)
    let fromReady = 0
    const byClient = new Set<string>()
    let compared = 0
    let seed = 1
    for (const [label, health] of healthStates(zone)) {
      store.replace(health)
      // Pass 1 finds every node's Ready stale (a new view) and makes it; passes 2 and 3 use it.
      for (const pass of [1, 2, 3]) {
        for (const svc of zone.services) {
          const name = nameToString(svc.config.owner)
          for (const [address, prefix] of CLIENTS) {
            for (const qtype of [T.A, T.AAAA]) {
              seed++
              random = seededRandom(seed)
              const client = clientFromText(address, prefix)!
              // ECS carries the masked subnet (RFC 7871: set bits past the prefix are FORMERR).
              const packet = packetFor(name, qtype, prefix === undefined ? undefined : [client.address, prefix])
              const out = answerer.answer(packet, 'udp', prefix === undefined ? address : '127.0.0.1')!
              const gotNext = random()
              const got = answerer.lastOutcome.decision!
              ctx.resetFor(client, prefix !== undefined, health.view(svc.zoneKey))
              ctx.random = seededRandom(seed)
              const want = svc.decide(qtype, ctx)
              const wantNext = ctx.random()
              const where = `${label}, pass ${pass}, ${name} ${qtype === T.A ? 'A' : 'AAAA'} for ${address}/${prefix}`
              const m = decode(out)
              const records = (m.answers ?? []).map((_, i) => answerData(m, i)).sort()
              const ecs = (m.additionals ?? [])
                .flatMap((r) => (r as { options?: { code: number; scopePrefixLength?: number }[] }).options ?? [])
                .find((o) => o.code === 8)
              const shuffles = svc.steps.at(-1)?.unordered !== undefined
              expect({
                where,
                text: describeDecision(got),
                rcode: (m as { rcode?: string }).rcode,
                records,
                scope: ecs?.scopePrefixLength,
                next: shuffles || gotNext,
              }).toEqual({
                where,
                text: describeDecision(want),
                rcode: want.kind === 'servfail' ? 'SERVFAIL' : 'NOERROR',
                records: want.kind === 'answer' ? want.values.map((v) => v.replace(/\.$/, '')).sort() : [],
                scope: prefix === undefined ? undefined : ctx.ecsScope,
                next: shuffles || wantNext,
              })
              compared++
            }
          }
          if (pass > 1) {
            const r = answerer.table.nodes.get(svc.config.owner.key)!.service!.ready4
            if (r.view === store.current.view(svc.zoneKey) && r.decision0 !== undefined) fromReady++
            if (r.view === store.current.view(svc.zoneKey) && r.clientCount > 0)
              byClient.add(nameToString(svc.config.owner))
          }
        }
      }
    }
    expect(compared).toBe(healthStates(zone).length * 3 * zone.services.length * CLIENTS.length * 2)
    // Weighted draws, failover and the all-down modes answer from their nodes; geo, latency,
    // proximity and sticky from their IPv4 clients' Readys; the shuffled multivalue takes the full path.
    expect(fromReady).toBeGreaterThan(healthStates(zone).length * 2 * 8)
    expect([...byClient].sort()).toEqual(['geo', 'latency', 'nearest', 'sticky'].map((n) => `${n}.gslb.example.`))
  })

  it('keep thousands of clients per node, and start afresh past the bound', () => {
    const answerer = new Answerer({ geo })
    answerer.table = buildTable([zone])
    const svc = zone.services.find((s) => s.config.owner.key.startsWith('\x06sticky'))!
    const node = answerer.table.nodes.get(svc.config.owner.key)!.service!
    const ctx = new QueryContext(geo)
    // Every other client is IPv6 /32: those keys differ in their high 32 bits alone.
    const subnet = (i: number): [string, number] =>
      i % 2 === 0 ? [`10.${(i >> 8) & 0xff}.${i & 0xff}.0`, 24] : [`${(0x2000 + (i >> 1)).toString(16)}:db8::`, 32]
    const answerFor = (i: number): string => {
      const out = answerer.answer(packetFor('sticky.gslb.example', T.A, subnet(i)), 'udp', '127.0.0.1')!
      return answerData(decode(out), 0)!
    }
    const want = (i: number): string => {
      ctx.resetFor(clientFromText(...subnet(i))!, true, ALL_UP.view(svc.zoneKey))
      const d = svc.decide(T.A, ctx)
      return d.kind === 'answer' ? d.values[0]! : d.kind
    }
    let most = 0
    const families = new Set<number>()
    for (let i = 0; i < 5000; i++) {
      // The first query of a client takes the full path and makes its Ready; the second reads it.
      expect([i, answerFor(i)]).toEqual([i, want(i)])
      expect([i, answerFor(i)]).toEqual([i, want(i)])
      most = Math.max(most, node.ready4.clientCount)
      expect(node.ready4.clientCount * 2).toBeLessThanOrEqual(node.ready4.clients!.length)
      for (const c of node.ready4.clients!) if (c !== undefined) families.add(c.clientFamily)
    }
    expect(most).toBe(4096)
    expect(node.ready4.clientCount).toBe(5000 - 4096)
    expect([...families].sort()).toEqual([4, 6])
    for (const i of [0, 1, 4095, 4096, 4999]) expect([i, answerFor(i)]).toEqual([i, want(i)])
  })

  it('keep every client also without a geo database', () => {
    // A Ready made without one records no geo generation; the client table must still be kept.
    const answerer = new Answerer()
    answerer.table = buildTable([zone])
    const svc = zone.services.find((s) => s.config.owner.key.startsWith('\x06sticky'))!
    const node = answerer.table.nodes.get(svc.config.owner.key)!.service!
    const ctx = new QueryContext(undefined)
    for (let i = 0; i < 20; i++) {
      const subnet: [string, number] = [`10.0.${i}.0`, 24]
      const out = answerer.answer(packetFor('sticky.gslb.example', T.A, subnet), 'udp', '127.0.0.1')!
      ctx.resetFor(clientFromText(...subnet)!, true, ALL_UP.view(svc.zoneKey))
      const d = svc.decide(T.A, ctx)
      expect([i, answerData(decode(out), 0)]).toEqual([i, d.kind === 'answer' ? d.values[0] : d.kind])
    }
    expect(node.ready4.clientCount).toBe(20)
  })

  it('are made again after a geo database reload', () => {
    // `failover` (pure steps, no client bit) answers from its node; the fake geo data says nothing
    // about it, so the check is that a new generation makes a new Ready, not a different answer.
    let generation = 0
    const fake: GeoLookup = {
      lookup: (address: string) => geo.lookup(address),
      get generation() {
        return generation
      },
    }
    const answerer = new Answerer({ geo: fake })
    answerer.table = buildTable([zone])
    const packet = packetFor('failover.gslb.example', T.A, undefined)
    const node = answerer.table.nodes.get(parseName('failover.gslb.example.').key)!.service!
    answerer.answer(packet, 'udp', '198.51.100.7')
    const first = node.ready4
    expect(first.decision0).toBeDefined()
    expect(first.last).toBe(0)
    answerer.answer(packet, 'udp', '198.51.100.7')
    expect(node.ready4).toBe(first)
    generation++
    answerer.answer(packet, 'udp', '198.51.100.7')
    expect(node.ready4).not.toBe(first)
    expect(node.ready4.geoGeneration).toBe(1)
  })
})

describe('drawing from a Ready', () => {
  it('divides for equal integer weights and picks what the scan of the sums picks', () => {
    const decisions = (n: number) => Array.from({ length: n }, () => ({ kind: 'servfail' }) as Decision)
    const ready = (sums: number[], step: number): Ready => ({
      ...({} as Ready),
      family: -1,
      total: sums.at(-1)!,
      sums,
      step,
      decisions: decisions(sums.length),
      last: sums.length - 1,
    })
    let checked = 0
    for (const n of [1, 2, 3, 5, 8]) {
      for (const w of [1, 3, 7, 100]) {
        const sums = Array.from({ length: n }, (_, k) => (k + 1) * w)
        const randoms = [0, 0.5, 1 - Number.EPSILON / 2]
        for (let k = 1; k < n; k++) {
          // Exactly at each boundary and the doubles on either side of it.
          const at = k / n
          randoms.push(at, at - Number.EPSILON, at + Number.EPSILON, at * (1 - Number.EPSILON))
        }
        const random = seededRandom(n * 1000 + w)
        for (let i = 0; i < 200; i++) randoms.push(random())
        for (const x of randoms) {
          const ctx = { random: () => x } as unknown as PolicyContext
          expect([n, w, x, drawIndex(ready(sums, w), ctx)]).toEqual([n, w, x, drawIndex(ready(sums, 0), ctx)])
          checked++
        }
      }
    }
    expect(checked).toBeGreaterThan(4000)
  })
})

describe('shuffled multivalue answers', () => {
  it('answer the same records in every order, from one template', () => {
    const answerer = new Answerer({ geo })
    answerer.table = buildTable([zone])
    const packet = dnsPacket.encode({ type: 'query', id: 9, questions: [{ name: 'multi.gslb.example', type: 'A' }] })
    const orders = new Set<string>()
    let set: string | undefined
    for (let i = 0; i < 400; i++) {
      const out = answerer.answer(packet, 'udp', '127.0.0.1')!
      expect(out[3]! & 0xf).toBe(0) // NOERROR
      const m = decode(out)
      const data = (m.answers ?? []).map(
        (a, i) => `${a.name} ${a.type} ${(a as { ttl?: number }).ttl} ${answerData(m, i)}`,
      )
      expect(data.length).toBe(3)
      orders.add(data.join(','))
      const sorted = [...data].sort().join(',')
      if (set === undefined) set = sorted
      // The fixture's multi service has 4 IPv4 endpoints and count 3: subsets vary too, so only
      // check that every answer is a set of distinct fixture addresses.
      expect(new Set(data).size).toBe(3)
      for (const d of data) expect(d).toMatch(/^multi\.gslb\.example A \d+ 192\.0\.2\.(11|12|21|22|31)$/)
    }
    // 3 records have 6 orders; with subsets as well, far more than 6 distinct sequences show up.
    expect(orders.size).toBeGreaterThan(6)
  })
})

describe('health snapshots and the cache', () => {
  it('keep the view (and so the cached answers) of a zone a new snapshot did not change', () => {
    const store = new HealthStore()
    const a = ALL_UP.with([['zone-a', 'x', { up: false }]])
    store.replace(a)
    const viewA = store.current.view('zone-a')
    const viewB = store.current.view('zone-b')
    // A change in zone-b only: zone-a keeps its view object, zone-b gets a new one.
    store.replace(a.with([['zone-b', 'y', { up: false }]]))
    expect(store.current.view('zone-a')).toBe(viewA)
    expect(store.current.view('zone-b')).not.toBe(viewB)
    // Same content rebuilt from scratch (what every state-store read does): views carry over.
    const viewB2 = store.current.view('zone-b')
    store.replace(HealthSnapshot.fromData(store.current.data()))
    expect(store.current.view('zone-a')).toBe(viewA)
    expect(store.current.view('zone-b')).toBe(viewB2)
    // An RTT change is a change.
    store.replace(store.current.withRtt([['zone-a', 'p', 'eu', 12]]))
    expect(store.current.view('zone-a')).not.toBe(viewA)
    expect(store.current.view('zone-a').rtt({ name: 'p' } as Pool, 'eu')).toBe(12)
    expect(store.current.view('zone-b')).toBe(viewB2)
  })
})

describe('templates kept on the decision', () => {
  it('are built for the node that asked, also when two nodes of one service share a decision', () => {
    // `*.apps` answers its literal name (an exact node) and every name below `apps` (a stand-in
    // node): one service, two nodes, the same deterministic decision.
    const table = buildTable([zone])
    const key = (text: string): string => parseName(text).key
    const exact = table.nodes.get(key('*.apps.gslb.example.'))!.service!
    const below = table.nodes.get(key('apps.gslb.example.'))!.below!.service!
    expect(exact.service).toBe(below.service)
    const svc = exact.service
    const ctx = new QueryContext(geo)
    const d = run(svc, ctx, ['198.51.100.7', undefined], T.A, ALL_UP, true, 1).decision
    expect(d.kind).toBe('answer')
    const question = (t: Template | undefined): string => nameToString(nameFromWire(templateMessage(t!).subarray(12)))
    for (let round = 0; round < 3; round++) {
      for (const [node, name] of [
        [below, '*.apps.gslb.example.'],
        [exact, '*.apps.gslb.example.'],
      ] as const) {
        const t = svc.template(node, T.A, d)
        expect(question(t)).toBe(name)
        expect(svc.template(node, T.A, d)).toBe(t) // kept, not rebuilt
        expect(templateMessage(t!).readUInt16BE(6)).toBe(2) // us-1 and us-2
      }
      // The stand-in and the exact template differ (a stand-in's question is replaced at render).
      expect(svc.template(below, T.A, d)).not.toBe(svc.template(exact, T.A, d))
    }
    // ANY is answered as A but carries its own question type: built each time, never kept.
    expect(svc.template(exact, T.ANY, d)).not.toBe(svc.template(exact, T.ANY, d))
  })
})
