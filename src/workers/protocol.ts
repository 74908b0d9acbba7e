/**
 * @module workers/protocol
 * What crosses the boundary between the main thread and a data-plane worker thread
 * (`serve --workers N`): the settings a worker starts with, and the messages both ways. Everything
 * here is plain data, copied by structured clone; nothing is shared, so a worker answers from its
 * own memory and never waits on the main thread.
 *
 * ```
 *  main (control plane)                          worker i (data plane)
 *  ─ workerData: WorkerSettings (+ health) ───→  load zones, open geo, listen with SO_REUSEPORT
 *  ←──────────────────────────────────────────── ready { addresses, rejected, zones } | failed { message }
 *  ─ health { SnapshotData } (every change) ──→  answerer.health.replace(...)
 *  ─ reload { reason } (SIGHUP) ──────────────→  server.reload(reason)
 *  ─ counts { id } (at scrape time) ──────────→
 *  ←──────────────────────────────────────────── counts { id, counts, tcp, udp, rrl }
 *  ─ stop { graceMs } (SIGTERM) ──────────────→  close listeners, finish TCP answers
 *  ←──────────────────────────────────────────── stopped { final counts }, then the thread ends
 * ```
 */

import type { RrlConfig, RrlStats } from '../dns/rrl.ts'
import type { SnapshotData } from '../health/state.ts'
import type { LOG_LEVELS } from '../log.ts'
import type { CountsUpdate, QueryCountsData } from '../ops/metrics.ts'
import type { ListenAddress } from '../server/index.ts'
import type { TcpLimits, TcpStats } from '../server/tcp.ts'
import type { UdpIo, UdpStats } from '../server/udp.ts'

/** The data-plane part of the serve settings, and the health view to answer from at first. */
export interface WorkerSettings {
  /** Slot number, 0..N-1; a restarted worker keeps its slot (and its metrics label). */
  readonly index: number
  readonly zones: string
  /** Concrete ports: a port 0 asked for is resolved by worker 0 before the others start. */
  readonly listen: readonly ListenAddress[]
  readonly watch: boolean
  /**
   * Answer only with every zone file loaded: a handover's fresh worker that cannot load one fails
   * before it listens, so no query sees a zone set with a zone missing. First starts and restarts
   * after a crash answer with what loads, like the single-thread server.
   */
  readonly complete: boolean
  /**
   * A handover's fresh worker: the number its sockets get in each address's SO_REUSEPORT group
   * (one per worker answering when it was started), which it steers every datagram to once it
   * listens, so the worker it replaces closes an empty socket. Undefined otherwise.
   */
  readonly steerTo: number | undefined
  readonly tcp: TcpLimits
  readonly maxUdpSize: number
  readonly udpIo: UdpIo
  /** Bytes; a Buffer arrives as a plain Uint8Array after structured clone. */
  readonly nsid: Uint8Array | undefined
  readonly chaosId: string | undefined
  readonly chaosVersion: string | undefined
  readonly geoip: readonly string[]
  readonly rrl: RrlConfig | undefined
  readonly logLevel: (typeof LOG_LEVELS)[number]
  readonly queryLogSample: number
  /** The main thread's health view when the worker was created; later changes come as messages. */
  readonly health: SnapshotData
}

export type ToWorker =
  | { readonly type: 'health'; readonly data: SnapshotData }
  | { readonly type: 'reload'; readonly reason: string }
  | { readonly type: 'counts'; readonly id: number }
  | { readonly type: 'stop'; readonly graceMs: number }

/** A worker's cumulative figures since it started; the main thread sums them over workers. */
export interface WorkerCounts {
  readonly counts: QueryCountsData
  readonly tcp: TcpStats
  readonly udp: UdpStats
  readonly rrl: Pick<RrlStats, 'sent' | 'dropped' | 'slipped'>
}

/** The same figures as a worker sends them: query counts as a `CountsUpdate` (see ops/metrics). */
export interface WorkerReport {
  readonly update: CountsUpdate
  readonly tcp: TcpStats
  readonly udp: UdpStats
  readonly rrl: Pick<RrlStats, 'sent' | 'dropped' | 'slipped'>
}

export type FromWorker =
  | {
      readonly type: 'ready'
      readonly addresses: readonly ListenAddress[]
      /** Zone files it could not load: a handover keeps the old thread then (it has their last good version). */
      readonly rejected: number
      /** What it serves (ZoneSet.fingerprint): after a lazy handover the main thread compares its own. */
      readonly zones: string
    }
  | { readonly type: 'failed'; readonly message: string }
  | ({ readonly type: 'counts'; readonly id: number } & WorkerReport)
  | ({ readonly type: 'stopped' } & WorkerReport)
