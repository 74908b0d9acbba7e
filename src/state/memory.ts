/**
 * @module state/memory
 * The embedded state store: the whole state in this process's maps, for a single DNS instance with
 * its probers in the same process. It stores and expires data exactly as the Redis store does and
 * holds no logic of its own: whoever reads `load()` decides what the data means.
 */

import type {
  AuditEntry,
  InstanceInfo,
  Override,
  ProbeStatus,
  PushedState,
  StateData,
  StateStore,
  TargetId,
} from './types.ts'

/** Pino-compatible: only `warn` is used, for listeners that throw. */
export interface MemoryStoreLog {
  warn(obj: object, msg: string): void
}

export interface MemoryStoreOptions {
  /** How many audit entries are kept (oldest dropped first); default 10 000, like the Redis stream. */
  readonly auditLimit?: number
  readonly log?: MemoryStoreLog
}

const DEFAULT_AUDIT_LIMIT = 10_000

export class MemoryStore implements StateStore {
  readonly kind = 'memory'
  readonly connected = true

  readonly #probes = new Map<string, Map<TargetId, ProbeStatus>>()
  readonly #overrides = new Map<TargetId, Override>()
  readonly #pushed = new Map<TargetId, PushedState>()
  /** Oldest first; trimmed in bulk once it exceeds the limit by 10 % so a write does not shift 10 000 slots. */
  #audit: AuditEntry[] = []
  readonly #auditLimit: number
  /** Vantage → prober → expiry (ms since epoch). */
  readonly #probers = new Map<string, Map<string, number>>()
  /** Id → heartbeat and its expiry. */
  readonly #instances = new Map<string, { info: InstanceInfo; expires: number }>()
  readonly #changeListeners = new Set<() => void>()
  readonly #log: MemoryStoreLog | undefined
  #generation = 0
  #closed = false

  constructor(options: MemoryStoreOptions = {}) {
    const limit = options.auditLimit ?? DEFAULT_AUDIT_LIMIT
    if (!Number.isInteger(limit) || limit < 1) {
      throw new RangeError(`auditLimit must be a positive integer, got ${limit}`)
    }
    this.#auditLimit = limit
    this.#log = options.log
  }

  async load(): Promise<StateData> {
    const now = Date.now()
    // Copies, so a view handed out never changes under its reader (the Redis store's loads are
    // copies by nature).
    const probes = new Map<string, ReadonlyMap<TargetId, ProbeStatus>>()
    for (const [vantage, reports] of this.#probes) {
      const live = new Map<TargetId, ProbeStatus>()
      for (const [target, status] of reports) {
        // Aged-out reports are dropped here, as Redis drops them, so both stores load alike.
        if (status.expiresAt > now) live.set(target, status)
        else reports.delete(target)
      }
      if (live.size > 0) probes.set(vantage, live)
      else this.#probes.delete(vantage)
    }
    return {
      probes,
      overrides: new Map(this.#overrides),
      pushed: new Map(this.#pushed),
      generation: this.#generation,
    }
  }

  onChange(fn: () => void): () => void {
    // Wrapped so the same function may subscribe twice and unsubscribe each independently.
    const entry = () => fn()
    this.#changeListeners.add(entry)
    return () => {
      this.#changeListeners.delete(entry)
    }
  }

  onConnection(_fn: (connected: boolean) => void): () => void {
    // Memory is never disconnected: nothing to report, ever.
    return () => {}
  }

  async writeProbes(vantage: string, reports: ReadonlyArray<readonly [TargetId, ProbeStatus]>): Promise<void> {
    if (reports.length === 0) return
    let stored = this.#probes.get(vantage)
    if (stored === undefined) {
      stored = new Map()
      this.#probes.set(vantage, stored)
    }
    const now = Date.now()
    let changed = false
    for (const [target, status] of reports) {
      const prev = stored.get(target)
      if (prev === undefined || prev.up !== status.up || prev.expiresAt <= now) changed = true
      stored.set(target, status)
    }
    this.#changed(changed)
  }

  async setOverride(target: TargetId, override: Override | undefined, audit: AuditEntry): Promise<void> {
    if (override === undefined) this.#overrides.delete(target)
    else this.#overrides.set(target, override)
    this.#appendAudit(audit)
    this.#changed()
  }

  async pushState(target: TargetId, state: PushedState | undefined, audit: AuditEntry): Promise<void> {
    if (state === undefined) this.#pushed.delete(target)
    else this.#pushed.set(target, state)
    this.#appendAudit(audit)
    this.#changed()
  }

  async audit(limit: number): Promise<AuditEntry[]> {
    const count = Math.floor(limit)
    if (!(count > 0)) return []
    const newest = this.#audit.slice(-Math.min(count, this.#auditLimit))
    return newest.reverse()
  }

  async proberHeartbeat(vantage: string, prober: string, ttlMs: number): Promise<string[]> {
    const now = Date.now()
    let probers = this.#probers.get(vantage)
    if (probers === undefined) {
      probers = new Map()
      this.#probers.set(vantage, probers)
    }
    probers.set(prober, now + ttlMs)
    const live: string[] = []
    for (const [id, expires] of probers) {
      if (expires > now) live.push(id)
      else probers.delete(id)
    }
    return live.sort()
  }

  async instanceHeartbeat(info: InstanceInfo, ttlMs: number): Promise<void> {
    this.#instances.set(info.id, { info, expires: Date.now() + ttlMs })
  }

  async instances(): Promise<InstanceInfo[]> {
    const now = Date.now()
    const live: InstanceInfo[] = []
    for (const [id, { info, expires }] of this.#instances) {
      if (expires > now) live.push(info)
      else this.#instances.delete(id)
    }
    return live.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  }

  async close(): Promise<void> {
    this.#closed = true
    this.#changeListeners.clear()
  }

  #appendAudit(entry: AuditEntry): void {
    this.#audit.push(entry)
    if (this.#audit.length > this.#auditLimit + Math.ceil(this.#auditLimit / 10)) {
      this.#audit = this.#audit.slice(-this.#auditLimit)
    }
  }

  /** Listeners always hear of a write; the generation only moves when health really changed. */
  #changed(bump = true): void {
    if (bump) this.#generation++
    // Asynchronous like a Redis notification, so a listener that calls load() never runs inside
    // the writer's call stack and both stores order events the same way.
    queueMicrotask(() => {
      if (this.#closed) return
      for (const fn of this.#changeListeners) {
        try {
          fn()
        } catch (err) {
          if (this.#log) this.#log.warn({ err }, 'state change listener threw')
          else process.emitWarning(`state change listener threw: ${String(err)}`)
        }
      }
    })
  }
}
