/**
 * @module health/builder
 * Turns the shared state (probe reports per vantage, operator overrides, pushed state) into the
 * snapshot the query path reads. One pure function, run on every change and once a second while
 * something time-based is in progress (expiries, scheduled drains, slow start).
 *
 * Precedence, strongest first: operator force (up/down) > pushed state (webhook, CLI) > active
 * checks (a quorum over the vantages that have a fresh report) > unknown, which counts as up.
 * Drain and weight overrides apply on top of whichever decided up/down.
 */

import type { Pool } from '../policy/types.ts'
import { type StateData, splitTargetId, type TargetId } from '../state/types.ts'
import { type EndpointStatus, HealthSnapshot } from './state.ts'

/** How many fresh vantage reports must say up: a count, or majority (ties count as up), any, all. */
export type Quorum = number | 'majority' | 'any' | 'all'

export interface ZonePools {
  readonly zone: string
  readonly pools: readonly Pool[]
  /** Endpoints whose check says they count as down until their first verdict. */
  readonly unknownDown?: readonly string[] | undefined
}

export interface BuildOptions {
  /**
   * The moment probe reports are judged fresh or stale at. Normally now; while the state store is
   * unreachable, the time of the last successful read, so the last known view does not age into
   * "unknown, hence up" behind the operator's back (that is what fail-open is for).
   */
  readonly reportsAsOf?: number | undefined
  readonly quorum: Quorum
  /** Ramp a recovered endpoint's weight from 10% to 100% over this long (0 = off). */
  readonly slowStartMs: number
}

/** When each endpoint last came back up, kept by the caller between builds (slow start). */
export type RecoveryTimes = Map<TargetId, number>

export interface BuildResult {
  readonly snapshot: HealthSnapshot
  /** True while something in the snapshot changes with time alone (ramps, expiries ahead). */
  readonly timeSensitive: boolean
}

const MIN_RAMP = 0.1

export function buildSnapshot(
  data: StateData,
  zones: readonly ZonePools[],
  now: number,
  opts: BuildOptions,
  recovered: RecoveryTimes,
  previous: HealthSnapshot | undefined,
): BuildResult {
  let timeSensitive = false
  const asOf = opts.reportsAsOf ?? now
  const active = new Map<TargetId, { up: number; down: number; load: number | undefined }>()
  for (const reports of data.probes.values()) {
    for (const [id, r] of reports) {
      if (r.expiresAt <= asOf) continue
      timeSensitive = true
      let a = active.get(id)
      if (!a) {
        a = { up: 0, down: 0, load: undefined }
        active.set(id, a)
      }
      if (r.up) a.up++
      else a.down++
      if (r.load !== undefined) a.load = a.load === undefined ? r.load : Math.max(a.load, r.load)
    }
  }

  const unknownDown = new Set<TargetId>()
  for (const z of zones) for (const e of z.unknownDown ?? []) unknownDown.add(`${z.zone}|${e}`)
  const ids = new Set<TargetId>([...active.keys(), ...data.overrides.keys(), ...data.pushed.keys(), ...unknownDown])
  const statuses: Array<[string, string, EndpointStatus]> = []
  for (const id of ids) {
    const { zone, endpoint } = splitTargetId(id)
    const status: { -readonly [K in keyof EndpointStatus]: EndpointStatus[K] } = {}
    const a = active.get(id)
    if (a) status.up = quorumUp(a.up, a.down, opts.quorum)
    else if (unknownDown.has(id)) status.up = false
    const pushed = data.pushed.get(id)
    if (pushed && pushed.until > now) {
      status.up = pushed.up
      timeSensitive = true
    }
    const o = data.overrides.get(id)
    if (o && (o.from ?? 0) <= now && (o.until ?? Number.POSITIVE_INFINITY) > now) {
      if (o.force !== undefined) status.forced = o.force
      if (o.drain) status.drained = true
      if (o.weight !== undefined) status.weight = o.weight
    }
    if (o && (o.from !== undefined || o.until !== undefined)) timeSensitive = true

    const up = status.forced !== undefined ? status.forced === 'up' : status.up !== false
    const wasUp = previous === undefined ? true : isUp(previous.status(zone, endpoint))
    if (up && !wasUp && opts.slowStartMs > 0) recovered.set(id, now)
    if (!up) recovered.delete(id)
    const since = recovered.get(id)
    if (since !== undefined) {
      const elapsed = now - since
      if (elapsed >= opts.slowStartMs) recovered.delete(id)
      else {
        status.ramp = MIN_RAMP + (1 - MIN_RAMP) * (elapsed / opts.slowStartMs)
        timeSensitive = true
      }
    }
    // Load-aware weighting: a busy endpoint gets a proportionally smaller share.
    if (a?.load !== undefined && a.load > 0) status.ramp = (status.ramp ?? 1) * Math.max(0.05, 1 - Math.min(1, a.load))
    statuses.push([zone, endpoint, status])
  }

  // Pool round-trip time per vantage: the best smoothed RTT among its endpoints that are up there.
  const rtts: Array<[string, string, string, number]> = []
  for (const { zone, pools } of zones) {
    for (const pool of pools) {
      for (const [vantage, reports] of data.probes) {
        let best = Number.POSITIVE_INFINITY
        for (const e of pool.endpoints) {
          const r = reports.get(`${zone}|${e.name}`)
          if (r?.up && r.expiresAt > asOf && r.rttMs !== undefined && r.rttMs < best) best = r.rttMs
        }
        if (best !== Number.POSITIVE_INFINITY) rtts.push([zone, pool.name, vantage, best])
      }
    }
  }
  return { snapshot: HealthSnapshot.from(data.generation, statuses, rtts), timeSensitive }
}

function quorumUp(up: number, down: number, q: Quorum): boolean {
  const n = up + down
  if (q === 'any') return up > 0
  if (q === 'all') return down === 0
  if (q === 'majority') return up * 2 >= n
  return up >= Math.min(q, n)
}

function isUp(s: EndpointStatus): boolean {
  if (s.forced !== undefined) return s.forced === 'up'
  return s.up !== false
}
