/**
 * @module probe/scheduler
 * Runs every target's check at its interval and writes what hysteresis makes of the results to the
 * state store. One min-heap of due times driven by one timer (undici's coarse-timer habit: never a
 * `setTimeout` per target or per probe); probe timeouts sit in a second heap behind the same timer.
 *
 * ```
 *  setTargets ─→ due heap ─(timer)─→ start, or wait queue when maxInFlight are running
 *                   ↑                    │ run(target, signal)       (deadline heap aborts)
 *                   └── next due ←── result ─→ hysteresis ─→ pending reports (latest per target)
 *                                                                  │ every flushMs, or next tick on
 *                                                                  ↓ an UP/DOWN change
 *                                                       store.writeProbes(vantage, batch)
 * ```
 *
 * Lateness (probe start minus due time) is kept for the last few thousand starts: it is the one
 * figure that says whether this process keeps up with its share of targets.
 */

import { channel } from 'node:diagnostics_channel'
import type { ProbeStatus, StateStore, TargetId } from '../state/types.ts'
import { runCheck } from './checks/index.ts'
import { applyResult, initialState, type TargetState } from './hysteresis.ts'
import type { ProbeLogger } from './sharding.ts'
import type { CheckResult, ProbeTarget } from './types.ts'

export type RunCheck = (target: ProbeTarget, signal: AbortSignal) => Promise<CheckResult>

export interface ProbeSchedulerOptions {
  /** Vantage region the reports are written under. */
  readonly vantage: string
  /** This prober's id, written into every report. */
  readonly prober: string
  readonly store: Pick<StateStore, 'writeProbes'>
  /** The check to run; default `runCheck`. Tests pass a fake. */
  readonly run?: RunCheck | undefined
  /** Probes running at once; the rest wait their turn (and their lateness is counted). Default 256. */
  readonly maxInFlight?: number | undefined
  /** Reports are batched for this long before one store write. Default 200. */
  readonly flushMs?: number | undefined
  /** Clock for due times and reports (ms since epoch). Default `Date.now`. */
  readonly now?: (() => number) | undefined
  /** Uniform [0, 1) source for jitter and first-probe spread. Default `Math.random`. */
  readonly random?: (() => number) | undefined
  readonly log?: ProbeLogger | undefined
  /**
   * Reports live at least this long (default 0: three intervals). The worker sets it above the time
   * a dead prober's share takes to move, so its last reports bridge the takeover instead of
   * lapsing into "unknown, hence up".
   */
  readonly minReportLifetimeMs?: number | undefined
}

export interface ProbeSchedulerStats {
  readonly targets: number
  readonly inFlight: number
  /** Due probes waiting for a free slot. */
  readonly queued: number
  readonly probesDone: number
  readonly probesFailed: number
  readonly timeouts: number
  /** Lateness of recent probe starts against their due time, ms. */
  readonly lateMsP50: number
  readonly lateMsP99: number
  readonly lateMsMax: number
  /** Store writes attempted, and those that failed. */
  readonly flushes: number
  readonly writeErrors: number
  /** Reports waiting for the next write. */
  readonly pending: number
}

/** Published on `gslb:probe:change` when a target goes UP or DOWN (only built when someone listens). */
export interface ProbeChangeMessage {
  readonly vantage: string
  readonly prober: string
  readonly target: TargetId
  readonly status: ProbeStatus
}

const changeChannel = channel('gslb:probe:change')

/** How many recent starts the lateness percentiles cover. */
const LATENESS_SAMPLES = 4096
/**
 * A timer wake-up also starts the probes due within this many ms. Probes are otherwise due at
 * scattered sub-millisecond times, and waking once per probe costs more than the probe's own
 * bookkeeping (18.6 → 9.9 µs of CPU per probe in the bench); a few ms early is nothing against a
 * jittered interval of seconds. Early starts count as zero lateness.
 */
const COALESCE_MS = 5
/** stop() waits at most this long for the final store write. */
const STOP_FLUSH_MS = 5000

interface Entry {
  target: ProbeTarget
  /** When the next probe is due (ms, `now()` clock). */
  due: number
  /** Due time computed when the running probe started; becomes `due` when it finishes. */
  nextDue: number
  /** When the running probe is cut off. */
  deadline: number
  dueIndex: number
  deadlineIndex: number
  queued: boolean
  /** Set while a probe runs. */
  controller: AbortController | undefined
  /** Probe counter: a result whose number is not current belongs to a probe already given up on. */
  seq: number
  health: TargetState
  removed: boolean
}

/**
 * A binary min-heap that keeps each item's position in the item itself, so an item can be removed
 * or re-keyed in O(log n) when a target goes away or its schedule changes.
 */
class EntryHeap {
  readonly #items: Entry[] = []
  readonly #key: (e: Entry) => number
  readonly #setIndex: (e: Entry, i: number) => void

  constructor(key: (e: Entry) => number, setIndex: (e: Entry, i: number) => void) {
    this.#key = key
    this.#setIndex = setIndex
  }

  get size(): number {
    return this.#items.length
  }

  peek(): Entry | undefined {
    return this.#items[0]
  }

  push(e: Entry): void {
    this.#items.push(e)
    this.#setIndex(e, this.#items.length - 1)
    this.#up(this.#items.length - 1)
  }

  pop(): Entry | undefined {
    const top = this.#items[0]
    if (top !== undefined) this.removeAt(0)
    return top
  }

  removeAt(i: number): void {
    const items = this.#items
    const gone = items[i]
    if (gone === undefined) return
    this.#setIndex(gone, -1)
    const last = items.pop()!
    if (i === items.length) return
    items[i] = last
    this.#setIndex(last, i)
    this.#down(i)
    this.#up(i)
  }

  /** Restores order after the key of the item at `i` changed. */
  update(i: number): void {
    this.#down(i)
    this.#up(i)
  }

  clear(): void {
    for (const e of this.#items) this.#setIndex(e, -1)
    this.#items.length = 0
  }

  #up(i: number): void {
    const items = this.#items
    const e = items[i]!
    const k = this.#key(e)
    while (i > 0) {
      const p = (i - 1) >> 1
      const pe = items[p]!
      if (this.#key(pe) <= k) break
      items[i] = pe
      this.#setIndex(pe, i)
      i = p
    }
    items[i] = e
    this.#setIndex(e, i)
  }

  #down(i: number): void {
    const items = this.#items
    const n = items.length
    const e = items[i]!
    const k = this.#key(e)
    for (;;) {
      const l = 2 * i + 1
      if (l >= n) break
      const r = l + 1
      let c = l
      let ck = this.#key(items[l]!)
      if (r < n) {
        const rk = this.#key(items[r]!)
        if (rk < ck) {
          c = r
          ck = rk
        }
      }
      if (ck >= k) break
      const ce = items[c]!
      items[i] = ce
      this.#setIndex(ce, i)
      i = c
    }
    items[i] = e
    this.#setIndex(e, i)
  }
}

function timeoutReason(): DOMException {
  // The same reason AbortSignal.timeout() gives, so checks can tell a timeout from a stop.
  return new DOMException('The operation was aborted due to timeout', 'TimeoutError')
}

const TIMEOUT_RESULT: CheckResult = Object.freeze({
  ok: false,
  latencyMs: undefined,
  error: 'timeout',
  load: undefined,
})

function thrownResult(err: unknown): CheckResult {
  // runCheck never throws; an injected check might, and a bug must not stall the target.
  const error = err instanceof Error ? `check threw: ${err.message}` : 'check threw'
  return { ok: false, latencyMs: undefined, error, load: undefined }
}

export class ProbeScheduler {
  readonly #vantage: string
  readonly #prober: string
  readonly #store: Pick<StateStore, 'writeProbes'>
  readonly #run: RunCheck
  readonly #maxInFlight: number
  readonly #flushMs: number
  readonly #minLifetimeMs: number
  readonly #now: () => number
  readonly #random: () => number
  readonly #log: ProbeLogger | undefined

  readonly #entries = new Map<TargetId, Entry>()
  readonly #due = new EntryHeap(
    (e) => e.due,
    (e, i) => {
      e.dueIndex = i
    },
  )
  readonly #deadlines = new EntryHeap(
    (e) => e.deadline,
    (e, i) => {
      e.deadlineIndex = i
    },
  )
  /** Due entries waiting for a slot, oldest first; `#waitHead` is the next to start. */
  #waiting: Array<Entry | undefined> = []
  #waitHead = 0
  #inFlight = 0
  #timer: NodeJS.Timeout | undefined
  #timerAt = Number.POSITIVE_INFINITY
  #stopped = false

  #pending = new Map<TargetId, ProbeStatus>()
  #flushTimer: NodeJS.Timeout | undefined
  #flushImmediate: NodeJS.Immediate | undefined
  #writing: Promise<void> | undefined
  #urgentAgain = false
  #writeFailing = false

  readonly #lateness = new Float64Array(LATENESS_SAMPLES)
  #latenessCount = 0
  #probesDone = 0
  #probesFailed = 0
  #timeouts = 0
  #flushes = 0
  #writeErrors = 0

  constructor(options: ProbeSchedulerOptions) {
    const maxInFlight = options.maxInFlight ?? 256
    const flushMs = options.flushMs ?? 200
    if (!(Number.isInteger(maxInFlight) && maxInFlight >= 1)) {
      throw new RangeError(`maxInFlight must be a positive integer, got ${maxInFlight}`)
    }
    if (!(flushMs >= 0)) throw new RangeError(`flushMs must be >= 0, got ${flushMs}`)
    this.#vantage = options.vantage
    this.#prober = options.prober
    this.#store = options.store
    this.#run = options.run ?? runCheck
    this.#maxInFlight = maxInFlight
    this.#flushMs = flushMs
    this.#minLifetimeMs = Math.max(0, options.minReportLifetimeMs ?? 0)
    this.#now = options.now ?? Date.now
    this.#random = options.random ?? Math.random
    this.#log = options.log
  }

  /**
   * Replaces the target set. Ids still present keep their hysteresis state and schedule (a
   * shorter interval pulls the next probe in); new ids get a first probe at a uniformly random
   * point within one interval, so a reload or re-shard does not fire a burst. Removed ids have
   * their running probe aborted and their unwritten report dropped.
   *
   * `known` holds reports other probers wrote (from `store.load()`): a new id whose report has
   * not expired continues from that UP/DOWN state, so a target taken over from a dead prober
   * does not flip to unknown-counts-as-up while its new owner collects `fall` failures.
   */
  setTargets(targets: readonly ProbeTarget[], known?: ReadonlyMap<TargetId, ProbeStatus>): void {
    if (this.#stopped) return
    const now = this.#now()
    const keep = new Set<TargetId>()
    for (const t of targets) keep.add(t.id)
    for (const [id, e] of this.#entries) {
      if (!keep.has(id)) this.#remove(e)
    }
    for (const t of targets) {
      const e = this.#entries.get(t.id)
      if (e === undefined) {
        const fresh: Entry = {
          target: t,
          due: now + this.#random() * intervalOf(t),
          nextDue: 0,
          deadline: 0,
          dueIndex: -1,
          deadlineIndex: -1,
          queued: false,
          controller: undefined,
          seq: 0,
          health: seeded(known?.get(t.id), now),
          removed: false,
        }
        this.#entries.set(t.id, fresh)
        this.#due.push(fresh)
        continue
      }
      const oldInterval = intervalOf(e.target)
      e.target = t
      const interval = intervalOf(t)
      if (interval < oldInterval) {
        const sooner = now + this.#random() * interval
        if (e.controller !== undefined) e.nextDue = Math.min(e.nextDue, sooner)
        else if (e.dueIndex >= 0 && sooner < e.due) {
          e.due = sooner
          this.#due.update(e.dueIndex)
        }
      }
    }
    this.#arm()
  }

  /** Stops probing: timers cleared, running probes aborted (their results dropped), reports flushed. */
  async stop(): Promise<void> {
    if (this.#stopped) return
    this.#stopped = true
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    const reason = new DOMException('The prober is stopping', 'AbortError')
    for (const e of this.#entries.values()) {
      if (e.controller !== undefined) {
        e.controller.abort(reason)
        e.controller = undefined
      }
    }
    this.#inFlight = 0
    this.#due.clear()
    this.#deadlines.clear()
    this.#waiting = []
    this.#waitHead = 0
    if (this.#flushTimer !== undefined) clearTimeout(this.#flushTimer)
    if (this.#flushImmediate !== undefined) clearImmediate(this.#flushImmediate)
    this.#flushTimer = undefined
    this.#flushImmediate = undefined
    let bound: NodeJS.Timeout | undefined
    const final = (async () => {
      if (this.#writing !== undefined) await this.#writing
      if (this.#pending.size > 0) await this.#write()
    })()
    // A store that hangs (Redis queueing commands while disconnected) must not hang shutdown.
    await Promise.race([final, new Promise<void>((resolve) => (bound = setTimeout(resolve, STOP_FLUSH_MS)))])
    clearTimeout(bound)
  }

  stats(): ProbeSchedulerStats {
    const n = Math.min(this.#latenessCount, LATENESS_SAMPLES)
    const sorted = this.#lateness.slice(0, n).sort()
    return {
      targets: this.#entries.size,
      inFlight: this.#inFlight,
      queued: this.#waiting.length - this.#waitHead,
      probesDone: this.#probesDone,
      probesFailed: this.#probesFailed,
      timeouts: this.#timeouts,
      lateMsP50: percentile(sorted, 0.5),
      lateMsP99: percentile(sorted, 0.99),
      lateMsMax: n === 0 ? 0 : sorted[n - 1]!,
      flushes: this.#flushes,
      writeErrors: this.#writeErrors,
      pending: this.#pending.size,
    }
  }

  /** The current UP/DOWN view of one target (for `gslb status` and tests); undefined if not probed here. */
  health(id: TargetId): TargetState | undefined {
    return this.#entries.get(id)?.health
  }

  // -------------------------------------------------------------------------------------------
  // Scheduling

  #remove(e: Entry): void {
    e.removed = true
    this.#entries.delete(e.target.id)
    this.#pending.delete(e.target.id)
    if (e.dueIndex >= 0) this.#due.removeAt(e.dueIndex)
    if (e.deadlineIndex >= 0) this.#deadlines.removeAt(e.deadlineIndex)
    if (e.controller !== undefined) {
      e.controller.abort(new DOMException('The target is no longer probed here', 'AbortError'))
      e.controller = undefined
      this.#inFlight--
      this.#startWaiting()
    }
    // A queued entry stays in #waiting and is skipped there (removal from the middle is O(n)).
  }

  /** Arms the one timer for the earliest due time or probe deadline, if not armed early enough. */
  #arm(): void {
    if (this.#stopped) return
    const due = this.#due.peek()?.due ?? Number.POSITIVE_INFINITY
    const deadline = this.#deadlines.peek()?.deadline ?? Number.POSITIVE_INFINITY
    const at = Math.min(due, deadline)
    if (at >= this.#timerAt) return
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    this.#timerAt = at
    if (at === Number.POSITIVE_INFINITY) return
    // Whole milliseconds: Node keeps one timer list per distinct duration.
    this.#timer = setTimeout(this.#onTimer, Math.max(0, Math.ceil(at - this.#now())))
  }

  readonly #onTimer = (): void => {
    this.#timer = undefined
    this.#timerAt = Number.POSITIVE_INFINITY
    const now = this.#now()
    // Timeouts first: they free slots for the probes that are due now.
    for (let e = this.#deadlines.peek(); e !== undefined && e.deadline <= now; e = this.#deadlines.peek()) {
      this.#deadlines.pop()
      const c = e.controller
      if (c === undefined) continue
      this.#timeouts++
      c.abort(timeoutReason())
      this.#finish(e, TIMEOUT_RESULT, now)
    }
    const horizon = now + COALESCE_MS
    for (let e = this.#due.peek(); e !== undefined && e.due <= horizon; e = this.#due.peek()) {
      this.#due.pop()
      if (this.#inFlight < this.#maxInFlight) this.#start(e, now)
      else {
        e.queued = true
        this.#waiting.push(e)
      }
    }
    this.#arm()
  }

  #startWaiting(): void {
    if (this.#waitHead >= this.#waiting.length) return
    let now = -1
    while (this.#inFlight < this.#maxInFlight && this.#waitHead < this.#waiting.length) {
      const e = this.#waiting[this.#waitHead]
      // Cleared so a removed target's entry is not kept alive by the queue.
      this.#waiting[this.#waitHead] = undefined
      this.#waitHead++
      if (e === undefined || e.removed) continue
      e.queued = false
      if (now < 0) now = this.#now()
      this.#start(e, now)
    }
    if (this.#waitHead >= this.#waiting.length) {
      this.#waiting = []
      this.#waitHead = 0
    } else if (this.#waitHead > 1024 && this.#waitHead * 2 > this.#waiting.length) {
      this.#waiting = this.#waiting.slice(this.#waitHead)
      this.#waitHead = 0
    }
  }

  #start(e: Entry, now: number): void {
    this.#lateness[this.#latenessCount % LATENESS_SAMPLES] = Math.max(0, now - e.due)
    this.#latenessCount++
    const t = e.target
    const interval = intervalOf(t)
    // Keep to the grid of due times while we keep up; when more than an interval behind, skip
    // ahead instead of firing a burst of catch-up probes.
    let next = e.due + this.#jittered(interval, t.check.jitter)
    if (next < now) next = now + this.#jittered(interval, t.check.jitter)
    e.nextDue = next
    const seq = ++e.seq
    const controller = new AbortController()
    e.controller = controller
    e.deadline = now + Math.max(1, t.check.timeoutMs)
    this.#deadlines.push(e)
    this.#inFlight++
    let p: Promise<CheckResult>
    try {
      p = this.#run(t, controller.signal)
    } catch (err) {
      p = Promise.reject(err)
    }
    p.then(
      (r) => this.#settled(e, seq, r),
      (err: unknown) => this.#settled(e, seq, thrownResult(err)),
    )
  }

  #settled(e: Entry, seq: number, result: CheckResult): void {
    // Timed out, removed or stopped meanwhile: that probe's outcome was already decided.
    if (e.seq !== seq || e.controller === undefined) return
    if (e.deadlineIndex >= 0) this.#deadlines.removeAt(e.deadlineIndex)
    this.#finish(e, result, this.#now())
    this.#arm()
  }

  #finish(e: Entry, result: CheckResult, now: number): void {
    e.controller = undefined
    this.#inFlight--
    this.#probesDone++
    if (!result.ok) this.#probesFailed++
    this.#record(e, result, now)
    e.due = Math.max(e.nextDue, now)
    this.#due.push(e)
    this.#startWaiting()
  }

  #jittered(interval: number, jitter: number): number {
    const j = Math.min(Math.max(jitter, 0), 0.99)
    return interval * (1 + j * (2 * this.#random() - 1))
  }

  // -------------------------------------------------------------------------------------------
  // Reports

  #record(e: Entry, result: CheckResult, now: number): void {
    const t = e.target
    const { state: h, changed } = applyResult(e.health, result, t.check, now)
    e.health = h
    // Until the first rise/fall decision there is nothing to say: writing "unknown" would
    // overwrite what the previous owner of the target knew, and readers treat no report as up.
    if (h.status === 'unknown') return
    const status: ProbeStatus = {
      up: h.up,
      since: h.since,
      rttMs: h.rttMs,
      lastRttMs: h.lastRttMs,
      error: h.lastError,
      load: h.load,
      at: now,
      expiresAt: now + Math.max(3 * intervalOf(t), this.#minLifetimeMs),
      prober: this.#prober,
    }
    this.#pending.set(t.id, status)
    if (changed) {
      this.#log?.info(
        { target: t.id, up: h.up, error: status.error, vantage: this.#vantage },
        h.up ? 'target is UP' : 'target is DOWN',
      )
      if (changeChannel.hasSubscribers) {
        const msg: ProbeChangeMessage = { vantage: this.#vantage, prober: this.#prober, target: t.id, status }
        changeChannel.publish(msg)
      }
    }
    this.#scheduleFlush(changed)
  }

  #scheduleFlush(urgent: boolean): void {
    if (this.#stopped) return
    if (this.#writing !== undefined) {
      if (urgent) this.#urgentAgain = true
      return
    }
    if (urgent) {
      if (this.#flushImmediate === undefined) {
        this.#flushImmediate = setImmediate(() => {
          this.#flushImmediate = undefined
          void this.#flush()
        })
      }
      return
    }
    if (this.#flushTimer === undefined && this.#flushImmediate === undefined) {
      this.#flushTimer = setTimeout(() => {
        this.#flushTimer = undefined
        void this.#flush()
      }, this.#flushMs)
    }
  }

  #flush(): Promise<void> {
    if (this.#writing !== undefined) return this.#writing
    if (this.#flushTimer !== undefined) clearTimeout(this.#flushTimer)
    if (this.#flushImmediate !== undefined) clearImmediate(this.#flushImmediate)
    this.#flushTimer = undefined
    this.#flushImmediate = undefined
    if (this.#pending.size === 0) return Promise.resolve()
    return this.#write()
  }

  /** One store write of everything pending; failures put the reports back unless newer ones came. */
  #write(): Promise<void> {
    const batch = [...this.#pending]
    this.#pending = new Map()
    this.#urgentAgain = false
    this.#flushes++
    const written = (async () => {
      try {
        await this.#store.writeProbes(this.#vantage, batch)
        if (this.#writeFailing) {
          this.#writeFailing = false
          this.#log?.info({ vantage: this.#vantage, writeErrors: this.#writeErrors }, 'probe report writes recovered')
        }
      } catch (err) {
        this.#writeErrors++
        if (!this.#writeFailing) {
          this.#writeFailing = true
          this.#log?.error({ err, vantage: this.#vantage }, 'writing probe reports failed; retrying with each flush')
        }
        const now = this.#now()
        for (const [id, status] of batch) {
          // Keep the latest report per target: one that arrived during the write wins, a target
          // no longer probed here is dropped, and an expired report is not worth writing.
          if (this.#pending.has(id) || !this.#entries.has(id) || status.expiresAt <= now) continue
          this.#pending.set(id, status)
        }
        this.#urgentAgain = false
      }
    })()
    this.#writing = written.finally(() => {
      this.#writing = undefined
      if (this.#pending.size > 0) this.#scheduleFlush(this.#urgentAgain)
    })
    return this.#writing
  }
}

/** The hysteresis state a new target starts from: a live report's UP/DOWN, or unknown. */
function seeded(prior: ProbeStatus | undefined, now: number): TargetState {
  const fresh = initialState(now)
  if (prior === undefined || prior.expiresAt <= now) return fresh
  return {
    ...fresh,
    status: prior.up ? 'up' : 'down',
    up: prior.up,
    rttMs: prior.rttMs,
    lastRttMs: prior.lastRttMs,
    lastError: prior.error,
    load: prior.load,
    since: prior.since,
  }
}

function intervalOf(t: ProbeTarget): number {
  return Math.max(1, t.check.intervalMs)
}

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
}
