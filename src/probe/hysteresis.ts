/**
 * @module probe/hysteresis
 * Turns raw probe results into UP/DOWN, one target at a time; the only place that does so (the
 * checks report pass or fail, the DNS server never re-derives state). Pure: the caller keeps the
 * state and passes the clock in.
 *
 * Rules (HAProxy's rise/fall, counted as consecutive results):
 * - a target starts `unknown`, which answers count as up, so a fresh prober or a new endpoint
 *   does not empty a pool before its first probes are in;
 * - `rise` consecutive successes make a target that is not up `up`;
 * - `fall` consecutive failures make a target that is not down `down`;
 * - any other result only moves the counters. Alternating results therefore never flap.
 */

import type { CheckConfig, CheckResult } from './types.ts'

export type HealthStatus = 'unknown' | 'up' | 'down'

/** Weight of the newest sample in the latency average; 0.3 follows a change within ~5 probes. */
export const LATENCY_ALPHA = 0.3

export interface TargetState {
  readonly status: HealthStatus
  /** What answers use: `unknown` counts as up. */
  readonly up: boolean
  /** Consecutive successes so far (0 after any failure). */
  readonly successes: number
  /** Consecutive failures so far (0 after any success). */
  readonly failures: number
  // Named as in the state store's ProbeStatus, which these values are written to.
  /** Exponentially weighted average latency of successful probes, ms. */
  readonly rttMs: number | undefined
  /** Latency of the latest successful probe, ms. */
  readonly lastRttMs: number | undefined
  /** Error of the latest probe; cleared by a success. */
  readonly lastError: string | undefined
  /** Load reported by the latest successful probe. */
  readonly load: number | undefined
  /** When `status` last changed, or when the state was created while still `unknown`. */
  readonly since: number
  /** When the latest result was applied. */
  readonly lastCheck: number | undefined
}

/** A target nobody has probed yet; `now` is when it appeared (the `since` of its `unknown` status). */
export function initialState(now = 0): TargetState {
  return {
    status: 'unknown',
    up: true,
    successes: 0,
    failures: 0,
    rttMs: undefined,
    lastRttMs: undefined,
    lastError: undefined,
    load: undefined,
    since: now,
    lastCheck: undefined,
  }
}

/** Folds one result into the state. `changed` is true exactly when `status` moved. */
export function applyResult(
  state: TargetState,
  result: CheckResult,
  check: Pick<CheckConfig, 'rise' | 'fall'>,
  now: number,
): { state: TargetState; changed: boolean } {
  // A zero or negative threshold would make a single result decide; treat it as 1 explicitly.
  const rise = Math.max(1, Math.floor(check.rise))
  const fall = Math.max(1, Math.floor(check.fall))
  if (result.ok) {
    const successes = state.successes + 1
    const status = state.status !== 'up' && successes >= rise ? 'up' : state.status
    const sample = result.latencyMs
    const rttMs =
      sample === undefined
        ? state.rttMs
        : state.rttMs === undefined
          ? sample
          : LATENCY_ALPHA * sample + (1 - LATENCY_ALPHA) * state.rttMs
    return settle(state, status, now, {
      successes,
      failures: 0,
      rttMs,
      lastRttMs: sample ?? state.lastRttMs,
      lastError: undefined,
      load: result.load,
    })
  }
  const failures = state.failures + 1
  const status = state.status !== 'down' && failures >= fall ? 'down' : state.status
  return settle(state, status, now, {
    successes: 0,
    failures,
    rttMs: state.rttMs,
    lastRttMs: state.lastRttMs,
    lastError: result.error ?? 'failed',
    load: state.load,
  })
}

function settle(
  prev: TargetState,
  status: HealthStatus,
  now: number,
  rest: Pick<TargetState, 'successes' | 'failures' | 'rttMs' | 'lastRttMs' | 'lastError' | 'load'>,
): { state: TargetState; changed: boolean } {
  const changed = status !== prev.status
  return {
    state: {
      status,
      up: status !== 'down',
      ...rest,
      since: changed ? now : prev.since,
      lastCheck: now,
    },
    changed,
  }
}
