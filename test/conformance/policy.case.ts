/**
 * The invariants every policy step keeps, checked over many random candidate lists, health states,
 * weights, clients and geo answers (hono's common.case.test.ts pattern). Each step's own test file
 * calls `runPolicyCases`; vitest only collects `*.test.ts`, so this file never runs alone.
 *
 * Steps configured against pools must use `conformancePools`, the service every case draws its
 * candidates from.
 */

import { describe, expect, it } from 'vitest'
import { poolUp } from '../../src/policy/common.ts'
import type { Endpoint, GeoInfo, NamedStep } from '../../src/policy/types.ts'
import { type ContextOptions, makeContext, makePools, mulberry32, randomIPv4 } from '../helpers/policy-context.ts'

/** The service every conformance case draws candidates from. */
export const conformancePools = makePools({
  eu: { endpoints: 3, weight: [5, 1, 0], capacity: 3, location: { lat: 50.11, lon: 8.68 }, upThreshold: 2 },
  us: { endpoints: 2, weight: [1, 1], capacity: 2, location: { lat: 39.04, lon: -77.49 } },
  asia: { endpoints: 2, weight: [2, 0], capacity: 1, location: { lat: 1.35, lon: 103.82 } },
  sa: { endpoints: 1, weight: 1, capacity: 0 },
  oc: { endpoints: 2, weight: 0, capacity: 1, location: { lat: -33.87, lon: 151.21 }, upThreshold: 2 },
})

/** Country, continent and (for some) subdivision codes the random geo answers use. */
export const conformanceCountries: readonly { country: string; continent: string; subdivision?: string }[] = [
  { country: 'DE', continent: 'EU' },
  { country: 'FR', continent: 'EU' },
  { country: 'US', continent: 'NA', subdivision: 'US-CA' },
  { country: 'US', continent: 'NA', subdivision: 'US-NY' },
  { country: 'SG', continent: 'AS' },
  { country: 'BR', continent: 'SA' },
  { country: 'AU', continent: 'OC' },
  { country: 'ZA', continent: 'AF' },
]

/** ASNs the random geo answers use (some clients have none). */
export const conformanceAsns: readonly number[] = [64500, 64501, 64502]

/** Vantage regions the random RTT measurements use. */
export const conformanceVantages: readonly string[] = ['eu-central', 'us-east', 'ap-southeast']

export interface PolicyCaseOptions {
  /**
   * The step fails open below pool thresholds (failover returns a whole group when no pool is up):
   * DOWN members may be returned while some member is up, as long as no candidate pool is up.
   */
  readonly failOpen?: boolean
  /** Number of random decisions (default 600). */
  readonly cases?: number
}

interface Case {
  readonly candidates: readonly Endpoint[]
  readonly options: ContextOptions
}

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!
}

function randomGeo(random: () => number): GeoInfo | undefined {
  if (random() < 0.15) return undefined
  const place = pick(random, conformanceCountries)
  return {
    country: random() < 0.9 ? place.country : undefined,
    continent: random() < 0.95 ? place.continent : undefined,
    subdivision: place.subdivision,
    asn: random() < 0.3 ? pick(random, conformanceAsns) : undefined,
    location: random() < 0.85 ? { lat: random() * 170 - 85, lon: random() * 360 - 180 } : undefined,
    prefixLength: 8 + Math.floor(random() * 17),
  }
}

function randomCase(random: () => number): Case {
  const all = conformancePools.endpoints
  let candidates = all.filter(() => random() < 0.7)
  if (random() < 0.3) {
    candidates = [...candidates]
    for (let i = candidates.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1))
      ;[candidates[i], candidates[j]] = [candidates[j]!, candidates[i]!]
    }
  }
  const allDown = random() < 0.1
  const down = new Set(all.filter(() => allDown || random() < 0.35).map((e) => e.name))
  const weights = new Map<string, number>()
  for (const e of all) if (random() < 0.2) weights.set(e.name, Math.floor(random() * 11))
  const rtt = new Map<string, Map<string, number>>()
  for (const vantage of conformanceVantages) {
    const row = new Map<string, number>()
    for (const pool of conformancePools.pools) if (random() < 0.6) row.set(pool.name, 5 + Math.floor(random() * 300))
    rtt.set(vantage, row)
  }
  const v6 = random() < 0.3
  const client = v6
    ? `2001:db8:${Math.floor(random() * 0x10000).toString(16)}:${Math.floor(random() * 0x10000).toString(16)}::${Math.floor(random() * 0x10000).toString(16)}`
    : randomIPv4(random)
  const ecs = random() < 0.4
  const geo = randomGeo(random)
  const options: ContextOptions = {
    client,
    ...(ecs ? { ecsPrefix: v6 ? 32 + Math.floor(random() * 33) : 16 + Math.floor(random() * 17) } : {}),
    ...(geo === undefined ? {} : { geo }),
    down,
    weights,
    rtt,
    seed: Math.floor(random() * 2 ** 31),
  }
  return { candidates, options }
}

function makeCases(count: number, seed: number): Case[] {
  const random = mulberry32(seed)
  return Array.from({ length: count }, () => randomCase(random))
}

interface Decision {
  readonly output: readonly Endpoint[]
  readonly scoped: number | undefined
  readonly lines: readonly string[]
}

/** Runs every case, in order, through one fresh step instance (stateful steps see a history). */
function decide(make: () => NamedStep, cases: readonly Case[], trace: boolean): Decision[] {
  const step = make()
  return cases.map(({ candidates, options }) => {
    const ctx = makeContext({ ...options, trace })
    const output = step.run(candidates, ctx)
    return { output, scoped: ctx.scoped, lines: [...ctx.lines] }
  })
}

function anyPoolUp(c: Case): boolean {
  const health = makeContext(c.options).health
  return c.candidates.some((e) => poolUp(e.pool, c.candidates, health))
}

export function runPolicyCases(name: string, make: () => NamedStep, options: PolicyCaseOptions = {}): void {
  const cases = makeCases(options.cases ?? 600, 0x5eed)
  const isDown = (c: Case, e: Endpoint) => c.options.down?.has(e.name) === true

  describe(`${name} keeps the shared policy invariants`, () => {
    const traced = decide(make, cases, true)

    it('answers with a subset of its candidates and never repeats an endpoint', () => {
      traced.forEach((d, i) => {
        const candidates = new Set(cases[i]!.candidates)
        for (const e of d.output) expect(candidates.has(e), `case ${i}: ${e.name} is not a candidate`).toBe(true)
        expect(new Set(d.output).size, `case ${i}: duplicates`).toBe(d.output.length)
      })
    })

    it('never answers with nothing when it was given candidates', () => {
      traced.forEach((d, i) => {
        if (cases[i]!.candidates.length > 0) expect(d.output.length, `case ${i}`).toBeGreaterThan(0)
      })
    })

    it('never answers with a DOWN endpoint while an UP one was available to it', () => {
      let checked = 0
      traced.forEach((d, i) => {
        const c = cases[i]!
        const upAvailable = options.failOpen ? anyPoolUp(c) : c.candidates.some((e) => !isDown(c, e))
        if (!upAvailable) return
        checked++
        const downs = d.output.filter((e) => isDown(c, e)).map((e) => e.name)
        expect(downs, `case ${i}`).toEqual([])
      })
      expect(checked).toBeGreaterThan(cases.length / 2)
    })

    it('decides the same way twice from the same seeds', () => {
      const again = decide(make, cases, true)
      again.forEach((d, i) => {
        expect(
          d.output.map((e) => e.name),
          `case ${i}`,
        ).toEqual(traced[i]!.output.map((e) => e.name))
        expect(d.scoped, `case ${i}`).toBe(traced[i]!.scoped)
      })
    })

    it('decides the same way with tracing off, and explains every decision in one line when it is on', () => {
      const quiet = decide(make, cases, false)
      quiet.forEach((d, i) => {
        expect(
          d.output.map((e) => e.name),
          `case ${i}`,
        ).toEqual(traced[i]!.output.map((e) => e.name))
        expect(d.lines, `case ${i}`).toEqual([])
        const lines = traced[i]!.lines
        if (cases[i]!.candidates.length > 0) expect(lines, `case ${i}`).toHaveLength(1)
        expect(
          lines.every((line) => line.startsWith(`${make().name}: `)),
          `case ${i}`,
        ).toBe(true)
      })
    })

    it('reports ECS scopes within the address length', () => {
      traced.forEach((d, i) => {
        if (d.scoped === undefined) return
        const max = cases[i]!.options.client?.includes(':') ? 128 : 32
        expect(d.scoped, `case ${i}`).toBeGreaterThanOrEqual(0)
        expect(d.scoped, `case ${i}`).toBeLessThanOrEqual(max)
      })
    })

    it('returns an empty answer for no candidates without throwing', () => {
      const step = make()
      for (const seed of [1, 2, 3]) {
        expect(step.run([], makeContext({ seed }))).toEqual([])
        expect(step.run([], makeContext({ seed, trace: false }))).toEqual([])
      }
    })
  })
}
