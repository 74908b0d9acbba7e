import { describe, expect, it } from 'vitest'
import { haversineKm, proximityStep } from '../../../src/policy/proximity.ts'
import { makeStep } from '../../../src/policy/registry.ts'
import type { GeoInfo, GeoPoint } from '../../../src/policy/types.ts'
import { runPolicyCases } from '../../conformance/policy.case.ts'
import { makeContext, makePools, mulberry32, namesOf, randomIPv4 } from '../../helpers/policy-context.ts'

runPolicyCases('proximity (spread false)', () =>
  proximityStep({ kind: 'proximity', bias: new Map([['us', 30]]), spread: false }),
)
runPolicyCases('proximity (spread true)', () =>
  proximityStep({ kind: 'proximity', bias: new Map([['asia', -20]]), spread: true }),
)

const PARIS: GeoPoint = { lat: 48.86, lon: 2.35 }
const NEW_YORK: GeoPoint = { lat: 40.71, lon: -74.01 }
const TOKYO: GeoPoint = { lat: 35.68, lon: 139.69 }

const service = makePools({
  lon: { endpoints: 2, location: { lat: 51.51, lon: -0.13 }, capacity: 1 },
  fra: { endpoints: 2, location: { lat: 50.11, lon: 8.68 }, capacity: 1 },
  iad: { endpoints: 2, location: { lat: 39.04, lon: -77.49 }, capacity: 3 },
  sin: { endpoints: 1, location: { lat: 1.35, lon: 103.82 }, capacity: 1 },
  nowhere: { endpoints: 1 },
})

const at = (location: GeoPoint, prefixLength = 20): GeoInfo => ({ country: 'XX', location, prefixLength })

describe('haversineKm', () => {
  const distances: { name: string; a: GeoPoint; b: GeoPoint; km: number }[] = [
    { name: 'Paris to London', a: PARIS, b: { lat: 51.51, lon: -0.13 }, km: 344 },
    { name: 'New York to Tokyo', a: NEW_YORK, b: TOKYO, km: 10_850 },
    { name: 'a point to itself', a: PARIS, b: PARIS, km: 0 },
  ]
  for (const { name, a, b, km } of distances) {
    it(`measures ${name} as about ${km} km`, () => {
      expect(Math.abs(haversineKm(a, b) - km)).toBeLessThan(km * 0.01 + 1)
    })
  }
})

describe('proximity', () => {
  const cases: { name: string; from: GeoPoint; bias?: [string, number][]; down?: string[]; expected: string }[] = [
    { name: 'answers a Paris client from London, the nearest pool', from: PARIS, expected: 'lon' },
    { name: 'answers a New York client from Ashburn', from: NEW_YORK, expected: 'iad' },
    { name: 'answers a Tokyo client from Singapore', from: TOKYO, expected: 'sin' },
    { name: 'lets a positive bias draw a client to a farther pool', from: PARIS, bias: [['fra', 40]], expected: 'fra' },
    {
      name: 'lets a negative bias push a client away from the nearest pool',
      from: PARIS,
      bias: [['lon', -50]],
      expected: 'fra',
    },
    {
      name: 'keeps the nearest pool when a bias is too small to matter',
      from: PARIS,
      bias: [['fra', 10]],
      expected: 'lon',
    },
    { name: 'clamps a bias beyond 99', from: PARIS, bias: [['iad', 500]], expected: 'iad' },
    {
      name: 'answers from the next nearest when the nearest is down',
      from: PARIS,
      down: ['lon-1', 'lon-2'],
      expected: 'fra',
    },
    {
      name: 'ranks pools without a location last',
      from: PARIS,
      down: ['lon-1', 'lon-2', 'fra-1', 'fra-2', 'iad-1', 'iad-2', 'sin-1'],
      expected: 'nowhere',
    },
  ]
  for (const { name, from, bias, down, expected } of cases) {
    it(name, () => {
      const step = proximityStep({ kind: 'proximity', bias: new Map(bias ?? []), spread: false })
      const ctx = makeContext({ geo: at(from), down: new Set(down ?? []) })
      const answer = step.run(service.endpoints, ctx)
      expect(new Set(answer.map((e) => e.pool.name))).toEqual(new Set([expected]))
      expect(ctx.scoped).toBe(20)
    })
  }

  it('answers with the up endpoints of the nearest pool only', () => {
    const step = proximityStep({ kind: 'proximity', bias: new Map(), spread: false })
    const ctx = makeContext({ geo: at(PARIS), down: new Set(['lon-2']) })
    expect(namesOf(step.run(service.endpoints, ctx))).toEqual(['lon-1'])
  })

  it('takes pools in candidate order when the client location is unknown', () => {
    const step = proximityStep({ kind: 'proximity', bias: new Map(), spread: true })
    const reversed = [...service.endpoints].reverse()
    const noLocation = makeContext({ geo: { country: 'XX', prefixLength: 12 } })
    expect(namesOf(step.run(reversed, noLocation))).toEqual(['nowhere-1'])
    expect(noLocation.scoped).toBe(12)
    const unknown = makeContext({ down: new Set(['nowhere-1']) })
    expect(namesOf(step.run(reversed, unknown))).toEqual(['sin-1'])
    expect(unknown.scoped).toBe(32)
  })

  it('spreads clients of a down nearest pool over the up pools by capacity when spread is on', () => {
    const step = proximityStep({ kind: 'proximity', bias: new Map(), spread: true })
    const down = new Set(['lon-1', 'lon-2'])
    const random = mulberry32(3)
    const counts: Record<string, number> = {}
    const clients = Array.from({ length: 6_000 }, () => randomIPv4(random))
    for (const client of clients) {
      const ctx = makeContext({ client, geo: at(PARIS), down, trace: false })
      const answer = step.run(service.endpoints, ctx)
      const name = answer[0]!.pool.name
      counts[name] = (counts[name] ?? 0) + 1
      expect(ctx.scoped).toBe(24)
      const again = step.run(service.endpoints, makeContext({ client, geo: at(PARIS), down, seed: 9, trace: false }))
      expect(again[0]!.pool.name).toBe(name)
    }
    // Capacities of the up pools: fra 1, iad 3, sin 1, nowhere 1 (default).
    const expected: Record<string, number> = { fra: 1 / 6, iad: 3 / 6, sin: 1 / 6, nowhere: 1 / 6 }
    for (const [name, share] of Object.entries(expected)) {
      expect(Math.abs((counts[name] ?? 0) / clients.length - share)).toBeLessThan(0.025)
    }
  })

  it('counts a pool below its up threshold as down', () => {
    const strict = makePools({
      near: { endpoints: 3, location: { lat: 48, lon: 2 }, upThreshold: 2 },
      far: { endpoints: 1, location: { lat: 0, lon: 0 } },
    })
    const step = proximityStep({ kind: 'proximity', bias: new Map(), spread: false })
    const ctx = makeContext({ geo: at(PARIS), down: new Set(['near-1', 'near-2']) })
    expect(namesOf(step.run(strict.endpoints, ctx))).toEqual(['far-1'])
    const degraded = makeContext({ geo: at(PARIS), down: new Set(['near-1', 'near-2', 'far-1']) })
    expect(namesOf(step.run(strict.endpoints, degraded))).toEqual(['near-3'])
  })

  it('passes on the nearest pool whole when nothing is up', () => {
    const step = proximityStep({ kind: 'proximity', bias: new Map(), spread: false })
    const ctx = makeContext({ geo: at(NEW_YORK), down: new Set(service.endpoints.map((e) => e.name)) })
    expect(namesOf(step.run(service.endpoints, ctx))).toEqual(['iad-1', 'iad-2'])
  })
})

describe('makeStep for proximity', () => {
  it('builds the proximity step from its config, named after its kind', () => {
    const step = makeStep({ kind: 'proximity', bias: new Map(), spread: false })
    expect(step.name).toBe('proximity')
    expect(step.run([], makeContext())).toEqual([])
  })
})
