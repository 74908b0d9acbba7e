import { describe, expect, it } from 'vitest'
import { type LatencyConfig, latencyStep } from '../../../src/policy/latency.ts'
import { makeStep } from '../../../src/policy/registry.ts'
import type { GeoInfo } from '../../../src/policy/types.ts'
import { runPolicyCases } from '../../conformance/policy.case.ts'
import { makeContext, makePools, namesOf } from '../../helpers/policy-context.ts'

runPolicyCases('latency', () =>
  latencyStep({
    kind: 'latency',
    countryVantages: new Map([['DE', 'eu-central']]),
    continentVantages: new Map([
      ['EU', 'eu-central'],
      ['NA', 'us-east'],
      ['AS', 'ap-southeast'],
    ]),
    defaultVantage: 'us-east',
    table: new Map([
      [
        'eu-central',
        new Map([
          ['eu', 15],
          ['us', 90],
        ]),
      ],
      ['us-east', new Map([['us', 12]])],
    ]),
    hysteresis: 0.2,
  }),
)

const service = makePools({ eu: { endpoints: 2 }, us: { endpoints: 2 }, asia: { endpoints: 1 } })

const config: LatencyConfig = {
  kind: 'latency',
  countryVantages: new Map([['GB', 'us-east']]),
  continentVantages: new Map([
    ['EU', 'eu-central'],
    ['NA', 'us-east'],
  ]),
  defaultVantage: 'ap-southeast',
  table: new Map([
    [
      'eu-central',
      new Map([
        ['eu', 20],
        ['us', 90],
        ['asia', 200],
      ]),
    ],
    [
      'us-east',
      new Map([
        ['us', 10],
        ['eu', 80],
      ]),
    ],
    [
      'ap-southeast',
      new Map([
        ['asia', 5],
        ['us', 150],
      ]),
    ],
  ]),
  hysteresis: 0.2,
}

const germany: GeoInfo = { country: 'DE', continent: 'EU', prefixLength: 19 }
const britain: GeoInfo = { country: 'GB', continent: 'EU', prefixLength: 21 }
const canada: GeoInfo = { country: 'CA', continent: 'NA', prefixLength: 15 }
const brazil: GeoInfo = { country: 'BR', continent: 'SA', prefixLength: 14 }

type Rtt = Map<string, Map<string, number>>
const measured = (vantage: string, figures: Record<string, number>): Rtt =>
  new Map([[vantage, new Map(Object.entries(figures))]])

describe('latency: choosing the fastest pool', () => {
  const cases: { name: string; geo?: GeoInfo; rtt?: Rtt; down?: string[]; expected: string; scope?: number }[] = [
    { name: 'uses the static table before any measurement', geo: germany, expected: 'eu', scope: 19 },
    { name: 'prefers a country vantage over its continent', geo: britain, expected: 'us', scope: 21 },
    { name: 'uses the continent vantage for an unmapped country', geo: canada, expected: 'us', scope: 15 },
    { name: 'uses the default vantage for an unmapped continent', geo: brazil, expected: 'asia', scope: 14 },
    { name: 'uses the default vantage when geo data is missing', expected: 'asia', scope: 32 },
    {
      name: 'prefers measurements over the table',
      geo: germany,
      rtt: measured('eu-central', { eu: 60, us: 30 }),
      expected: 'us',
    },
    {
      name: 'fills gaps in the measurements from the table',
      geo: germany,
      rtt: measured('eu-central', { us: 30 }),
      expected: 'eu',
    },
    { name: 'skips a down pool', geo: germany, down: ['eu-1', 'eu-2'], expected: 'us' },
    {
      name: 'ranks pools without any figure last',
      geo: canada,
      down: ['us-1', 'us-2', 'eu-1', 'eu-2'],
      expected: 'asia',
    },
  ]
  for (const { name, geo, rtt, down, expected, scope } of cases) {
    it(name, () => {
      const ctx = makeContext({ ...(geo ? { geo } : {}), ...(rtt ? { rtt } : {}), down: new Set(down ?? []) })
      const answer = latencyStep(config).run(service.endpoints, ctx)
      expect(namesOf(answer)).toEqual(
        service
          .of(expected)
          .map((e) => e.name)
          .filter((n) => !down?.includes(n)),
      )
      if (scope !== undefined) expect(ctx.scoped).toBe(scope)
    })
  }

  it('answers with the up endpoints of the chosen pool', () => {
    const ctx = makeContext({ geo: germany, down: new Set(['eu-1']) })
    expect(namesOf(latencyStep(config).run(service.endpoints, ctx))).toEqual(['eu-2'])
  })

  it('neither looks up geo data nor reports a scope without vantages', () => {
    const step = latencyStep({ ...config, countryVantages: new Map(), continentVantages: new Map() })
    const ctx = makeContext({ geo: germany })
    expect(namesOf(step.run(service.endpoints, ctx))).toEqual(['asia-1'])
    expect([ctx.geoCalls, ctx.scoped]).toEqual([0, undefined])
  })
})

describe('latency hysteresis', () => {
  /** One step, one German client, RTTs changed between decisions. */
  function session() {
    const step = latencyStep({ ...config, table: new Map() })
    const row = new Map<string, number>()
    const rtt: Rtt = new Map([['eu-central', row]])
    const down = new Set<string>()
    return {
      down,
      decide(figures: Record<string, number>): string {
        row.clear()
        for (const [pool, ms] of Object.entries(figures)) row.set(pool, ms)
        return step.run(service.endpoints, makeContext({ geo: germany, rtt, down }))[0]!.pool.name
      },
    }
  }

  const sequences: { name: string; steps: { rtt: Record<string, number>; down?: string[]; expected: string }[] }[] = [
    {
      name: 'keeps the current pool when a challenger is only slightly faster (100 vs 95 with 20%)',
      steps: [
        { rtt: { eu: 100, us: 120 }, expected: 'eu' },
        { rtt: { eu: 100, us: 95 }, expected: 'eu' },
        { rtt: { eu: 100, us: 81 }, expected: 'eu' },
      ],
    },
    {
      name: 'switches when a challenger is faster by more than the hysteresis, then holds the new one',
      steps: [
        { rtt: { eu: 100, us: 120 }, expected: 'eu' },
        { rtt: { eu: 100, us: 70 }, expected: 'us' },
        { rtt: { eu: 65, us: 70 }, expected: 'us' },
        { rtt: { eu: 50, us: 70 }, expected: 'eu' },
      ],
    },
    {
      name: 'switches at once when the current pool goes down, and does not switch back on a small margin',
      steps: [
        { rtt: { eu: 40, us: 120 }, expected: 'eu' },
        { rtt: { eu: 40, us: 120 }, down: ['eu-1', 'eu-2'], expected: 'us' },
        { rtt: { eu: 100, us: 110 }, expected: 'us' },
      ],
    },
    {
      name: 'switches when the current pool loses its figure',
      steps: [
        { rtt: { eu: 40, us: 45 }, expected: 'eu' },
        { rtt: { us: 45 }, expected: 'us' },
        { rtt: { eu: 40, us: 45 }, expected: 'us' },
      ],
    },
  ]
  for (const { name, steps } of sequences) {
    it(name, () => {
      const s = session()
      steps.forEach(({ rtt, down, expected }, i) => {
        s.down.clear()
        for (const n of down ?? []) s.down.add(n)
        expect(s.decide(rtt), `decision ${i + 1}`).toBe(expected)
      })
    })
  }

  it('keeps a separate current pool per vantage', () => {
    const step = latencyStep({ ...config, table: new Map() })
    const rtt: Rtt = new Map([
      [
        'eu-central',
        new Map([
          ['eu', 100],
          ['us', 120],
        ]),
      ],
      [
        'us-east',
        new Map([
          ['eu', 120],
          ['us', 100],
        ]),
      ],
    ])
    const pick = (geo: GeoInfo) => step.run(service.endpoints, makeContext({ geo, rtt }))[0]!.pool.name
    expect([pick(germany), pick(canada)]).toEqual(['eu', 'us'])
    rtt.get('eu-central')!.set('us', 95)
    rtt.get('us-east')!.set('eu', 95)
    expect([pick(germany), pick(canada)]).toEqual(['eu', 'us'])
  })

  it('answers from the fastest candidate without forgetting the current pool when a previous step removed it', () => {
    const step = latencyStep({ ...config, table: new Map() })
    const row = new Map([
      ['eu', 100],
      ['us', 120],
      ['asia', 200],
    ])
    const rtt: Rtt = new Map([['eu-central', row]])
    const run = (candidates: readonly string[]) =>
      step.run(
        candidates.map((n) => service.endpoint(n)),
        makeContext({ geo: germany, rtt }),
      )[0]!.pool.name
    expect(run(['eu-1', 'us-1', 'asia-1'])).toBe('eu')
    row.set('us', 95).set('asia', 90)
    expect(run(['us-1', 'asia-1'])).toBe('asia')
    expect(run(['eu-1', 'us-1', 'asia-1'])).toBe('eu')
  })

  it('explains keeping the current pool in the trace', () => {
    const step = latencyStep({ ...config, table: new Map() })
    const row = new Map([
      ['eu', 100],
      ['us', 120],
    ])
    const rtt: Rtt = new Map([['eu-central', row]])
    step.run(service.endpoints, makeContext({ geo: germany, rtt }))
    row.set('us', 95)
    const ctx = makeContext({ geo: germany, rtt })
    step.run(service.endpoints, ctx)
    expect(ctx.lines).toEqual([
      'latency: vantage eu-central; keeping eu (100 ms) over us (95 ms) within hysteresis, 2 up',
    ])
  })
})

describe('latency when pools are down', () => {
  it('counts a pool below its up threshold as down and uses it degraded when nothing else is up', () => {
    const strict = makePools({ fast: { endpoints: 3, upThreshold: 2 }, slow: { endpoints: 1 } })
    const step = latencyStep({
      ...config,
      table: new Map([
        [
          'eu-central',
          new Map([
            ['fast', 5],
            ['slow', 50],
          ]),
        ],
      ]),
    })
    const belowThreshold = makeContext({ geo: germany, down: new Set(['fast-1', 'fast-2']) })
    expect(namesOf(step.run(strict.endpoints, belowThreshold))).toEqual(['slow-1'])
    const degraded = makeContext({ geo: germany, down: new Set(['fast-1', 'fast-2', 'slow-1']) })
    expect(namesOf(step.run(strict.endpoints, degraded))).toEqual(['fast-3'])
  })

  it('passes on the fastest pool whole when nothing is up', () => {
    const ctx = makeContext({ geo: germany, down: new Set(service.endpoints.map((e) => e.name)) })
    expect(namesOf(latencyStep(config).run(service.endpoints, ctx))).toEqual(['eu-1', 'eu-2'])
  })
})

describe('makeStep for latency', () => {
  it('builds the latency step from its config, named after its kind', () => {
    const step = makeStep({
      kind: 'latency',
      countryVantages: new Map(),
      continentVantages: new Map(),
      defaultVantage: 'x',
      table: new Map(),
      hysteresis: 0.2,
    })
    expect(step.name).toBe('latency')
    expect(step.run([], makeContext())).toEqual([])
  })
})
