/**
 * The rise/fall state machine fed table-driven sequences of results with rise=2 and fall=3:
 * which result flips the status, what `unknown` reports meanwhile, how the latency average moves,
 * and that `since` moves only on transitions.
 */

import { describe, expect, it } from 'vitest'
import { applyResult, initialState, LATENCY_ALPHA, type TargetState } from '../../../src/probe/hysteresis.ts'
import type { CheckResult } from '../../../src/probe/types.ts'

const RISE_FALL = { rise: 2, fall: 3 }

const ok = (latencyMs = 10, load?: number): CheckResult => ({ ok: true, latencyMs, error: undefined, load })
const fail = (error = 'timeout'): CheckResult => ({ ok: false, latencyMs: undefined, error, load: undefined })

/** Applies `results` one per second from t=1000; returns every intermediate state and change flag. */
function run(results: readonly CheckResult[], start: TargetState = initialState(0)) {
  const states: TargetState[] = []
  const changes: boolean[] = []
  let state = start
  results.forEach((r, i) => {
    const out = applyResult(state, r, RISE_FALL, 1000 * (i + 1))
    state = out.state
    states.push(state)
    changes.push(out.changed)
  })
  return { states, changes, last: state }
}

/** `o` is a success, `x` a failure. */
const seq = (pattern: string): CheckResult[] => [...pattern].map((c) => (c === 'o' ? ok() : fail()))

describe('rise/fall transitions (rise=2, fall=3)', () => {
  const cases: Array<{ name: string; pattern: string; statuses: string }> = [
    // One letter per result: U unknown, P up, D down.
    { name: 'unknown becomes up after two successes', pattern: 'oo', statuses: 'UP' },
    { name: 'unknown becomes down after three failures', pattern: 'xxx', statuses: 'UUD' },
    { name: 'a failure resets the success count while unknown', pattern: 'oxoo', statuses: 'UUUP' },
    { name: 'up survives two failures and falls on the third', pattern: 'ooxxx', statuses: 'UPPPD' },
    { name: 'a success between failures keeps a target up', pattern: 'ooxxoxx', statuses: 'UPPPPPP' },
    { name: 'down needs two successes in a row to rise', pattern: 'xxxoxoo', statuses: 'UUDDDDP' },
    { name: 'alternating results never flip an up target', pattern: 'ooxoxoxox', statuses: 'UPPPPPPPP' },
    { name: 'a full cycle goes up, down and up again', pattern: 'ooxxxoo', statuses: 'UPPPDDP' },
  ]
  const letter = { unknown: 'U', up: 'P', down: 'D' } as const
  for (const c of cases) {
    it(c.name, () => {
      const { states, changes } = run(seq(c.pattern))
      expect(states.map((s) => letter[s.status]).join('')).toBe(c.statuses)
      // `changed` is true exactly where the status letter differs from the one before.
      const expected = [...c.statuses].map((s, i) => s !== (i === 0 ? 'U' : c.statuses[i - 1]))
      expect(changes).toEqual(expected)
    })
  }

  it('reports unknown as up, and only down as not up', () => {
    const { states } = run(seq('xxxoo'))
    expect(states.map((s) => [s.status, s.up])).toEqual([
      ['unknown', true],
      ['unknown', true],
      ['down', false],
      ['down', false],
      ['up', true],
    ])
  })

  it('treats rise or fall below 1 as 1', () => {
    const out = applyResult(initialState(0), fail(), { rise: 0, fall: 0 }, 5)
    expect([out.state.status, out.changed]).toEqual(['down', true])
  })
})

describe('since', () => {
  it('starts at the creation time and moves only on transitions', () => {
    const { states } = run(seq('ooxxxxoo'), initialState(500))
    expect(states.map((s) => s.since)).toEqual([500, 2000, 2000, 2000, 5000, 5000, 5000, 8000])
    expect(states.map((s) => s.lastCheck)).toEqual([1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000])
  })
})

describe('latency average', () => {
  it('starts at the first sample and moves by alpha 0.3 towards each new one', () => {
    const { states } = run([ok(100), ok(200), ok(200), ok(50)])
    const want = [100, 130, 151, 120.7]
    expect(LATENCY_ALPHA).toBe(0.3)
    for (const [i, s] of states.entries()) expect(s.rttMs).toBeCloseTo(want[i]!, 9)
    expect(states.map((s) => s.lastRttMs)).toEqual([100, 200, 200, 50])
  })

  it('ignores failed probes, keeping the average and the last latency', () => {
    const { states } = run([ok(100), fail(), ok(200)])
    expect(states.map((s) => s.rttMs)).toEqual([100, 100, 130])
    expect(states.map((s) => s.lastRttMs)).toEqual([100, 100, 200])
  })

  it('has no latency before the first successful probe', () => {
    expect(run(seq('xx')).last.rttMs).toBeUndefined()
  })
})

describe('error and load', () => {
  it('keeps the latest failure reason until a success clears it', () => {
    const { states } = run([fail('connect refused'), fail('status 503'), ok()])
    expect(states.map((s) => s.lastError)).toEqual(['connect refused', 'status 503', undefined])
  })

  it('takes load from successes and keeps it through failures', () => {
    const { states } = run([ok(10, 0.5), fail(), ok(10, 0.7), ok(10)])
    expect(states.map((s) => s.load)).toEqual([0.5, 0.5, 0.7, undefined])
  })

  it('never mutates the state it is given', () => {
    const before = initialState(0)
    const copy = structuredClone(before)
    applyResult(before, ok(), RISE_FALL, 1)
    applyResult(before, fail(), RISE_FALL, 1)
    expect(before).toEqual(copy)
  })
})
