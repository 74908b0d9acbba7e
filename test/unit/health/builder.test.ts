import { describe, expect, it } from 'vitest'
import { buildSnapshot, type Quorum } from '../../../src/health/builder.ts'
import type { HealthSnapshot } from '../../../src/health/state.ts'
import type { Override, ProbeStatus, PushedState, StateData } from '../../../src/state/types.ts'
import { makePools } from '../../helpers/policy-context.ts'

const NOW = 1_000_000
const pools = makePools({ eu: { endpoints: 2 }, us: { endpoints: 1 } })
const zones = [{ zone: 'example.com', pools: pools.pools }]
const eu1 = pools.endpoint('eu-1')
const eu2 = pools.endpoint('eu-2')

function report(up: boolean, extra: Partial<ProbeStatus> = {}): ProbeStatus {
  return {
    up,
    since: NOW - 60_000,
    rttMs: 10,
    lastRttMs: 10,
    error: up ? undefined : 'timeout',
    load: undefined,
    at: NOW - 100,
    expiresAt: NOW + 10_000,
    prober: 'p',
    ...extra,
  }
}

function data(parts: {
  probes?: Record<string, Record<string, ProbeStatus>>
  overrides?: Record<string, Override>
  pushed?: Record<string, PushedState>
}): StateData {
  const toMap = <T>(o: Record<string, T> | undefined) => new Map(Object.entries(o ?? {}))
  return {
    probes: new Map(Object.entries(parts.probes ?? {}).map(([v, r]) => [v, toMap(r)])),
    overrides: toMap(parts.overrides),
    pushed: toMap(parts.pushed),
    generation: 7,
  }
}

function build(
  d: StateData,
  quorum: Quorum = 'majority',
  now = NOW,
  previous?: HealthSnapshot,
  recovered = new Map<string, number>(),
  slowStartMs = 0,
) {
  return buildSnapshot(d, zones, now, { quorum, slowStartMs }, recovered, previous)
}

describe('buildSnapshot', () => {
  it('counts an endpoint nobody reported as up, and carries the generation', () => {
    const { snapshot } = build(data({}))
    expect(snapshot.view('example.com').up(eu1)).toBe(true)
    expect(snapshot.generation).toBe(7)
  })

  it.each([
    ['majority', [true, false], true],
    ['majority', [true, false, false], false],
    ['any', [true, false, false], true],
    ['all', [true, true, false], false],
    [2, [true, true, false], true],
    [2, [true, false, false], false],
  ] as const)('applies quorum %s to vantage reports %j', (quorum, ups, expected) => {
    const probes = Object.fromEntries(ups.map((u, i) => [`v${i}`, { 'example.com|eu-1': report(u) }]))
    expect(build(data({ probes }), quorum).snapshot.view('example.com').up(eu1)).toBe(expected)
  })

  it('ignores reports past their expiry (a dead prober ages out)', () => {
    const d = data({ probes: { eu: { 'example.com|eu-1': report(false, { expiresAt: NOW - 1 }) } } })
    expect(build(d).snapshot.view('example.com').up(eu1)).toBe(true)
  })

  it('judges report freshness as of reportsAsOf, so a view kept through a store outage does not age', () => {
    const d = data({ probes: { eu: { 'example.com|eu-1': report(false, { expiresAt: NOW + 1000 }) } } })
    const later = NOW + 60_000
    expect(
      buildSnapshot(d, zones, later, { quorum: 'majority', slowStartMs: 0 }, new Map(), undefined)
        .snapshot.view('example.com')
        .up(eu1),
    ).toBe(true)
    expect(
      buildSnapshot(d, zones, later, { quorum: 'majority', slowStartMs: 0, reportsAsOf: NOW }, new Map(), undefined)
        .snapshot.view('example.com')
        .up(eu1),
    ).toBe(false)
  })

  it('lets pushed state beat checks, and an operator force beat both', () => {
    const probes = { eu: { 'example.com|eu-1': report(true) } }
    const pushed = { 'example.com|eu-1': { up: false, until: NOW + 1000, source: 'alertmanager' } }
    expect(build(data({ probes, pushed })).snapshot.view('example.com').up(eu1)).toBe(false)
    const overrides = { 'example.com|eu-1': { force: 'up' as const } }
    expect(build(data({ probes, pushed, overrides })).snapshot.view('example.com').up(eu1)).toBe(true)
    const expired = { 'example.com|eu-1': { up: false, until: NOW - 1, source: 'x' } }
    expect(
      build(data({ probes, pushed: expired }))
        .snapshot.view('example.com')
        .up(eu1),
    ).toBe(true)
  })

  it('takes a drained endpoint out of rotation with weight 0, and applies weight overrides', () => {
    const overrides = { 'example.com|eu-1': { drain: true }, 'example.com|eu-2': { weight: 7 } }
    const view = build(data({ overrides })).snapshot.view('example.com')
    expect(view.up(eu1)).toBe(false)
    expect(view.weight(eu1)).toBe(0)
    expect(view.weight(eu2)).toBe(7)
  })

  it('applies a scheduled drain only inside its window and says the view must be rebuilt over time', () => {
    const overrides = { 'example.com|eu-1': { drain: true, from: NOW + 1000, until: NOW + 2000 } }
    const before = build(data({ overrides }))
    expect(before.snapshot.view('example.com').up(eu1)).toBe(true)
    expect(before.timeSensitive).toBe(true)
    expect(
      build(data({ overrides }), 'majority', NOW + 1500)
        .snapshot.view('example.com')
        .up(eu1),
    ).toBe(false)
    expect(
      build(data({ overrides }), 'majority', NOW + 2500)
        .snapshot.view('example.com')
        .up(eu1),
    ).toBe(true)
  })

  it('ramps a recovered endpoint from 10% to full weight over the slow-start window', () => {
    const down = build(data({ probes: { eu: { 'example.com|eu-1': report(false) } } })).snapshot
    const recovered = new Map<string, number>()
    const up = data({ probes: { eu: { 'example.com|eu-1': report(true) } } })
    const start = build(up, 'majority', NOW, down, recovered, 10_000).snapshot
    expect(start.view('example.com').weight(eu1)).toBeCloseTo(0.1, 5)
    expect(start.view('example.com').recovering(eu1)).toBe(true)
    const half = build(up, 'majority', NOW + 5000, start, recovered, 10_000).snapshot
    expect(half.view('example.com').weight(eu1)).toBeCloseTo(0.55, 5)
    const done = build(up, 'majority', NOW + 10_000, half, recovered, 10_000).snapshot
    expect(done.view('example.com').weight(eu1)).toBe(1)
    expect(done.view('example.com').recovering(eu1)).toBe(false)
  })

  it('counts an unchecked endpoint as down when its check says unknownIs: down, until a report arrives', () => {
    const z = [{ zone: 'example.com', pools: pools.pools, unknownDown: ['eu-1'] }]
    const opts = { quorum: 'majority' as const, slowStartMs: 0 }
    expect(buildSnapshot(data({}), z, NOW, opts, new Map(), undefined).snapshot.view('example.com').up(eu1)).toBe(false)
    expect(buildSnapshot(data({}), z, NOW, opts, new Map(), undefined).snapshot.view('example.com').up(eu2)).toBe(true)
    const reported = data({ probes: { eu: { 'example.com|eu-1': report(true) } } })
    expect(buildSnapshot(reported, z, NOW, opts, new Map(), undefined).snapshot.view('example.com').up(eu1)).toBe(true)
  })

  it('does not slow-start an endpoint seen up for the first time (unknown is up)', () => {
    const up = data({ probes: { eu: { 'example.com|eu-1': report(true) } } })
    expect(build(up, 'majority', NOW, undefined, new Map(), 10_000).snapshot.view('example.com').weight(eu1)).toBe(1)
  })

  it('scales the weight down by reported load', () => {
    const d = data({ probes: { eu: { 'example.com|eu-1': report(true, { load: 0.75 }) } } })
    expect(build(d).snapshot.view('example.com').weight(eu1)).toBeCloseTo(0.25, 5)
  })

  it('gives each pool the best smoothed RTT of its up endpoints per vantage', () => {
    const d = data({
      probes: {
        fra: {
          'example.com|eu-1': report(true, { rttMs: 12 }),
          'example.com|eu-2': report(true, { rttMs: 8 }),
          'example.com|us-1': report(true, { rttMs: 95 }),
        },
        sjc: { 'example.com|eu-1': report(false, { rttMs: 1 }), 'example.com|us-1': report(true, { rttMs: 9 }) },
      },
    })
    const view = build(d).snapshot.view('example.com')
    expect(view.rtt(pools.pool('eu'), 'fra')).toBe(8)
    expect(view.rtt(pools.pool('us'), 'fra')).toBe(95)
    expect(view.rtt(pools.pool('us'), 'sjc')).toBe(9)
    // eu-1 is down as seen from sjc: its figure does not count.
    expect(view.rtt(pools.pool('eu'), 'sjc')).toBeUndefined()
  })
})
