/**
 * @module health/sync
 * Keeps one DNS instance's health view in step with the shared state. The store's change signal
 * (Redis pub/sub, or the memory store's listeners) triggers a full re-read; the view is rebuilt
 * and swapped whole. The query path never waits for any of this.
 *
 * When the store is unreachable the instance keeps answering from its last view and counts how
 * stale it is; past `staleAfterMs` it either keeps that view or fails open (everything up), as
 * configured. When the store comes back the view is re-read from scratch.
 */

import { channel } from 'node:diagnostics_channel'
import { hostname } from 'node:os'
import type { Logger } from '../log.ts'
import type { StateData, StateStore } from '../state/types.ts'
import { type BuildOptions, buildSnapshot, type RecoveryTimes, type ZonePools } from './builder.ts'
import { ALL_UP, type EndpointStatus, type HealthSnapshot, type HealthStore } from './state.ts'

/** Published on `gslb:health:change` when an endpoint's effective state flips (metrics, webhooks). */
export interface HealthChangeMessage {
  readonly zone: string
  readonly pool: string
  readonly endpoint: string
  readonly up: boolean
  /** Why, in words: the check result and vantage, pushed state, an operator force or drain. */
  readonly reason: string
  readonly generation: number
}

export const healthChannel = channel('gslb:health:change')

function changeReason(id: string, up: boolean, data: StateData, status: EndpointStatus): string {
  if (status.forced !== undefined) return `forced ${status.forced}`
  if (status.drained) return 'drained'
  const pushed = data.pushed.get(id)
  if (pushed && pushed.up === up) return `pushed by ${pushed.source}`
  for (const [vantage, reports] of data.probes) {
    const r = reports.get(id)
    if (r && r.up === up) return up ? `check ok from ${vantage}` : `check failed from ${vantage}: ${r.error ?? 'down'}`
  }
  return up ? 'no current report (unknown counts as up)' : 'no current report (unknown counts as down)'
}

export interface SyncOptions extends BuildOptions {
  /**
   * After this long without a successful read while the store is unreachable (or, reachable,
   * this long with every read failing), apply `staleMode`.
   */
  readonly staleAfterMs: number
  readonly staleMode: 'keep' | 'fail-open'
  readonly instanceId: string
  readonly version: string
}

export const DEFAULT_SYNC: Omit<SyncOptions, 'instanceId' | 'version'> = {
  quorum: 'majority',
  slowStartMs: 30_000,
  staleAfterMs: 300_000,
  staleMode: 'keep',
}

const TICK_MS = 1000
const HEARTBEAT_MS = 2000

export class HealthSync {
  readonly #store: StateStore
  readonly #health: HealthStore
  readonly #zones: () => readonly ZonePools[]
  readonly #opts: SyncOptions
  readonly #log: Logger
  readonly #recovered: RecoveryTimes = new Map()
  #data: StateData | undefined
  #lastSync = 0
  /** When reads started failing while the store stayed reachable (0: the last read worked). */
  #failingSince = 0
  #timeSensitive = false
  #failedOpen = false
  #loading: Promise<void> | undefined
  #again = false
  #timers: NodeJS.Timeout[] = []
  #unsubscribe: Array<() => void> = []

  constructor(
    store: StateStore,
    health: HealthStore,
    zones: () => readonly ZonePools[],
    opts: SyncOptions,
    log: Logger,
  ) {
    this.#store = store
    this.#health = health
    this.#zones = zones
    this.#opts = opts
    this.#log = log
  }

  /** Ms since the view was last read from the store. */
  get staleMs(): number {
    return this.#lastSync === 0 ? Number.POSITIVE_INFINITY : Date.now() - this.#lastSync
  }

  /**
   * Whether the view is too old to trust: the store unreachable and not read for `staleAfterMs`,
   * or reachable with every read failing for that long. Connected, the view follows the store's
   * change signals, so time since the last read says nothing by itself: a quiet store sends none.
   * (Judging by time alone failed a connected instance open whenever nothing changed for
   * `staleAfter`.) Fail-open and readiness both go by this.
   */
  get stale(): boolean {
    const limit = this.#opts.staleAfterMs
    return this.#store.connected
      ? this.#failingSince !== 0 && Date.now() - this.#failingSince > limit
      : this.staleMs > limit
  }

  get generation(): number {
    return this.#data?.generation ?? 0
  }

  /** Loads the stored view (an instance starts from it, not from scratch) and follows changes. */
  async start(): Promise<void> {
    this.#unsubscribe.push(this.#store.onChange(() => this.refresh()))
    this.#unsubscribe.push(
      this.#store.onConnection((up) => {
        if (up) this.#log.info('state store reachable again; resynchronising')
        else
          this.#log.warn(
            { staleAfterMs: this.#opts.staleAfterMs, mode: this.#opts.staleMode },
            'state store unreachable; answering from the last view',
          )
      }),
    )
    await this.refresh()
    this.#timers.push(setInterval(() => this.#tick(), TICK_MS).unref())
    if (this.#store.kind === 'redis') {
      const beat = (): void => {
        this.#store
          .instanceHeartbeat(
            {
              id: this.#opts.instanceId,
              host: hostname(),
              generation: this.generation,
              staleMs: Math.min(this.staleMs, 1e12),
              version: this.#opts.version,
              at: Date.now(),
            },
            HEARTBEAT_MS * 3,
          )
          .catch(() => {})
      }
      beat()
      this.#timers.push(setInterval(beat, HEARTBEAT_MS).unref())
    }
  }

  /** Re-reads the store and swaps in a new view; concurrent calls coalesce into one more read. */
  refresh(): Promise<void> {
    if (this.#loading) {
      this.#again = true
      return this.#loading
    }
    this.#loading = (async () => {
      do {
        this.#again = false
        try {
          this.#data = await this.#store.load()
          this.#lastSync = Date.now()
          this.#failingSince = 0
          if (this.#failedOpen) this.#log.info('state store back; leaving fail-open')
          this.#failedOpen = false
          this.rebuild()
        } catch (err) {
          if (this.#failingSince === 0) this.#failingSince = Date.now()
          this.#log.debug({ err }, 'state load failed; keeping the last view')
        }
      } while (this.#again)
      this.#loading = undefined
    })()
    return this.#loading
  }

  /** Rebuilds from the last data (after a zone reload, or as time passes). */
  rebuild(): void {
    if (!this.#data || this.#failedOpen) return
    const now = Date.now()
    // While the store is unreachable, judge report freshness as of the last read: keep the view.
    const reportsAsOf = this.#store.connected ? now : this.#lastSync
    const zones = this.#zones()
    const previous = this.#health.current
    const r = buildSnapshot(this.#data, zones, now, { ...this.#opts, reportsAsOf }, this.#recovered, previous)
    this.#timeSensitive = r.timeSensitive
    this.#health.replace(r.snapshot)
    this.#announce(zones, previous, r.snapshot, this.#data)
  }

  /** One log line (and a diagnostics_channel message) per endpoint whose effective state flipped. */
  #announce(zones: readonly ZonePools[], before: HealthSnapshot, after: HealthSnapshot, data: StateData): void {
    for (const z of zones) {
      const was = before.view(z.zone)
      const now = after.view(z.zone)
      for (const pool of z.pools) {
        for (const e of pool.endpoints) {
          const up = now.up(e)
          if (was.up(e) === up) continue
          const id = `${z.zone}|${e.name}`
          const reason = changeReason(id, up, data, after.status(z.zone, e.name))
          const msg: HealthChangeMessage = {
            zone: z.zone,
            pool: pool.name,
            endpoint: e.name,
            up,
            reason,
            generation: after.generation,
          }
          this.#log.info(msg, up ? 'endpoint up' : 'endpoint down')
          if (healthChannel.hasSubscribers) healthChannel.publish(msg)
        }
      }
    }
  }

  #tick(): void {
    if (this.#timeSensitive) this.rebuild()
    if (this.#opts.staleMode === 'fail-open' && !this.#failedOpen && this.stale) {
      this.#failedOpen = true
      this.#log.error({ staleMs: this.staleMs }, 'health view too stale; failing open (every endpoint counts as up)')
      this.#health.replace(ALL_UP)
    }
    // A missed signal must not leave the view stale forever: poll when the store is reachable,
    // well within the stale limit.
    const resyncMs = Math.min(5 * TICK_MS, this.#opts.staleAfterMs / 2)
    if (this.#store.connected && Date.now() - this.#lastSync > resyncMs) void this.refresh()
  }

  stop(): void {
    for (const t of this.#timers) clearInterval(t)
    for (const u of this.#unsubscribe) u()
    this.#timers = []
    this.#unsubscribe = []
  }
}
