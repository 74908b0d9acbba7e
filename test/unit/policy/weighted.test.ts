import { describe, expect, it } from 'vitest'
import { makeStep } from '../../../src/policy/registry.ts'
import type { Endpoint, NamedStep } from '../../../src/policy/types.ts'
import { weightedStep } from '../../../src/policy/weighted.ts'
import { runPolicyCases } from '../../conformance/policy.case.ts'
import {
  CHI2_CRITICAL_P001,
  type ContextOptions,
  chiSquare,
  makeContext,
  makePools,
  namesOf,
} from '../../helpers/policy-context.ts'

runPolicyCases('weighted random by endpoint', () => weightedStep({ kind: 'weighted', mode: 'random', by: 'endpoint' }))
runPolicyCases('weighted random by pool', () => weightedStep({ kind: 'weighted', mode: 'random', by: 'pool' }))
runPolicyCases('weighted smooth by endpoint', () => weightedStep({ kind: 'weighted', mode: 'smooth', by: 'endpoint' }))
runPolicyCases('weighted smooth by pool', () => weightedStep({ kind: 'weighted', mode: 'smooth', by: 'pool' }))

const random = () => weightedStep({ kind: 'weighted', mode: 'random', by: 'endpoint' })
const randomPool = () => weightedStep({ kind: 'weighted', mode: 'random', by: 'pool' })
const smooth = () => weightedStep({ kind: 'weighted', mode: 'smooth', by: 'endpoint' })
const smoothPool = () => weightedStep({ kind: 'weighted', mode: 'smooth', by: 'pool' })

/** Runs `rounds` decisions through one step and one context, counting answers by joined names. */
function tally(
  step: NamedStep,
  candidates: readonly Endpoint[],
  rounds: number,
  options: ContextOptions = {},
): Map<string, number> {
  const ctx = makeContext({ seed: 42, trace: false, ...options })
  const counts = new Map<string, number>()
  for (let i = 0; i < rounds; i++) {
    const key = namesOf(step.run(candidates, ctx)).join(',')
    counts.set(key, (counts.get(key) ?? 0) + 1)
  }
  return counts
}

describe('weighted random by endpoint', () => {
  it('picks exactly one endpoint per decision', () => {
    const { endpoints } = makePools({ web: { weight: [1, 2, 3] } })
    for (let seed = 1; seed <= 50; seed++) expect(random().run(endpoints, makeContext({ seed }))).toHaveLength(1)
  })

  const distributions: { name: string; weights: number[]; overrides?: Map<string, number> }[] = [
    { name: 'configured weights 1:2:3:4', weights: [1, 2, 3, 4] },
    { name: 'a 1:10 skew', weights: [1, 10] },
    {
      name: 'effective weights from health overriding the configured ones',
      weights: [1, 1, 1],
      overrides: new Map([
        ['web-1', 6],
        ['web-3', 2],
      ]),
    },
  ]
  for (const { name, weights, overrides } of distributions) {
    it(`follows ${name} over 100k decisions (chi-square, p = 0.001)`, () => {
      const { endpoints } = makePools({ web: { weight: weights } })
      const counts = tally(random(), endpoints, 100_000, overrides ? { weights: overrides } : {})
      const observed = endpoints.map((e) => counts.get(e.name) ?? 0)
      const expected = endpoints.map((e) => overrides?.get(e.name) ?? e.weight)
      expect(chiSquare(observed, expected)).toBeLessThan(CHI2_CRITICAL_P001[endpoints.length - 1]!)
    })
  }

  const zeroCases: { name: string; weights: number[]; down: string[]; allowed: string[] }[] = [
    { name: 'others are up', weights: [0, 1, 2], down: [], allowed: ['web-2', 'web-3'] },
    { name: 'only one other is up', weights: [0, 1, 2], down: ['web-2'], allowed: ['web-3'] },
    { name: 'a weight-0 endpoint is the first candidate', weights: [0, 0, 5], down: [], allowed: ['web-3'] },
  ]
  for (const { name, weights, down, allowed } of zeroCases) {
    it(`never picks a weight-0 endpoint while ${name}`, () => {
      const { endpoints } = makePools({ web: { weight: weights } })
      const counts = tally(random(), endpoints, 10_000, { down: new Set(down) })
      expect([...counts.keys()].sort()).toEqual(allowed)
    })
  }

  it('falls back to weight-0 endpoints, alike, when every endpoint with weight is down', () => {
    const { endpoints } = makePools({ web: { weight: [0, 0, 3] } })
    const counts = tally(random(), endpoints, 10_000, { down: new Set(['web-3']) })
    expect([...counts.keys()].sort()).toEqual(['web-1', 'web-2'])
    expect(chiSquare([counts.get('web-1')!, counts.get('web-2')!], [1, 1])).toBeLessThan(CHI2_CRITICAL_P001[1]!)
  })

  it('treats a drained endpoint (effective weight 0) like weight 0', () => {
    const { endpoints } = makePools({ web: { weight: [5, 5] } })
    const counts = tally(random(), endpoints, 5_000, { weights: new Map([['web-1', 0]]) })
    expect([...counts.keys()]).toEqual(['web-2'])
  })

  it('passes all candidates on when none is up', () => {
    const { endpoints } = makePools({ web: { weight: [1, 2] } })
    const ctx = makeContext({ down: new Set(['web-1', 'web-2']) })
    expect(random().run(endpoints, ctx)).toBe(endpoints)
    expect(ctx.lines.join('\n')).toMatch(/no candidate up/)
  })

  it('explains its pick in the trace', () => {
    const { endpoints } = makePools({ web: { weight: [1, 3] } })
    const ctx = makeContext({ seed: 7 })
    const [chosen] = random().run(endpoints, ctx)
    expect(ctx.lines).toEqual([`weighted: picked ${chosen!.name} (weight ${chosen!.weight} of 4)`])
  })
})

describe('weighted random by pool', () => {
  const service = makePools({
    a: { endpoints: 2, weight: [1, 1] },
    b: { endpoints: 1, weight: 3 },
    c: { endpoints: 3, weight: [2, 3, 0] },
  })

  it('picks pools in proportion to their up weight over 100k decisions (chi-square, p = 0.001)', () => {
    const counts = tally(randomPool(), service.endpoints, 100_000)
    const observed = [counts.get('a-1,a-2') ?? 0, counts.get('b-1') ?? 0, counts.get('c-1,c-2') ?? 0]
    expect(observed.reduce((x, y) => x + y)).toBe(100_000)
    expect(chiSquare(observed, [2, 3, 5])).toBeLessThan(CHI2_CRITICAL_P001[2]!)
  })

  it('counts only up endpoints toward a pool and answers with its up endpoints only', () => {
    const counts = tally(randomPool(), service.endpoints, 100_000, { down: new Set(['c-2']) })
    const observed = [counts.get('a-1,a-2') ?? 0, counts.get('b-1') ?? 0, counts.get('c-1') ?? 0]
    expect(observed.reduce((x, y) => x + y)).toBe(100_000)
    expect(chiSquare(observed, [2, 3, 2])).toBeLessThan(CHI2_CRITICAL_P001[2]!)
  })

  it('never picks a pool whose up endpoints all have weight 0 while another pool has weight', () => {
    const { endpoints } = makePools({ zero: { endpoints: 2, weight: 0 }, one: { weight: 1 } })
    expect([...tally(randomPool(), endpoints, 5_000).keys()]).toEqual(['one-1'])
  })
})

describe('weighted smooth round-robin', () => {
  const sequences: { name: string; weights: Record<string, number>; rounds: number; expected: string }[] = [
    {
      name: 'weights 5,1,1 give a a b a c a a, repeating',
      weights: { a: 5, b: 1, c: 1 },
      rounds: 14,
      expected: 'aabacaaaabacaa',
    },
    { name: 'equal weights rotate in candidate order', weights: { a: 1, b: 1, c: 1 }, rounds: 6, expected: 'abcabc' },
    { name: 'weights 3,2 interleave', weights: { a: 3, b: 2 }, rounds: 10, expected: 'ababaababa' },
  ]
  for (const { name, weights, rounds, expected } of sequences) {
    it(name, () => {
      const spec = Object.fromEntries(Object.entries(weights).map(([pool, weight]) => [pool, { weight }]))
      const { endpoints } = makePools(spec)
      const step = smooth()
      const ctx = makeContext({ trace: false })
      let seen = ''
      for (let i = 0; i < rounds; i++) seen += step.run(endpoints, ctx)[0]!.pool.name
      expect(seen).toBe(expected)
    })
  }

  it('keeps each step instance on its own sequence', () => {
    const { endpoints } = makePools({ a: { weight: 5 }, b: { weight: 1 }, c: { weight: 1 } })
    const first = smooth()
    const second = smooth()
    const ctx = makeContext()
    expect(namesOf(first.run(endpoints, ctx))).toEqual(['a-1'])
    expect(namesOf(first.run(endpoints, ctx))).toEqual(['a-1'])
    expect(namesOf(first.run(endpoints, ctx))).toEqual(['b-1'])
    expect(namesOf(second.run(endpoints, ctx))).toEqual(['a-1'])
  })

  it('keeps the ratio of the others while one is down and takes it back when it returns', () => {
    const { endpoints } = makePools({ a: { weight: 5 }, b: { weight: 1 }, c: { weight: 1 } })
    const step = smooth()
    const down = new Set<string>()
    const ctx = makeContext({ down, trace: false })
    const count = (rounds: number) => {
      const counts: Record<string, number> = { a: 0, b: 0, c: 0 }
      for (let i = 0; i < rounds; i++) counts[step.run(endpoints, ctx)[0]!.pool.name]!++
      return counts
    }
    count(3)
    down.add('c-1')
    const without = count(60)
    expect(without.c).toBe(0)
    expect(Math.abs(without.a! - 50)).toBeLessThanOrEqual(1)
    expect(Math.abs(without.b! - 10)).toBeLessThanOrEqual(1)
    down.delete('c-1')
    const back = count(70)
    expect(Math.abs(back.a! - 50)).toBeLessThanOrEqual(1)
    expect(Math.abs(back.b! - 10)).toBeLessThanOrEqual(1)
    expect(Math.abs(back.c! - 10)).toBeLessThanOrEqual(1)
  })

  it('balances disjoint candidate sets independently', () => {
    const { of } = makePools({ a: { weight: 2 }, b: { weight: 1 }, x: { weight: 1 }, y: { weight: 1 } })
    const step = smooth()
    const ctx = makeContext({ trace: false })
    let left = ''
    let right = ''
    for (let i = 0; i < 6; i++) {
      left += step.run(of('a', 'b'), ctx)[0]!.pool.name
      right += step.run(of('x', 'y'), ctx)[0]!.pool.name
    }
    expect(left).toBe('abaaba')
    expect(right).toBe('xyxyxy')
  })

  it('by pool, rotates pools by their summed up weight and answers with all their weighted up endpoints', () => {
    const { endpoints } = makePools({ a: { endpoints: 2, weight: [1, 1] }, b: { endpoints: 2, weight: [1, 0] } })
    const step = smoothPool()
    const ctx = makeContext({ trace: false })
    const seen = Array.from({ length: 6 }, () => namesOf(step.run(endpoints, ctx)).join(','))
    expect(seen).toEqual(['a-1,a-2', 'b-1', 'a-1,a-2', 'a-1,a-2', 'b-1', 'a-1,a-2'])
  })
})

describe('makeStep for weighted', () => {
  it('builds the weighted step from its config, named after its kind', () => {
    const step = makeStep({ kind: 'weighted', mode: 'smooth', by: 'endpoint' })
    expect(step.name).toBe('weighted')
    expect(step.run([], makeContext())).toEqual([])
  })
})
