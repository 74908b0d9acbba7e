/**
 * @module workers/worker
 * Entry point of one data-plane worker thread of `serve --workers N` (started by `WorkerPool`).
 * It is a whole DNS server minus the control plane: its own zone set (loaded and watched like the
 * main thread's), Answerer, geo database, RRL table and UDP + TCP listeners bound with
 * SO_REUSEPORT on the configured addresses. Health comes from the main thread as snapshots; the
 * query path reads the last one it was given and never waits for a message.
 *
 * Loaded by Node as `.ts` (type stripping) or as the compiled `.js`: erasable syntax only.
 */

import { type MessagePort, parentPort, workerData } from 'node:worker_threads'
import { ResponseRateLimiter } from '../dns/rrl.ts'
import { GeoDatabase } from '../geo/reader.ts'
import { HealthSnapshot, HealthStore } from '../health/state.ts'
import { createLogger } from '../log.ts'
import { compactHeap } from '../ops/heap.ts'
import { NO_UPDATE, QueryCounters } from '../ops/metrics.ts'
import { Answerer } from '../query/handle.ts'
import { type RunningServer, startServer } from '../server/index.ts'
import { NO_TCP_STATS } from '../server/tcp.ts'
import { NO_UDP_STATS } from '../server/udp.ts'
import type { FromWorker, ToWorker, WorkerReport, WorkerSettings } from './protocol.ts'

function mainPort(): MessagePort {
  if (parentPort === null) throw new Error('workers/worker.ts runs as a worker thread of gslb serve --workers N')
  return parentPort
}
const port = mainPort()
const settings = workerData as WorkerSettings
const log = createLogger(settings.logLevel).child({ worker: settings.index })
const send = (m: FromWorker): void => port.postMessage(m)

const health = new HealthStore()
health.replace(HealthSnapshot.fromData(settings.health))
const rrl = settings.rrl ? new ResponseRateLimiter(settings.rrl) : undefined
let counters: QueryCounters | undefined
let server: RunningServer | undefined
let geo: GeoDatabase | undefined
let stopping: Promise<void> | undefined
/** A reload asked for while the first load was under way: it may have read the files too early. */
let reloadPending: string | undefined
/** Zone files the startup load rejected (reported with `ready`). */
let rejected = 0

/** Everything since start; the query counts' labels only once (QueryCounters.update). */
function figures(): WorkerReport {
  const r = rrl?.stats()
  return {
    update: counters?.update() ?? NO_UPDATE,
    tcp: server?.tcpStats() ?? NO_TCP_STATS,
    udp: server?.udpStats() ?? NO_UDP_STATS,
    rrl: { sent: r?.sent ?? 0, dropped: r?.dropped ?? 0, slipped: r?.slipped ?? 0 },
  }
}

async function start(): Promise<void> {
  // A handover's fresh worker loads at normal priority, beside the one answering. At SCHED_IDLE
  // (tried) the answering worker waited up to 100-195 ms at times on one shared core: the idle
  // thread sat preempted inside process-wide locks while V8's helper thread did its GC work at
  // normal priority. The typical gap was shorter (21-26 against 29-38 ms), the worst far longer.
  try {
    geo = await GeoDatabase.open(settings.geoip, log)
    geo.watch()
    const answerer = new Answerer({
      nsid: settings.nsid === undefined ? undefined : Buffer.from(settings.nsid),
      chaos: { id: settings.chaosId, version: settings.chaosVersion },
      maxUdpSize: settings.maxUdpSize,
      geo,
      health,
    })
    const count = new QueryCounters(answerer)
    counters = count
    server = await startServer({
      zonesDir: settings.zones,
      listen: settings.listen,
      log,
      watch: settings.watch,
      tcp: settings.tcp,
      answerer,
      observe: (query, response, transport) => count.count(query, response, transport),
      queryLogSample: settings.queryLogSample,
      reusePort: true,
      udpIo: settings.udpIo,
      // As on the main thread (ops/heap): the load's garbage would otherwise stay committed.
      beforeListen: () => {
        if (settings.complete && rejected > 0) throw new Error(`${rejected} zone file(s) rejected`)
        compactHeap()
      },
      logZones: false,
      onReloadOutcome: (files, reason) => {
        if (reason === 'startup') rejected = files.filter((f) => f.status === 'rejected').length
      },
      ...(rrl ? { rrl } : {}),
    })
    if (settings.steerTo !== undefined) {
      const steered = server.steerUdp(settings.steerTo)
      log.debug({ steered, index: settings.steerTo }, 'UDP steered to the fresh worker')
    }
    if (reloadPending !== undefined) server.reload(reloadPending)
    if (stopping === undefined)
      send({ type: 'ready', addresses: server.addresses, rejected, zones: server.zones.fingerprint() })
  } catch (err) {
    // The error itself may not survive structured clone (class, code); its message does.
    send({ type: 'failed', message: (err as Error).message })
    geo?.close()
    port.close()
  }
}

async function stop(graceMs: number): Promise<void> {
  await server?.close(graceMs)
  geo?.close()
  // Its last figures, counted after the listeners closed: a handed-over thread's queries up to its
  // very end stay in the totals.
  send({ type: 'stopped', ...figures() })
  // With the port closed and the listeners gone nothing keeps the thread alive: it ends by itself.
  port.close()
}

// Listening from the first line, before any await: the main thread may post health changes, a
// reload or a stop while the zones are still loading, and none of them may be lost.
port.on('message', (m: ToWorker) => {
  switch (m.type) {
    case 'health':
      health.replace(HealthSnapshot.fromData(m.data))
      break
    case 'reload':
      if (server === undefined) reloadPending = m.reason
      else void server.reloadLive(m.reason)
      break
    case 'counts':
      send({ type: 'counts', id: m.id, ...figures() })
      break
    case 'stop':
      stopping ??= startup.then(() => stop(m.graceMs))
      break
  }
})

// A stop that arrives while starting waits for the start, then closes what it opened.
const startup = start()
