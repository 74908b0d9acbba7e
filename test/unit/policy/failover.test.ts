import { describe, expect, it } from 'vitest'
import { failoverStep } from '../../../src/policy/failover.ts'
import { makeStep } from '../../../src/policy/registry.ts'
import { conformancePools, runPolicyCases } from '../../conformance/policy.case.ts'
import { makeContext, makePools, namesOf } from '../../helpers/policy-context.ts'

runPolicyCases(
  'failover',
  () => {
    const p = conformancePools.pool
    return failoverStep({ kind: 'failover', groups: [[p('eu')], [p('us'), p('asia')]] })
  },
  { failOpen: true },
)

const service = makePools({
  primary: { endpoints: 2, upThreshold: 2 },
  secondary: { endpoints: 2 },
  tertiary: { endpoints: 1 },
  stray: { endpoints: 1 },
})
const step = () =>
  failoverStep({
    kind: 'failover',
    groups: [[service.pool('primary')], [service.pool('secondary'), service.pool('tertiary')]],
  })

describe('failover between groups of pools', () => {
  const cases: { name: string; candidates?: string[]; down: string[]; expected: string[] }[] = [
    { name: 'answers from the first group while its pool is up', down: [], expected: ['primary-1', 'primary-2'] },
    {
      name: 'moves to the next group when the first pool falls below its up threshold',
      down: ['primary-1'],
      expected: ['secondary-1', 'secondary-2', 'tertiary-1'],
    },
    {
      name: 'answers with the up endpoints of every up pool in the group',
      down: ['primary-2', 'secondary-1'],
      expected: ['secondary-2', 'tertiary-1'],
    },
    {
      name: 'uses pools no group lists as a last group',
      down: ['primary-1', 'secondary-1', 'secondary-2', 'tertiary-1'],
      expected: ['stray-1'],
    },
    {
      name: 'skips groups with no candidates',
      candidates: ['secondary-1', 'stray-1'],
      down: [],
      expected: ['secondary-1'],
    },
    {
      name: 'fails open with every candidate of the first group when no pool is up',
      down: ['primary-1', 'secondary-1', 'secondary-2', 'tertiary-1', 'stray-1'],
      expected: ['primary-1', 'primary-2'],
    },
    {
      name: 'fails open with the first group that has candidates when the earlier ones have none',
      candidates: ['tertiary-1', 'stray-1'],
      down: ['tertiary-1', 'stray-1'],
      expected: ['tertiary-1'],
    },
  ]
  for (const { name, candidates, down, expected } of cases) {
    it(name, () => {
      const list = candidates ? candidates.map((n) => service.endpoint(n)) : service.endpoints
      const ctx = makeContext({ down: new Set(down) })
      expect(namesOf(step().run(list, ctx))).toEqual(expected)
      expect(ctx.lines).toHaveLength(1)
    })
  }

  it('keeps candidate order within the answering group', () => {
    const list = ['tertiary-1', 'secondary-2', 'primary-1', 'secondary-1'].map((n) => service.endpoint(n))
    const ctx = makeContext({ down: new Set(['primary-1']) })
    expect(namesOf(step().run(list, ctx))).toEqual(['tertiary-1', 'secondary-2', 'secondary-1'])
  })

  it('treats a pool listed in two groups as part of the first', () => {
    const p = service.pool
    const twice = failoverStep({ kind: 'failover', groups: [[p('secondary')], [p('primary'), p('secondary')]] })
    expect(namesOf(twice.run(service.endpoints, makeContext()))).toEqual(['secondary-1', 'secondary-2'])
  })

  it('says which group answered in the trace', () => {
    const ctx = makeContext({ down: new Set(['primary-1']) })
    step().run(service.endpoints, ctx)
    expect(ctx.lines).toEqual(['failover: group 2 (secondary,tertiary) is up; 3 up endpoints'])
  })
})

describe('makeStep for failover', () => {
  it('builds the failover step from its config, named after its kind', () => {
    const step = makeStep({ kind: 'failover', groups: [] })
    expect(step.name).toBe('failover')
    expect(step.run([], makeContext())).toEqual([])
  })
})
