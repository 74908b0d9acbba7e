/**
 * @module state/types
 * The shared health state: what probers write, what operators set, what DNS instances read. One
 * interface, two stores: Redis for several instances, memory for the embedded default. Both
 * behave the same; the memory store is not a second implementation of any logic, only of storage.
 *
 * Endpoints are named `<zone key>|<endpoint name>` (TargetId), the zone key being the apex in
 * lowercase presentation form without the trailing dot (`example.com`).
 */

/** `<zone>|<endpoint>`, e.g. `example.com|eu-1`. */
export type TargetId = string

export function targetId(zone: string, endpoint: string): TargetId {
  return `${zone}|${endpoint}`
}

export function splitTargetId(id: TargetId): { zone: string; endpoint: string } {
  const i = id.indexOf('|')
  return { zone: id.slice(0, i), endpoint: id.slice(i + 1) }
}

/** One endpoint as seen from one vantage region, as the prober there last wrote it. */
export interface ProbeStatus {
  /** UP or DOWN after the check's rise/fall hysteresis. */
  readonly up: boolean
  /** When `up` last changed (ms since epoch). */
  readonly since: number
  /** Smoothed (EWMA) round-trip time of successful probes, ms. */
  readonly rttMs: number | undefined
  /** Round-trip time of the last successful probe, ms. */
  readonly lastRttMs: number | undefined
  /** Why the last probe failed, if it did. */
  readonly error: string | undefined
  /** Load the endpoint reported (0..1), for load-aware weighting. */
  readonly load: number | undefined
  /** When this report was written (ms since epoch). */
  readonly at: number
  /** After this, the report is stale and ignored (a dead prober's data ages out). */
  readonly expiresAt: number
  /** Which prober wrote it. */
  readonly prober: string
}

/** An operator's instruction for one endpoint; every field optional, all may carry a window. */
export interface Override {
  /** Drained: weight 0, answered only when nothing else is up. */
  readonly drain?: boolean
  /** Replaces the configured weight. */
  readonly weight?: number
  /** Beats every check and pushed state. */
  readonly force?: 'up' | 'down'
  /** Scheduled start (ms since epoch); before it the override has no effect. */
  readonly from?: number
  /** Expiry (ms since epoch); after it the override is gone. */
  readonly until?: number
}

/** Health pushed from outside (an alerting webhook, a CLI call), with an expiry. */
export interface PushedState {
  readonly up: boolean
  readonly until: number
  readonly source: string
  readonly reason?: string
}

export interface AuditEntry {
  readonly at: number
  /** Who did it: user@host, or the webhook source. */
  readonly who: string
  /** `drain`, `undrain`, `weight`, `force-up`, `force-down`, `unforce`, `push`... */
  readonly action: string
  readonly target: TargetId
  readonly detail: string
  readonly why: string
}

/** A DNS instance's heartbeat: lets `gslb status` show whether every instance answers alike. */
export interface InstanceInfo {
  readonly id: string
  readonly host: string
  /** Generation of the state view the instance serves. */
  readonly generation: number
  /** Ms since the instance last synchronised with the store (0 for memory). */
  readonly staleMs: number
  readonly version: string
  readonly at: number
}

/** Everything an instance needs to build its health view, read in one go. */
export interface StateData {
  /** Probe reports per vantage region, per target. Stale entries may be present; readers check `expiresAt`. */
  readonly probes: ReadonlyMap<string, ReadonlyMap<TargetId, ProbeStatus>>
  readonly overrides: ReadonlyMap<TargetId, Override>
  readonly pushed: ReadonlyMap<TargetId, PushedState>
  /** Increases with every write; equal generations mean equal views. */
  readonly generation: number
}

export interface StateStore {
  readonly kind: 'memory' | 'redis'
  /** True while the store is reachable (always for memory). */
  readonly connected: boolean
  /** The whole state. Rejects when the store is unreachable. */
  load(): Promise<StateData>
  /**
   * Calls `fn` (with no data: it is only a signal to `load()` again) after any write by anyone,
   * and after a reconnect, when writes may have been missed. Returns an unsubscribe function.
   */
  onChange(fn: () => void): () => void
  /** Called on connection loss and recovery (Redis), so instances can log and track staleness. */
  onConnection(fn: (connected: boolean) => void): () => void
  writeProbes(vantage: string, reports: ReadonlyArray<readonly [TargetId, ProbeStatus]>): Promise<void>
  /** Sets (or with `undefined` clears) an override, appending to the audit log. */
  setOverride(target: TargetId, override: Override | undefined, audit: AuditEntry): Promise<void>
  pushState(target: TargetId, state: PushedState | undefined, audit: AuditEntry): Promise<void>
  /** Newest first. */
  audit(limit: number): Promise<AuditEntry[]>
  /** Records that `prober` of `vantage` is alive for `ttlMs`; returns the live probers of that vantage, sorted. */
  proberHeartbeat(vantage: string, prober: string, ttlMs: number): Promise<string[]>
  instanceHeartbeat(info: InstanceInfo, ttlMs: number): Promise<void>
  instances(): Promise<InstanceInfo[]>
  close(): Promise<void>
}
