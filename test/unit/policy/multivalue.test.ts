import { describe, expect, it } from 'vitest'
import { multivalueStep } from '../../../src/policy/multivalue.ts'
import { makeStep } from '../../../src/policy/registry.ts'
import { runPolicyCases } from '../../conformance/policy.case.ts'
import { CHI2_CRITICAL_P001, chiSquare, makeContext, makePools, namesOf } from '../../helpers/policy-context.ts'

runPolicyCases('multivalue shuffled', () => multivalueStep({ kind: 'multivalue', count: 3, shuffle: true }))
runPolicyCases('multivalue first N', () => multivalueStep({ kind: 'multivalue', count: 2, shuffle: false }))

const { endpoints } = makePools({ web: { endpoints: 10 } })

describe('multivalue first N', () => {
  const cases: { name: string; count: number; down: string[]; expected: string[] }[] = [
    {
      name: 'answers with the first count up endpoints in candidate order',
      count: 3,
      down: [],
      expected: ['web-1', 'web-2', 'web-3'],
    },
    { name: 'skips down endpoints', count: 3, down: ['web-1', 'web-3'], expected: ['web-2', 'web-4', 'web-5'] },
    {
      name: 'answers with every up endpoint when fewer than count are up',
      count: 8,
      down: ['web-1', 'web-2', 'web-3', 'web-4', 'web-5', 'web-6', 'web-7'],
      expected: ['web-8', 'web-9', 'web-10'],
    },
    { name: 'reads a count below 1 as 1', count: 0, down: [], expected: ['web-1'] },
  ]
  for (const { name, count, down, expected } of cases) {
    it(name, () => {
      const step = multivalueStep({ kind: 'multivalue', count, shuffle: false })
      expect(namesOf(step.run(endpoints, makeContext({ down: new Set(down) })))).toEqual(expected)
    })
  }

  it('passes all candidates on when none is up', () => {
    const step = multivalueStep({ kind: 'multivalue', count: 2, shuffle: false })
    const few = endpoints.slice(0, 3)
    expect(step.run(few, makeContext({ down: new Set(['web-1', 'web-2', 'web-3']) }))).toBe(few)
  })
})

describe('multivalue shuffled', () => {
  const step = multivalueStep({ kind: 'multivalue', count: 8, shuffle: true })

  it('answers with count distinct up endpoints (the Route 53 default of 8)', () => {
    for (let seed = 1; seed <= 100; seed++) {
      const answer = step.run(endpoints, makeContext({ seed, down: new Set(['web-4']) }))
      expect(answer).toHaveLength(8)
      expect(new Set(answer).size).toBe(8)
      expect(namesOf(answer)).not.toContain('web-4')
    }
  })

  it('answers with every up endpoint, reordered, when fewer than count are up', () => {
    const few = endpoints.slice(0, 4)
    const orders = new Set<string>()
    for (let seed = 1; seed <= 200; seed++) {
      const answer = namesOf(step.run(few, makeContext({ seed })))
      expect([...answer].sort()).toEqual(['web-1', 'web-2', 'web-3', 'web-4'])
      orders.add(answer.join(','))
    }
    expect(orders.size).toBe(24)
  })

  it('puts every endpoint first equally often and includes each in the subset equally often', () => {
    const three = multivalueStep({ kind: 'multivalue', count: 3, shuffle: true })
    const first = new Array<number>(10).fill(0)
    const included = new Array<number>(10).fill(0)
    const ctx = makeContext({ seed: 9, trace: false })
    for (let i = 0; i < 50_000; i++) {
      const answer = three.run(endpoints, ctx)
      first[answer[0]!.index]!++
      for (const e of answer) included[e.index]!++
    }
    const even = new Array<number>(10).fill(1)
    expect(chiSquare(first, even)).toBeLessThan(CHI2_CRITICAL_P001[9]!)
    expect(chiSquare(included, even)).toBeLessThan(CHI2_CRITICAL_P001[9]!)
  })
})

describe('makeStep for multivalue', () => {
  it('builds the multivalue step from its config, named after its kind', () => {
    const step = makeStep({ kind: 'multivalue', count: 8, shuffle: true })
    expect(step.name).toBe('multivalue')
    expect(step.run([], makeContext())).toEqual([])
  })
})
