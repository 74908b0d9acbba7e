import { describe, expect, it } from 'vitest'
import { makeStep } from '../../../src/policy/registry.ts'
import { stickyStep } from '../../../src/policy/sticky.ts'
import type { Endpoint } from '../../../src/policy/types.ts'
import { runPolicyCases } from '../../conformance/policy.case.ts'
import { type ContextOptions, makeContext, makePools, mulberry32, randomIPv4 } from '../../helpers/policy-context.ts'

runPolicyCases('sticky', () => stickyStep({ kind: 'sticky', prefix4: 24, prefix6: 56 }))

const step = stickyStep({ kind: 'sticky', prefix4: 24, prefix6: 56 })

function answer(candidates: readonly Endpoint[], options: ContextOptions): Endpoint {
  const result = step.run(candidates, makeContext({ trace: false, ...options }))
  expect(result).toHaveLength(1)
  return result[0]!
}

/** `count` distinct random IPv4 /24 subnets, as a host address inside each. */
function randomSubnets(count: number, seed: number): string[] {
  const random = mulberry32(seed)
  const seen = new Set<string>()
  while (seen.size < count) seen.add(randomIPv4(random).replace(/\.\d+$/, '.1'))
  return [...seen]
}

describe('sticky by client subnet', () => {
  const { endpoints } = makePools({ web: { endpoints: 5 } })

  const sameSubnet: { name: string; clients: string[]; ecsPrefix?: number }[] = [
    { name: 'hosts of one IPv4 /24', clients: ['198.51.100.7', '198.51.100.200', '198.51.100.0'] },
    { name: 'hosts of one IPv6 /56', clients: ['2001:db8:1:2300::1', '2001:db8:1:23ff:ffff::9'] },
    {
      name: 'ECS clients of one /20 when the source prefix is 20',
      clients: ['203.0.113.5', '203.0.127.250'],
      ecsPrefix: 20,
    },
  ]
  for (const { name, clients, ecsPrefix } of sameSubnet) {
    it(`answers ${name} with the same endpoint, every time`, () => {
      const options = ecsPrefix === undefined ? {} : { ecsPrefix }
      const first = answer(endpoints, { client: clients[0]!, ...options })
      for (const client of clients) {
        for (let seed = 1; seed <= 5; seed++) expect(answer(endpoints, { client, seed, ...options })).toBe(first)
      }
    })
  }

  const scopes: { name: string; client: string; ecsPrefix?: number; scope: number }[] = [
    { name: 'the configured IPv4 prefix', client: '198.51.100.7', scope: 24 },
    { name: 'the ECS source prefix when it is shorter', client: '198.51.100.7', ecsPrefix: 16, scope: 16 },
    { name: 'the configured prefix when the ECS source is longer', client: '198.51.100.7', ecsPrefix: 28, scope: 24 },
    { name: 'the configured IPv6 prefix', client: '2001:db8::1', scope: 56 },
    { name: 'a short IPv6 ECS source prefix', client: '2001:db8::', ecsPrefix: 48, scope: 48 },
  ]
  for (const { name, client, ecsPrefix, scope } of scopes) {
    it(`reports ${name} as the ECS scope`, () => {
      const ctx = makeContext({ client, ...(ecsPrefix === undefined ? {} : { ecsPrefix }) })
      step.run(endpoints, ctx)
      expect(ctx.scoped).toBe(scope)
    })
  }

  it('spreads different subnets over endpoints roughly by weight', () => {
    const { endpoints: weighted } = makePools({ web: { weight: [1, 2, 3, 4] } })
    const counts = [0, 0, 0, 0]
    const subnets = randomSubnets(20_000, 11)
    for (const client of subnets) counts[answer(weighted, { client }).index]!++
    counts.forEach((n, i) => {
      expect(Math.abs(n / subnets.length - (i + 1) / 10)).toBeLessThan(0.015)
    })
  })

  it('moves only the subnets of an endpoint that goes down (about 1 in 10) and brings them back', () => {
    const { endpoints: ten } = makePools({ web: { endpoints: 10 } })
    const subnets = randomSubnets(10_000, 12)
    const before = subnets.map((client) => answer(ten, { client }))
    const down = new Set(['web-4'])
    const after = subnets.map((client) => answer(ten, { client, down }))
    let moved = 0
    before.forEach((e, i) => {
      if (after[i] === e) return
      moved++
      expect(e.name).toBe('web-4')
    })
    expect(moved / subnets.length).toBeGreaterThanOrEqual(0.07)
    expect(moved / subnets.length).toBeLessThanOrEqual(0.13)
    expect(after.some((e) => e.name === 'web-4')).toBe(false)
    const back = subnets.map((client) => answer(ten, { client }))
    expect(back).toEqual(before)
  })

  it('keeps the mapping when the candidate list is reordered', () => {
    const { endpoints: web } = makePools({ web: { endpoints: 6 } })
    for (const client of randomSubnets(200, 13)) {
      expect(answer([...web].reverse(), { client })).toBe(answer(web, { client }))
    }
  })

  it('never picks a weight-0 endpoint while one with weight is up', () => {
    const { endpoints: mixed } = makePools({ web: { weight: [0, 1, 0] } })
    for (const client of randomSubnets(500, 14)) expect(answer(mixed, { client }).name).toBe('web-2')
    const all = new Set(
      randomSubnets(500, 15).map((client) => answer(mixed, { client, down: new Set(['web-2']) }).name),
    )
    expect([...all].sort()).toEqual(['web-1', 'web-3'])
  })

  it('passes all candidates on without reporting a scope when none is up', () => {
    const ctx = makeContext({ down: new Set(endpoints.map((e) => e.name)) })
    expect(step.run(endpoints, ctx)).toBe(endpoints)
    expect(ctx.scoped).toBeUndefined()
  })

  it('names the subnet and the winner in the trace', () => {
    const ctx = makeContext({ client: '198.51.100.7' })
    const [chosen] = step.run(endpoints, ctx)
    expect(ctx.lines).toEqual([`sticky: 198.51.100.7/24 hashes to ${chosen!.name} among 5 up`])
  })
})

describe('makeStep for sticky', () => {
  it('builds the sticky step from its config, named after its kind', () => {
    const step = makeStep({ kind: 'sticky', prefix4: 24, prefix6: 56 })
    expect(step.name).toBe('sticky')
    expect(step.run([], makeContext())).toEqual([])
  })
})
