/**
 * @module health/state
 * The health view the query path reads: an immutable snapshot replaced whole on every change
 * (gdnsd's RCU table swap), so a query reads one consistent state and never waits. Endpoints are
 * named per zone; anything never reported counts as up ("unknown is up").
 *
 * Storage is nested per zone (zone -> endpoint -> status, zone -> pool -> vantage -> ms) so a query
 * reads with plain Map lookups on names it already holds, never building a key string, and a change
 * copies only the maps of the zone it touches.
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

type StatusMap = ReadonlyMap<string, ReadonlyMap<string, EndpointStatus>>
type RttMap = ReadonlyMap<string, ReadonlyMap<string, ReadonlyMap<string, number>>>

/** A snapshot as plain data: what crosses a worker_threads boundary (structured clone). */
export interface SnapshotData {
  readonly generation: number
  readonly statuses: readonly (readonly [zoneKey: string, endpoint: string, status: EndpointStatus])[]
  readonly rtts: readonly (readonly [zoneKey: string, pool: string, vantage: string, ms: number])[]
}

const NO_STATUS: ReadonlyMap<string, EndpointStatus> = new Map()
const NO_RTT: ReadonlyMap<string, ReadonlyMap<string, number>> = new Map()

export class HealthSnapshot {
  readonly generation: number
  readonly #status: StatusMap
  readonly #rtt: RttMap
  readonly #views = new Map<string, HealthView>()

  private constructor(generation: number, status: StatusMap, rtt: RttMap) {
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
    const status = new Map<string, Map<string, EndpointStatus>>()
    for (const [z, e, st] of statuses) inner(status, z).set(e, st)
    const rtt = new Map<string, Map<string, Map<string, number>>>()
    for (const [z, p, v, ms] of rtts) inner(inner(rtt, z), p).set(v, ms)
    return new HealthSnapshot(generation, status, rtt)
  }

  static fromData(d: SnapshotData): HealthSnapshot {
    return HealthSnapshot.from(d.generation, d.statuses, d.rtts)
  }

  /** Everything in the snapshot as plain arrays (for another thread; see `fromData`). */
  data(): SnapshotData {
    const statuses: [string, string, EndpointStatus][] = []
    for (const [z, m] of this.#status) for (const [e, st] of m) statuses.push([z, e, st])
    const rtts: [string, string, string, number][] = []
    for (const [z, pools] of this.#rtt) for (const [p, m] of pools) for (const [v, ms] of m) rtts.push([z, p, v, ms])
    return { generation: this.generation, statuses, rtts }
  }

  /** The view of one zone's endpoints; built once per snapshot and zone, then reused by every query. */
  view(zoneKey: string): HealthView {
    let v = this.#views.get(zoneKey)
    if (v === undefined) {
      v = makeView(this.#status.get(zoneKey) ?? NO_STATUS, this.#rtt.get(zoneKey) ?? NO_RTT)
      this.#views.set(zoneKey, v)
    }
    return v
  }

  /**
   * Adopts `previous`'s views of every zone whose state is unchanged. Views are what the query
   * path's decision caches are keyed on, so a new snapshot (a probe result somewhere, an RTT
   * update elsewhere) only invalidates the answers of the zones it actually changed.
   */
  inheritViews(previous: HealthSnapshot): this {
    for (const [zoneKey, view] of previous.#views) {
      if (this.#views.has(zoneKey)) continue
      const statusSame = sameStatus(previous.#status.get(zoneKey), this.#status.get(zoneKey))
      if (statusSame && sameRtt(previous.#rtt.get(zoneKey), this.#rtt.get(zoneKey))) this.#views.set(zoneKey, view)
    }
    return this
  }

  status(zoneKey: string, endpoint: string): EndpointStatus {
    return this.#status.get(zoneKey)?.get(endpoint) ?? UP
  }

  /** A copy with some endpoints' status changed (used by tests, golden cases and the store). */
  with(changes: ReadonlyArray<[zoneKey: string, endpoint: string, status: EndpointStatus]>): HealthSnapshot {
    const next = new Map(this.#status)
    const copied = new Set<string>()
    for (const [z, e, s] of changes) {
      let m = next.get(z) as Map<string, EndpointStatus> | undefined
      if (!copied.has(z)) {
        m = new Map(m ?? [])
        next.set(z, m)
        copied.add(z)
      }
      m!.set(e, { ...m!.get(e), ...s })
    }
    return new HealthSnapshot(this.generation + 1, next, this.#rtt)
  }

  withRtt(
    changes: ReadonlyArray<[zoneKey: string, pool: string, vantage: string, ms: number | undefined]>,
  ): HealthSnapshot {
    const next = new Map(this.#rtt)
    for (const [z, p, v, ms] of changes) {
      const pools = new Map(next.get(z) ?? [])
      const m = new Map(pools.get(p) ?? [])
      if (ms === undefined) m.delete(v)
      else m.set(v, ms)
      pools.set(p, m)
      next.set(z, pools)
    }
    return new HealthSnapshot(this.generation + 1, this.#status, next)
  }
}

export const ALL_UP = HealthSnapshot.from(0, [], [])

function inner<V>(outer: Map<string, Map<string, V>>, key: string): Map<string, V> {
  let m = outer.get(key)
  if (m === undefined) {
    m = new Map()
    outer.set(key, m)
  }
  return m
}

function sameStatus(
  a: ReadonlyMap<string, EndpointStatus> | undefined,
  b: ReadonlyMap<string, EndpointStatus> | undefined,
): boolean {
  if (a === b) return true
  if ((a?.size ?? 0) !== (b?.size ?? 0)) return false
  if (a === undefined || b === undefined) return true // both empty
  for (const [name, x] of a) {
    const y = b.get(name)
    if (
      y === undefined ||
      x.up !== y.up ||
      x.weight !== y.weight ||
      x.drained !== y.drained ||
      x.forced !== y.forced ||
      x.ramp !== y.ramp
    )
      return false
  }
  return true
}

function sameRtt(
  a: ReadonlyMap<string, ReadonlyMap<string, number>> | undefined,
  b: ReadonlyMap<string, ReadonlyMap<string, number>> | undefined,
): boolean {
  if (a === b) return true
  if ((a?.size ?? 0) !== (b?.size ?? 0)) return false
  if (a === undefined || b === undefined) return true
  for (const [pool, x] of a) {
    const y = b.get(pool)
    if (y === undefined || x.size !== y.size) return false
    for (const [vantage, ms] of x) if (y.get(vantage) !== ms) return false
  }
  return true
}

function isUp(s: EndpointStatus | undefined): boolean {
  if (s === undefined) return true
  if (s.forced !== undefined) return s.forced === 'up'
  return s.up !== false
}

function makeView(
  status: ReadonlyMap<string, EndpointStatus>,
  rtt: ReadonlyMap<string, ReadonlyMap<string, number>>,
): HealthView {
  const get = (e: Endpoint): EndpointStatus | undefined => (status.size === 0 ? undefined : status.get(e.name))
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
    rtt: (pool: Pool, vantage: string) => (rtt.size === 0 ? undefined : rtt.get(pool.name)?.get(vantage)),
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
    // Views are pure functions of a zone's state, so taking over an equal zone's view is exact.
    if (next !== this.#current) next.inheritViews(this.#current)
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
