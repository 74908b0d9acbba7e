import { describe, expect, it } from 'vitest'
import { geoStep } from '../../../src/policy/geo.ts'
import { makeStep } from '../../../src/policy/registry.ts'
import type { GeoInfo, GeoMatch, GeoRule, NamedStep, Pool } from '../../../src/policy/types.ts'
import { conformancePools, runPolicyCases } from '../../conformance/policy.case.ts'
import {
  type ContextOptions,
  makeContext,
  makePools,
  mulberry32,
  namesOf,
  parseAddress,
  randomIPv4,
} from '../../helpers/policy-context.ts'

function cidr(text: string): GeoMatch {
  const [address, prefix] = text.split('/')
  const { family, bytes } = parseAddress(address!)
  return { kind: 'cidr', family, network: bytes, prefix: Number(prefix) }
}

for (const spread of [false, true]) {
  runPolicyCases(`geo (spread ${spread})`, () => {
    const p = conformancePools.pool
    const rules: GeoRule[] = [
      { match: cidr('0.0.0.0/1'), pools: [p('asia'), p('us')] },
      { match: cidr('2001:db8:8000::/33'), pools: [p('sa')] },
      { match: { kind: 'asn', asn: 64500 }, pools: [p('oc'), p('us')] },
      { match: { kind: 'subdivision', code: 'US-CA' }, pools: [p('us')] },
      { match: { kind: 'country', code: 'DE' }, pools: [p('eu'), p('us')] },
      { match: { kind: 'continent', code: 'EU' }, pools: [p('eu')] },
      { match: { kind: 'continent', code: 'OC' }, pools: [p('oc')] },
    ]
    return geoStep({ kind: 'geo', rules, fallback: [p('us'), p('asia')], spread })
  })
}

const service = makePools({
  eu: { endpoints: 2, location: { lat: 50.11, lon: 8.68 } },
  euwest: { endpoints: 2 },
  us: { endpoints: 2 },
  asia: { endpoints: 2 },
  sa: { endpoints: 1 },
  oc: { endpoints: 1 },
  global: { endpoints: 2 },
})
const pool = service.pool

const rules: GeoRule[] = [
  { match: cidr('192.0.2.0/24'), pools: [pool('asia')] },
  { match: cidr('192.0.2.128/25'), pools: [pool('oc')] },
  { match: cidr('2001:db8:abcd::/48'), pools: [pool('sa')] },
  { match: { kind: 'asn', asn: 64500 }, pools: [pool('sa')] },
  { match: { kind: 'subdivision', code: 'US-CA' }, pools: [pool('asia')] },
  { match: { kind: 'country', code: 'DE' }, pools: [pool('eu'), pool('euwest')] },
  { match: { kind: 'country', code: 'us' }, pools: [pool('us')] },
  { match: { kind: 'continent', code: 'EU' }, pools: [pool('euwest')] },
]

function geo(options: { spread?: boolean; fallback?: Pool[]; rules?: GeoRule[] } = {}): NamedStep {
  return geoStep({
    kind: 'geo',
    rules: options.rules ?? rules,
    fallback: options.fallback ?? [pool('global')],
    spread: options.spread ?? false,
  })
}

const berlin: GeoInfo = { country: 'DE', continent: 'EU', prefixLength: 20 }
const paris: GeoInfo = { country: 'FR', continent: 'EU', prefixLength: 18 }
const california: GeoInfo = { country: 'US', continent: 'NA', subdivision: 'US-CA', prefixLength: 22 }
const texas: GeoInfo = { country: 'US', continent: 'NA', subdivision: 'US-TX', prefixLength: 16 }

describe('geo rule specificity', () => {
  const cases: {
    name: string
    client: string
    geo?: GeoInfo
    expected: string
    scope: number | undefined
    geoCalls: number
  }[] = [
    {
      name: 'a CIDR rule beats the country',
      client: '192.0.2.10',
      geo: berlin,
      expected: 'asia',
      scope: 24,
      geoCalls: 0,
    },
    { name: 'the longest CIDR rule wins', client: '192.0.2.200', geo: berlin, expected: 'oc', scope: 25, geoCalls: 0 },
    {
      name: 'an IPv6 CIDR rule matches IPv6 clients',
      client: '2001:db8:abcd:1::1',
      expected: 'sa',
      scope: 48,
      geoCalls: 0,
    },
    {
      name: 'an ASN rule beats subdivision and country',
      client: '203.0.113.1',
      geo: { ...california, asn: 64500 },
      expected: 'sa',
      scope: 22,
      geoCalls: 1,
    },
    {
      name: 'a subdivision beats its country',
      client: '203.0.113.1',
      geo: california,
      expected: 'asia',
      scope: 22,
      geoCalls: 1,
    },
    {
      name: 'a country rule matches whatever case it was written in',
      client: '203.0.113.1',
      geo: texas,
      expected: 'us',
      scope: 16,
      geoCalls: 1,
    },
    {
      name: 'a country beats its continent',
      client: '203.0.113.1',
      geo: berlin,
      expected: 'eu',
      scope: 20,
      geoCalls: 1,
    },
    {
      name: 'a continent rule catches the rest of it',
      client: '203.0.113.1',
      geo: paris,
      expected: 'euwest',
      scope: 18,
      geoCalls: 1,
    },
    {
      name: 'the fallback answers when no rule matches',
      client: '203.0.113.1',
      geo: { country: 'JP', continent: 'AS', prefixLength: 12 },
      expected: 'global',
      scope: 12,
      geoCalls: 1,
    },
    {
      name: 'the fallback answers a client the geo database does not know',
      client: '203.0.113.1',
      expected: 'global',
      scope: 32,
      geoCalls: 1,
    },
  ]
  for (const c of cases) {
    it(c.name, () => {
      const options: ContextOptions = { client: c.client, ...(c.geo ? { geo: c.geo } : {}) }
      const ctx = makeContext(options)
      const answer = geo().run(service.endpoints, ctx)
      expect(namesOf(answer)).toEqual(service.of(c.expected).map((e) => e.name))
      expect(ctx.scoped).toBe(c.scope)
      expect(ctx.geoCalls).toBe(c.geoCalls)
    })
  }

  it('does not look up geo data when only CIDR rules exist, whether or not one matches', () => {
    const cidrOnly = geo({ rules: rules.filter((r) => r.match.kind === 'cidr') })
    const hit = makeContext({ client: '192.0.2.1', geo: berlin })
    expect(namesOf(cidrOnly.run(service.endpoints, hit))).toEqual(['asia-1', 'asia-2'])
    const miss = makeContext({ client: '203.0.113.1', geo: berlin })
    expect(namesOf(cidrOnly.run(service.endpoints, miss))).toEqual(['global-1', 'global-2'])
    expect([hit.geoCalls, miss.geoCalls]).toEqual([0, 0])
    expect(miss.scoped).toBe(25)
  })

  it('matches an ECS client by the bits it vouched for', () => {
    const ctx = makeContext({ client: '192.0.2.200', ecsPrefix: 24, geo: berlin })
    expect(namesOf(geo().run(service.endpoints, ctx))).toEqual(['asia-1', 'asia-2'])
  })
})

describe('geo when pools are down', () => {
  const cases: { name: string; down: string[]; candidates?: string[]; expected: string[] }[] = [
    { name: 'tries the rule pools in order', down: ['eu-1', 'eu-2'], expected: ['euwest-1', 'euwest-2'] },
    { name: 'answers with the up endpoints of the first up pool', down: ['eu-1'], expected: ['eu-2'] },
    {
      name: 'skips rule pools that are not candidates',
      down: [],
      candidates: ['us-1', 'euwest-2', 'global-1'],
      expected: ['euwest-2'],
    },
    {
      name: 'falls through to the fallback pools without spread',
      down: ['eu-1', 'eu-2', 'euwest-1', 'euwest-2'],
      expected: ['global-1', 'global-2'],
    },
    {
      name: 'then to any up pool in candidate order',
      down: ['eu-1', 'eu-2', 'euwest-1', 'euwest-2', 'global-1', 'global-2'],
      expected: ['us-1', 'us-2'],
    },
  ]
  for (const { name, down, candidates, expected } of cases) {
    it(name, () => {
      const list = candidates ? candidates.map((n) => service.endpoint(n)) : service.endpoints
      const ctx = makeContext({ client: '203.0.113.1', geo: berlin, down: new Set(down) })
      expect(namesOf(geo().run(list, ctx))).toEqual(expected)
    })
  }

  it('counts a pool below its up threshold as down, and uses it degraded when nothing else is up', () => {
    const strict = makePools({ eu: { endpoints: 3, upThreshold: 2 }, us: { endpoints: 2, upThreshold: 2 } })
    const step = geoStep({
      kind: 'geo',
      rules: [{ match: { kind: 'country', code: 'DE' }, pools: [strict.pool('eu')] }],
      fallback: [strict.pool('us')],
      spread: false,
    })
    const oneDown = makeContext({ geo: berlin, down: new Set(['eu-1', 'eu-2']) })
    expect(namesOf(step.run(strict.endpoints, oneDown))).toEqual(['us-1', 'us-2'])
    const degraded = makeContext({ geo: berlin, down: new Set(['eu-1', 'eu-2', 'us-1']) })
    expect(namesOf(step.run(strict.endpoints, degraded))).toEqual(['eu-3'])
  })

  it('passes on all candidates of the pool it would have chosen when nothing is up', () => {
    const ctx = makeContext({ geo: berlin, down: new Set(service.endpoints.map((e) => e.name)) })
    expect(namesOf(geo().run(service.endpoints, ctx))).toEqual(['eu-1', 'eu-2'])
  })
})

describe('geo spread when the rule pools are down', () => {
  const spreadService = makePools({
    home: { endpoints: 2, capacity: 5 },
    small: { endpoints: 1, capacity: 1 },
    big: { endpoints: 2, capacity: 3 },
    none: { endpoints: 1, capacity: 0 },
  })
  const step = geoStep({
    kind: 'geo',
    rules: [{ match: { kind: 'country', code: 'DE' }, pools: [spreadService.pool('home')] }],
    fallback: [spreadService.pool('none')],
    spread: true,
  })
  const down = new Set(['home-1', 'home-2'])
  const random = mulberry32(5)
  const clients = Array.from({ length: 10_000 }, () => randomIPv4(random))
  const pick = (client: string, seed = 1) =>
    step.run(spreadService.endpoints, makeContext({ client, geo: berlin, down, seed, trace: false }))[0]!.pool.name

  it('spreads clients over the up pools in proportion to capacity', () => {
    const counts: Record<string, number> = {}
    for (const client of clients) {
      const name = pick(client)
      counts[name] = (counts[name] ?? 0) + 1
    }
    expect(counts.none).toBeUndefined()
    expect(Math.abs(counts.small! / clients.length - 0.25)).toBeLessThan(0.02)
    expect(Math.abs(counts.big! / clients.length - 0.75)).toBeLessThan(0.02)
  })

  it('holds a pool with a spillCap to that share and gives the rest to the others', () => {
    const capped = makePools({
      home: { endpoints: 1, capacity: 5 },
      small: { endpoints: 1, capacity: 1 },
      big: { endpoints: 1, capacity: 3 },
    })
    // big would take 75% by capacity; capped at 40%, small takes the other 60%.
    const pools = capped.pools.map((p) => (p.name === 'big' ? { ...p, spillCap: 0.4 } : p))
    const eps = capped.endpoints.map((e) => ({ ...e, pool: pools[e.pool.index]! }))
    const cappedStep = geoStep({
      kind: 'geo',
      rules: [{ match: { kind: 'country', code: 'DE' }, pools: [pools[0]!] }],
      fallback: [],
      spread: true,
    })
    const counts: Record<string, number> = {}
    for (const client of clients) {
      const ctx = makeContext({ client, geo: berlin, down: new Set(['home-1']), trace: false })
      const name = cappedStep.run(eps, ctx)[0]!.pool.name
      counts[name] = (counts[name] ?? 0) + 1
    }
    expect(Math.abs(counts.big! / clients.length - 0.4)).toBeLessThan(0.02)
    expect(Math.abs(counts.small! / clients.length - 0.6)).toBeLessThan(0.02)
  })

  it('keeps each client, and every host of its /24, on one pool', () => {
    for (const client of clients.slice(0, 500)) {
      const first = pick(client, 1)
      expect(pick(client, 2)).toBe(first)
      expect(pick(client.replace(/\.\d+$/, '.77'), 3)).toBe(first)
    }
  })

  it('moves no client whose pool stays up when another pool goes down', () => {
    const withoutSmall = new Set([...down, 'small-1'])
    for (const client of clients.slice(0, 2_000)) {
      if (pick(client) !== 'big') continue
      const ctx = makeContext({ client, geo: berlin, down: withoutSmall, trace: false })
      expect(step.run(spreadService.endpoints, ctx)[0]!.pool.name).toBe('big')
    }
  })

  it('reports the /24 it hashed as the ECS scope', () => {
    const ctx = makeContext({ client: '203.0.113.9', geo: berlin, down })
    const [first] = step.run(spreadService.endpoints, ctx)
    expect(ctx.scoped).toBe(24)
    const name = first!.pool.name
    expect(ctx.lines).toEqual([
      `geo: country DE -> home; rule pools down, spread by capacity to ${name} (${spreadService.of(name).length} up)`,
    ])
  })

  it('answers from the rule pool while it is up', () => {
    const ctx = makeContext({ client: '203.0.113.9', geo: berlin })
    expect(namesOf(step.run(spreadService.endpoints, ctx))).toEqual(['home-1', 'home-2'])
    expect(ctx.scoped).toBe(20)
  })
})

describe('makeStep for geo', () => {
  it('builds the geo step from its config, named after its kind', () => {
    const step = makeStep({ kind: 'geo', rules: [], fallback: [], spread: false })
    expect(step.name).toBe('geo')
    expect(step.run([], makeContext())).toEqual([])
  })
})
