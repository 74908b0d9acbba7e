/**
 * @module workers/pool
 * The main thread's side of `serve --workers N`: starts N data-plane worker threads
 * (`workers/worker.ts`), keeps each one's health view equal to the main thread's, forwards zone
 * reloads, gathers their query counts for `/metrics`, restarts a worker that dies, and stops them
 * all gracefully. The main thread itself answers no DNS in this mode (see `serve.ts`).
 *
 * The kernel spreads queries over the workers' SO_REUSEPORT sockets by flow hash, so no thread
 * hands queries to another: each worker's query path is as short as the single-thread server's.
 *
 * Zone changes reach the workers one of two ways (`--reload-mode`):
 * - in place: each worker watches the zone directory and reloads in slices between queries, as
 *   the single-thread server does;
 * - handover: the main thread, once its own reload has applied a change, starts a fresh worker
 *   per slot. It loads the zone set on its own V8 heap, joins the listen addresses with
 *   SO_REUSEPORT and reports ready; only then is the old one stopped (its open TCP connections
 *   get the grace period). A thread that answers never loads zones, so none of the loading's
 *   garbage collection lands between its queries. Slots are replaced one after the other, so at
 *   most one extra copy of the zone set is held at a time. When the fresh worker cannot load
 *   every file (a broken edit), it is dropped and the old one reloads in place instead, keeping
 *   the last good version of what it could not load, as an in-place reload does. With one slot
 *   the pool may start empty (`beside`): the main thread answers until `takeOver()` starts its
 *   worker the same way, ahead of the main thread's own reload (serve.ts).
 */

import { createSocket } from 'node:dgram'
import { createServer, isIPv6 } from 'node:net'
import { Worker } from 'node:worker_threads'
import type { ServeConfig } from '../config/server-config.ts'
import { addRrlFigures, NO_RRL_FIGURES } from '../dns/rrl.ts'
import { GslbError } from '../errors.ts'
import type { HealthStore } from '../health/state.ts'
import type { Logger } from '../log.ts'
import {
  CountsMirror,
  mergeCounts,
  NO_COUNTS,
  type QueryCountsData,
  totalQueries,
  type WorkerFigures,
} from '../ops/metrics.ts'
import type { ListenAddress } from '../server/index.ts'
import { addTcpStats, NO_TCP_STATS, type TcpStats } from '../server/tcp.ts'
import { addUdpStats, NO_UDP_STATS, type UdpStats } from '../server/udp.ts'
import type { FromWorker, ToWorker, WorkerCounts, WorkerReport, WorkerSettings } from './protocol.ts'

/** A worker could not start (zones, geo database or listen addresses); the server does not start. */
export class WorkerStartError extends GslbError {
  override readonly code = 'GSLB_ERR_WORKER_START'
}

/** Run from sources the entry is the `.ts` file (type stripping); after `npm run build`, the `.js`. */
const ENTRY = new URL(import.meta.url.endsWith('.ts') ? './worker.ts' : './worker.js', import.meta.url)

/** First restart delay after a crash; doubled per crash in a row, up to the maximum. */
const RESTART_MIN_MS = 100
const RESTART_MAX_MS = 30_000
/** A worker that ran this long before dying is not crash-looping: its next restart is quick again. */
const STABLE_MS = 60_000
/** How long a scrape waits for a worker's counts before using the last ones it gave. */
const PULL_TIMEOUT_MS = 1_000
/**
 * Counts are also fetched this often between scrapes, so a worker that crashes takes at most this
 * much of its counting with it (a worker's counts live in its own memory). One message and a copy
 * of its totals per worker per interval: noise next to the queries it answers.
 */
const PULL_EVERY_MS = 1_000
/** Extra time, past the TCP grace period, before a stopping worker is terminated. */
const STOP_MARGIN_MS = 2_000
/** What a handed-over worker's open TCP connections get to finish (clients reconnect after). */
export const HANDOVER_GRACE_MS = 5_000

const NO_FIGURES: WorkerCounts = Object.freeze({
  counts: NO_COUNTS,
  tcp: NO_TCP_STATS,
  udp: NO_UDP_STATS,
  rrl: NO_RRL_FIGURES,
})

/** A worker's last report, its query counts rebuilt from its incarnation's mirror when read. */
class Reported implements WorkerCounts {
  readonly #mirror: CountsMirror
  readonly tcp: TcpStats
  readonly udp: UdpStats
  readonly rrl: WorkerCounts['rrl']

  constructor(mirror: CountsMirror, r: WorkerReport) {
    mirror.apply(r.update)
    this.#mirror = mirror
    this.tcp = r.tcp
    this.udp = r.udp
    this.rrl = r.rrl
  }

  get counts(): QueryCountsData {
    return this.#mirror.data()
  }
}

/**
 * An ended incarnation's figures, kept for good: open connections closed with it. Its query
 * counts are only read when the slot's are (`#retired`): a handover ends a worker on the thread
 * that shares the cores with the fresh one, and merging ~70k series then was a 20-30 ms burst of
 * CPU beside the first queries the fresh worker answered.
 */
function ended(f: WorkerCounts): WorkerCounts {
  return {
    get counts() {
      return f.counts
    },
    tcp: { ...f.tcp, connections: 0 },
    udp: f.udp,
    rrl: f.rrl,
  }
}

/** Sum of two workers' (or incarnations') figures; open connections only count for live ones. */
function add(a: WorkerCounts, b: WorkerCounts, counts = true): WorkerCounts {
  return {
    // The connection, datagram and RRL figures alone (`#total`) need no merge of ~70k series.
    counts: counts ? mergeCounts([a.counts, b.counts]) : NO_COUNTS,
    tcp: addTcpStats(a.tcp, b.tcp),
    udp: addUdpStats(a.udp, b.udp),
    rrl: addRrlFigures(a.rrl, b.rrl),
  }
}

/**
 * Fails with EADDRINUSE when another process already holds an address. SO_REUSEPORT would let a
 * second `gslb serve --workers N` of the same user join the first one's sockets and share its
 * traffic without a word; an ordinary bind first, released at once, keeps that an error.
 */
export async function assertFree(addresses: readonly ListenAddress[]): Promise<void> {
  for (const { host, port } of addresses) {
    if (port === 0) continue
    const udp = createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4', ipv6Only: isIPv6(host) })
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject)
      udp.bind(port, host, () => resolve())
    }).finally(() => new Promise<void>((r) => udp.close(() => r())).catch(() => {}))
    const tcp = createServer()
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject)
      tcp.listen({ host, port, ipv6Only: isIPv6(host) }, () => resolve())
    }).finally(() => new Promise<void>((r) => tcp.close(() => r())))
  }
}

interface Slot {
  readonly index: number
  worker: Worker | undefined
  ready: boolean
  startedAt: number
  restarts: number
  backoffMs: number
  timer: NodeJS.Timeout | undefined
  /** Why the current incarnation failed (to start), when it said so before exiting. */
  failure: string | undefined
  /** The current incarnation's figures as of the last pull. */
  last: WorkerCounts
  /**
   * Earlier incarnations' figures (their last pull), so a restart does not make counters go back.
   * What a crashed worker counted after its last pull (at most PULL_EVERY_MS ago) is lost with it.
   */
  retired: WorkerCounts
  /** Incarnations ended since `retired` was last read, added to it then (`#retired`). */
  ended: WorkerCounts[]
  /** Handed-over incarnations still stopping: their last pulled figures, until they report final ones. */
  retiring: Map<Worker, WorkerCounts>
  /** Settles the start of the current incarnation (only while `start()` or `takeOver()` waits for it). */
  starting: { resolve: (r: Started) => void; reject: (e: Error) => void } | undefined
  /** Resolves when the current incarnation has exited (only while `close()` waits for it). */
  exited: (() => void) | undefined
}

/** What a worker reported when it began answering. */
interface Started {
  readonly addresses: readonly ListenAddress[]
  /** What it serves (ZoneSet.fingerprint). */
  readonly zones: string
}

export interface PoolOptions {
  readonly count: number
  readonly cfg: ServeConfig
  /** The main thread's health store: the source of truth every worker follows. */
  readonly health: HealthStore
  readonly log: Logger
  /** Zone changes by handover (`replace()`), the workers watching nothing; else each reloads in place. */
  readonly handover?: boolean | undefined
}

export class WorkerPool {
  readonly #opts: PoolOptions
  readonly #slots: Slot[]
  readonly #pending = new Map<number, () => void>()
  #addresses: readonly ListenAddress[]
  #nextId = 0
  #closing = false
  #healthQueued = false
  #pullTimer: NodeJS.Timeout | undefined
  readonly #unsubscribe: () => void
  /** Fresh workers loading for a handover: they get health changes too, and are stopped on close. */
  readonly #candidates = new Set<Worker>()
  /** Per worker incarnation: the labels of its query counts, sent once (ops/metrics CountsMirror). */
  readonly #mirrors = new WeakMap<Worker, CountsMirror>()
  /** Handed-over workers still stopping, and what resolves when each has exited. */
  readonly #leaving = new Map<Worker, Promise<void>>()
  #replacing: Promise<void> | undefined
  /**
   * Sockets of the main thread in each address's SO_REUSEPORT group, ahead of the workers' (lazy
   * handover: 1 until `takeOver()` is done, see `beside`).
   */
  #mainSockets = 0
  /** A change applied while a handover ran: one more round follows it. */
  #replaceAgain: string | undefined

  private constructor(opts: PoolOptions) {
    this.#opts = opts
    this.#addresses = opts.cfg.listen
    this.#slots = Array.from({ length: opts.count }, (_, index) => ({
      index,
      worker: undefined,
      ready: false,
      startedAt: 0,
      restarts: 0,
      backoffMs: RESTART_MIN_MS,
      timer: undefined,
      failure: undefined,
      last: NO_FIGURES,
      retired: NO_FIGURES,
      ended: [],
      retiring: new Map(),
      starting: undefined,
      exited: undefined,
    }))
    // Several replaces in one turn of the event loop (a store refresh, then a rebuild) go out as one
    // message per worker, carrying the latest view.
    this.#unsubscribe = opts.health.subscribe(() => {
      if (this.#healthQueued) return
      this.#healthQueued = true
      queueMicrotask(() => {
        this.#healthQueued = false
        this.#broadcastHealth()
      })
    })
  }

  /**
   * Starts every worker and resolves once all of them answer. With a port 0 among the addresses,
   * worker 0 binds first and the others join the ports it got. Any worker failing to start stops
   * the others and rejects with a WorkerStartError.
   */
  static async start(opts: PoolOptions): Promise<WorkerPool> {
    await assertFree(opts.cfg.listen)
    const pool = new WorkerPool(opts)
    try {
      const [first, ...rest] = pool.#slots
      if (opts.cfg.listen.some((a) => a.port === 0)) {
        pool.#addresses = (await pool.#startAndWait(first!)).addresses
        await Promise.all(rest.map((s) => pool.#startAndWait(s)))
      } else {
        await Promise.all(pool.#slots.map((s) => pool.#startAndWait(s)))
      }
    } catch (err) {
      await pool.close(0)
      throw err
    }
    pool.#pullTimer = setInterval(() => void pool.pull(), PULL_EVERY_MS).unref()
    return pool
  }

  /**
   * A pool of one slot with no worker yet, for a main thread that answers on `addresses` itself
   * (bound with SO_REUSEPORT) until `takeOver()` moves answering to the worker: lazy handover,
   * see serve.ts. Nothing runs until then.
   */
  static beside(opts: PoolOptions, addresses: readonly ListenAddress[]): WorkerPool {
    const pool = new WorkerPool({ ...opts, count: 1 })
    pool.#addresses = addresses
    pool.#mainSockets = 1
    return pool
  }

  /**
   * Starts the worker of a `beside` pool as a handover's fresh worker: it loads every file (one
   * rejected fails it, before it listens), joins the main thread's sockets and steers each group's
   * datagrams to its own, so the main thread can close its listeners next without losing a query.
   * Resolves once it answers, with what it serves (ZoneSet.fingerprint); rejects with a
   * WorkerStartError when it could not start (the pool is then closed).
   */
  async takeOver(): Promise<string> {
    try {
      const started = await this.#startAndWait(this.#slots[0]!, true)
      this.#mainSockets = 0
      this.#pullTimer = setInterval(() => void this.pull(), PULL_EVERY_MS).unref()
      return started.zones
    } catch (err) {
      await this.close(0)
      throw err
    }
  }

  /** The addresses the workers answer on (ports resolved). */
  get addresses(): readonly ListenAddress[] {
    return this.#addresses
  }

  /** Workers answering now. */
  get answering(): number {
    return this.#slots.filter((s) => s.ready).length
  }

  /** Every worker reloads its zone set in place (SIGHUP; with handover, the fallback). */
  reload(reason: string): void {
    this.#broadcast({ type: 'reload', reason })
  }

  /**
   * Hands every slot over to a fresh worker that loads the zone set as it is now (see the module
   * comment). Calls while one runs share one more round after it. Resolves when done; never rejects
   * (a slot that cannot be handed over reloads in place and says why in the log).
   */
  replace(reason: string): Promise<void> {
    if (this.#replacing !== undefined) {
      this.#replaceAgain = reason
      return this.#replacing
    }
    const run = (async () => {
      let why: string | undefined = reason
      while (why !== undefined && !this.#closing) {
        this.#replaceAgain = undefined
        for (const slot of this.#slots) {
          if (this.#closing) break
          await this.#replaceSlot(slot, why)
        }
        why = this.#replaceAgain
      }
    })()
    this.#replacing = run
    return run.finally(() => {
      this.#replacing = undefined
    })
  }

  async #replaceSlot(slot: Slot, reason: string): Promise<void> {
    const log = this.#opts.log
    const old = slot.worker
    // A slot that is not answering (restarting after a crash) loads the current files when it comes back.
    if (old === undefined || !slot.ready) return
    const t0 = performance.now()
    log.info({ worker: slot.index, reason }, 'a fresh worker loads the zones to take over answering')
    const fresh = this.#newWorker(slot, true)
    this.#candidates.add(fresh)
    let gone = false
    let onMessage: (m: FromWorker) => void = () => {}
    let onError: (err: Error) => void = () => {}
    let onExit: (code: number) => void = () => {}
    const outcome = await new Promise<{ readonly rejected: number } | { readonly failed: string }>((resolve) => {
      onMessage = (m) => {
        if (m.type === 'ready') resolve({ rejected: m.rejected })
        else if (m.type === 'failed') resolve({ failed: m.message })
      }
      onError = (err) => resolve({ failed: err.message })
      onExit = (code) => {
        gone = true
        resolve({ failed: `the thread exited with code ${code}` })
      }
      fresh.on('message', onMessage).on('error', onError).on('exit', onExit)
    })
    this.#candidates.delete(fresh)
    fresh.off('message', onMessage).off('error', onError).off('exit', onExit)
    const problem =
      'failed' in outcome
        ? outcome.failed
        : outcome.rejected > 0
          ? `${outcome.rejected} zone file(s) rejected`
          : this.#closing
            ? 'shutting down'
            : slot.worker !== old || !slot.ready
              ? 'the old worker stopped meanwhile'
              : undefined
    if (problem !== undefined) {
      // Its sockets may already take traffic: stop it like any worker, not mid-answer.
      if ('failed' in outcome) {
        if (!gone) void fresh.terminate()
      } else this.#retire(slot, fresh, NO_FIGURES, 0)
      if (!this.#closing && slot.worker === old) {
        log.warn({ worker: slot.index, reason, problem }, 'zone handover not possible; reloading in place')
        this.#post(old, { type: 'reload', reason })
      }
      return
    }
    // Swap: the fresh worker is the slot's from now on; the old one's figures wait for its final ones.
    const previous = slot.last
    slot.worker = fresh
    slot.ready = true
    slot.startedAt = Date.now()
    slot.failure = undefined
    slot.last = NO_FIGURES
    this.#listen(slot, fresh)
    this.#retire(slot, old, previous, HANDOVER_GRACE_MS)
    log.info(
      { worker: slot.index, reason, ms: Math.round(performance.now() - t0) },
      'zones handed over to a fresh worker',
    )
  }

  /**
   * Stops a worker that no longer belongs to its slot (handed over, or a dropped candidate), keeping
   * its figures in the slot's totals: the last pulled ones until it reports its final ones.
   */
  #retire(slot: Slot, w: Worker, figures: WorkerCounts, graceMs: number): void {
    slot.retiring.set(w, figures)
    const settle = (final: WorkerCounts | undefined): void => {
      const f = final ?? slot.retiring.get(w)
      if (f === undefined) return
      slot.retiring.delete(w)
      slot.ended.push(ended(f))
    }
    w.on('message', (m: FromWorker) => {
      if (m.type === 'stopped') settle(this.#reported(w, m))
      else if (m.type === 'counts') {
        if (slot.retiring.has(w)) slot.retiring.set(w, this.#reported(w, m))
        this.#pending.get(m.id)?.()
        this.#pending.delete(m.id)
      }
    })
    const exited = new Promise<void>((resolve) => {
      w.once('exit', () => {
        clearTimeout(deadline)
        settle(undefined)
        this.#leaving.delete(w)
        resolve()
      })
    })
    this.#leaving.set(w, exited)
    this.#post(w, { type: 'stop', graceMs })
    const deadline = setTimeout(() => {
      this.#opts.log.warn({ worker: slot.index }, 'handed-over worker did not stop in time; terminating it')
      void w.terminate()
    }, graceMs + STOP_MARGIN_MS)
  }

  /**
   * Asks every worker for its counts (at scrape time) and returns them, earlier incarnations
   * included; a worker that does not reply in time contributes the counts it gave last.
   */
  async pull(): Promise<QueryCountsData[]> {
    await Promise.all(this.#slots.map((s) => this.#ask(s)))
    return this.#slots.flatMap((s) => [
      this.#retired(s).counts,
      s.last.counts,
      ...[...s.retiring.values()].map((f) => f.counts),
    ])
  }

  /** Per-slot figures as of the last pull. */
  figures(): WorkerFigures[] {
    return this.#slots.map((s) => ({
      worker: s.index,
      queries:
        totalQueries(this.#retired(s).counts) + totalQueries(s.last.counts) + totalQueries(this.#retiringSum(s).counts),
      restarts: s.restarts,
      up: s.ready,
    }))
  }

  /** TCP figures summed over the workers, as of the last pull. */
  tcpStats(): TcpStats {
    return this.#total().tcp
  }

  /** UDP datagram figures summed over the workers, as of the last pull. */
  udpStats(): UdpStats {
    return this.#total().udp
  }

  /** RRL decisions summed over the workers, as of the last pull (each worker limits on its own). */
  rrlStats(): { sent: number; dropped: number; slipped: number } {
    return this.#total().rrl
  }

  /** Stops every worker: listeners close, open TCP connections get `graceMs` to take their answers. */
  async close(graceMs = 5_000): Promise<void> {
    this.#closing = true
    clearInterval(this.#pullTimer)
    this.#unsubscribe()
    // A fresh worker still loading has answered nothing yet: the handover drops it (shutting down).
    for (const c of this.#candidates) this.#post(c, { type: 'stop', graceMs: 0 })
    await this.#replacing
    await Promise.all([...this.#leaving.values()])
    await Promise.all(
      this.#slots.map(async (s) => {
        clearTimeout(s.timer)
        const w = s.worker
        if (w === undefined) return
        const exited = new Promise<void>((r) => {
          s.exited = r
        })
        this.#post(w, { type: 'stop', graceMs })
        const deadline = setTimeout(() => {
          this.#opts.log.warn({ worker: s.index }, 'worker did not stop in time; terminating it')
          void w.terminate()
        }, graceMs + STOP_MARGIN_MS)
        await exited
        clearTimeout(deadline)
      }),
    )
  }

  /** TCP, UDP and RRL figures over every incarnation (`counts` left empty). */
  #total(): WorkerCounts {
    let sum = NO_FIGURES
    for (const s of this.#slots) {
      sum = add(add(sum, s.retired, false), s.last, false)
      for (const f of s.ended) sum = add(sum, f, false)
      for (const f of s.retiring.values()) sum = add(sum, f, false)
    }
    return sum
  }

  /** Everything the slot's ended incarnations counted, merged now if some ended since last time. */
  #retired(s: Slot): WorkerCounts {
    for (const f of s.ended.splice(0)) s.retired = add(s.retired, f)
    return s.retired
  }

  #retiringSum(s: Slot): WorkerCounts {
    let sum = NO_FIGURES
    for (const f of s.retiring.values()) sum = add(sum, f)
    return sum
  }

  #startAndWait(slot: Slot, complete = false): Promise<Started> {
    return new Promise((resolve, reject) => {
      slot.starting = { resolve, reject }
      this.#spawn(slot, complete)
    })
  }

  #spawn(slot: Slot, complete = false): void {
    const w = this.#newWorker(slot, complete)
    slot.worker = w
    slot.ready = false
    slot.failure = undefined
    slot.startedAt = Date.now()
    this.#listen(slot, w)
  }

  /** The slot's handlers on a worker that is (now) its current one. */
  #listen(slot: Slot, w: Worker): void {
    w.on('message', (m: FromWorker) => this.#onMessage(slot, w, m))
    w.on('error', (err) => {
      if (slot.worker !== w) return
      slot.failure ??= err.message
      this.#opts.log.error({ err, worker: slot.index }, 'worker thread failed')
    })
    w.on('exit', (code) => this.#onExit(slot, w, code))
  }

  #newWorker(slot: Slot, complete = false): Worker {
    const cfg = this.#opts.cfg
    const settings: WorkerSettings = {
      index: slot.index,
      zones: cfg.zones,
      listen: this.#addresses,
      // With handover the main thread watches and decides; a worker never reloads on its own.
      watch: this.#opts.handover === true ? false : cfg.watch,
      complete,
      // Sockets join a group at the end: after those of every thread answering now.
      steerTo: complete ? this.#mainSockets + this.#slots.filter((s) => s.ready).length : undefined,
      tcp: cfg.tcp,
      maxUdpSize: cfg.maxUdpSize,
      udpIo: cfg.udpIo,
      nsid: cfg.nsid,
      chaosId: cfg.chaosId,
      chaosVersion: cfg.chaosVersion,
      geoip: cfg.geoip,
      rrl: cfg.rrl,
      logLevel: cfg.logLevel,
      queryLogSample: cfg.queryLogSample,
      health: this.#opts.health.current.data(),
    }
    return new Worker(ENTRY, { workerData: settings, name: `gslb-worker-${slot.index}` })
  }

  #onMessage(slot: Slot, w: Worker, m: FromWorker): void {
    if (slot.worker !== w) return
    switch (m.type) {
      case 'ready':
        slot.ready = true
        // The view may have changed while the worker was loading zones; it started from the one
        // of its creation, and every change since was posted after that, in order. Nothing to do.
        if (slot.starting) {
          slot.starting.resolve({ addresses: m.addresses, zones: m.zones })
          slot.starting = undefined
        } else {
          this.#opts.log.info({ worker: slot.index, restarts: slot.restarts }, 'worker restarted and answering')
        }
        break
      case 'failed':
        slot.failure = m.message
        // It has closed what it opened; make sure the thread ends so the exit handler runs.
        void w.terminate()
        break
      case 'counts':
        slot.last = this.#reported(w, m)
        this.#pending.get(m.id)?.()
        this.#pending.delete(m.id)
        break
      case 'stopped':
        // Its final figures: what it counted after the last pull stays in the totals.
        slot.last = this.#reported(w, m)
        break
    }
  }

  #onExit(slot: Slot, w: Worker, code: number): void {
    if (slot.worker !== w) return
    slot.worker = undefined
    slot.ready = false
    slot.ended.push(ended(slot.last))
    slot.last = NO_FIGURES
    if (slot.exited) {
      slot.exited()
      slot.exited = undefined
    }
    if (slot.starting) {
      const why = slot.failure ?? `the thread exited with code ${code}`
      slot.starting.reject(new WorkerStartError(`worker ${slot.index} could not start: ${why}`))
      slot.starting = undefined
      return
    }
    if (this.#closing) return
    // A crash outside the query path (the query path turns its own bugs into SERVFAIL). The other
    // workers keep answering; this slot comes back after a delay that grows while it keeps dying.
    const lived = Date.now() - slot.startedAt
    if (lived >= STABLE_MS) slot.backoffMs = RESTART_MIN_MS
    const delay = slot.backoffMs
    slot.backoffMs = Math.min(slot.backoffMs * 2, RESTART_MAX_MS)
    slot.restarts++
    this.#opts.log.error(
      { worker: slot.index, code, livedMs: lived, restartInMs: delay, reason: slot.failure },
      'worker thread stopped unexpectedly; restarting it',
    )
    slot.timer = setTimeout(() => {
      slot.timer = undefined
      if (!this.#closing) this.#spawn(slot)
    }, delay)
  }

  #reported(w: Worker, r: WorkerReport): WorkerCounts {
    let mirror = this.#mirrors.get(w)
    if (mirror === undefined) {
      mirror = new CountsMirror()
      this.#mirrors.set(w, mirror)
    }
    return new Reported(mirror, r)
  }

  #ask(slot: Slot): Promise<void> {
    const w = slot.worker
    if (w === undefined) return Promise.resolve()
    const id = this.#nextId++
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        resolve()
      }, PULL_TIMEOUT_MS)
      this.#pending.set(id, () => {
        clearTimeout(timer)
        resolve()
      })
      this.#post(w, { type: 'counts', id })
    })
  }

  #broadcastHealth(): void {
    if (this.#closing) return
    const m: ToWorker = { type: 'health', data: this.#opts.health.current.data() }
    this.#broadcast(m)
    // A fresh worker started from the view of its creation; the changes since follow in order.
    for (const c of this.#candidates) this.#post(c, m)
  }

  #broadcast(m: ToWorker): void {
    for (const s of this.#slots) if (s.worker !== undefined) this.#post(s.worker, m)
  }

  #post(w: Worker, m: ToWorker): void {
    w.postMessage(m)
  }
}
