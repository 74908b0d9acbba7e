/**
 * @module health/state
 * The health view the query path reads: an immutable snapshot replaced whole on every change
 * (gdnsd's RCU table swap), so a query reads one consistent state and never waits. Endpoints are
 * named per zone; anything never reported counts as up ("unknown is up").
 */

import type { Endpoint, HealthView, Pool } from '../policy/types.ts'

export interface EndpointStatus {
  /** Raw health after hysteresis; undefined = never checked (treated as up). */
  readonly up?: boolean
  /** Operator weight override; undefined = the configured weight. */
  readonly weight?: number
  /** Drained endpoints are out of rotation (weight 0): answered only when nothing else is up. */
  readonly drained?: boolean
  /** Operator force: beats every check result. */
  readonly forced?: 'up' | 'down'
  /** Slow start: fraction 0..1 of the weight while ramping up after recovery. */
  readonly ramp?: number
}

const UP: EndpointStatus = Object.freeze({})

export class HealthSnapshot {
  readonly generation: number
  readonly #status: ReadonlyMap<string, EndpointStatus>
  readonly #rtt: ReadonlyMap<string, number>
  readonly #views = new Map<string, HealthView>()

  constructor(generation: number, status: ReadonlyMap<string, EndpointStatus>, rtt: ReadonlyMap<string, number>) {
    this.generation = generation
    this.#status = status
    this.#rtt = rtt
  }

  /** A snapshot from scratch: every endpoint not listed counts as up. */
  static from(
    generation: number,
    statuses: Iterable<readonly [zoneKey: string, endpoint: string, status: EndpointStatus]>,
    rtts: Iterable<readonly [zoneKey: string, pool: string, vantage: string, ms: number]>,
  ): HealthSnapshot {
    const status = new Map<string, EndpointStatus>()
    for (const [z, e, st] of statuses) status.set(statusKey(z, e), st)
    const rtt = new Map<string, number>()
    for (const [z, p, v, ms] of rtts) rtt.set(rttKey(z, p, v), ms)
    return new HealthSnapshot(generation, status, rtt)
  }

  /** The view of one zone's endpoints; built once per snapshot and zone, then reused by every query. */
  view(zoneKey: string): HealthView {
    let v = this.#views.get(zoneKey)
    if (v === undefined) {
      v = makeView(zoneKey, this.#status, this.#rtt)
      this.#views.set(zoneKey, v)
    }
    return v
  }

  status(zoneKey: string, endpoint: string): EndpointStatus {
    return this.#status.get(statusKey(zoneKey, endpoint)) ?? UP
  }

  /** A copy with some endpoints' status changed (used by tests, golden cases and the store). */
  with(changes: ReadonlyArray<[zoneKey: string, endpoint: string, status: EndpointStatus]>): HealthSnapshot {
    const next = new Map(this.#status)
    for (const [z, e, s] of changes) next.set(statusKey(z, e), { ...next.get(statusKey(z, e)), ...s })
    return new HealthSnapshot(this.generation + 1, next, this.#rtt)
  }

  withRtt(
    changes: ReadonlyArray<[zoneKey: string, pool: string, vantage: string, ms: number | undefined]>,
  ): HealthSnapshot {
    const next = new Map(this.#rtt)
    for (const [z, p, v, ms] of changes) {
      if (ms === undefined) next.delete(rttKey(z, p, v))
      else next.set(rttKey(z, p, v), ms)
    }
    return new HealthSnapshot(this.generation + 1, this.#status, next)
  }
}

export const ALL_UP = new HealthSnapshot(0, new Map(), new Map())

function statusKey(zoneKey: string, endpoint: string): string {
  return `${zoneKey} ${endpoint}`
}

function rttKey(zoneKey: string, pool: string, vantage: string): string {
  return `${zoneKey} ${pool} ${vantage}`
}

function isUp(s: EndpointStatus | undefined): boolean {
  if (s === undefined) return true
  if (s.forced !== undefined) return s.forced === 'up'
  return s.up !== false
}

function makeView(
  zoneKey: string,
  status: ReadonlyMap<string, EndpointStatus>,
  rtt: ReadonlyMap<string, number>,
): HealthView {
  const get = (e: Endpoint): EndpointStatus | undefined =>
    status.size === 0 ? undefined : status.get(statusKey(zoneKey, e.name))
  return {
    // A drained endpoint is out of rotation: pool-level steps move on as if it were down, and
    // only the all-down fail-open brings it back (weight 0 = never unless all else is down).
    up: (e) => {
      const st = get(e)
      return isUp(st) && st?.drained !== true
    },
    weight: (e) => {
      const s = get(e)
      if (s === undefined) return e.weight
      if (s.drained) return 0
      const w = s.weight ?? e.weight
      return s.ramp === undefined ? w : w * s.ramp
    },
    recovering: (e) => {
      const r = get(e)?.ramp
      return r !== undefined && r < 1
    },
    rtt: (pool: Pool, vantage: string) => (rtt.size === 0 ? undefined : rtt.get(rttKey(zoneKey, pool.name, vantage))),
  }
}

/** Holds the current snapshot and tells subscribers when it changes. */
export class HealthStore {
  #current: HealthSnapshot = ALL_UP
  readonly #listeners = new Set<(s: HealthSnapshot) => void>()

  get current(): HealthSnapshot {
    return this.#current
  }

  replace(next: HealthSnapshot): void {
    this.#current = next
    for (const l of this.#listeners) l(next)
  }

  setEndpoint(zoneKey: string, endpoint: string, status: EndpointStatus): void {
    this.replace(this.#current.with([[zoneKey, endpoint, status]]))
  }

  setRtt(zoneKey: string, pool: string, vantage: string, ms: number | undefined): void {
    this.replace(this.#current.withRtt([[zoneKey, pool, vantage, ms]]))
  }

  subscribe(fn: (s: HealthSnapshot) => void): () => void {
    this.#listeners.add(fn)
    return () => this.#listeners.delete(fn)
  }
}
