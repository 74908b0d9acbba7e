/**
 * @module server
 * Composes a running DNS server: zone set, answerer, UDP and TCP listeners on every address, live
 * reload (SIGHUP and file changes, wired by the caller or `watch`) and graceful shutdown. With no
 * listen addresses it is only the zone set and its reloads: the main thread of `serve --workers N`,
 * which needs the table for probes, health and the admin endpoint while worker threads answer.
 */

import { type FSWatcher, watch } from 'node:fs'
import { type FileOutcome, ZoneSet } from '../config/zone-set.ts'
import { nameFromWire, nameToString } from '../dns/name.ts'
import type { ResponseRateLimiter } from '../dns/rrl.ts'
import { typeName } from '../dns/types.ts'
import { GslbError } from '../errors.ts'
import type { Logger } from '../log.ts'
import { type AnswerConfig, Answerer } from '../query/handle.ts'
import type { SliceStats } from '../zone/cooperative.ts'
import { NO_OBSERVER, type QueryObserver } from './observer.ts'
import {
  addTcpStats,
  DEFAULT_TCP_LIMITS,
  listenTcp,
  NO_TCP_STATS,
  type TcpLimits,
  type TcpListener,
  type TcpStats,
} from './tcp.ts'
import { addUdpStats, listenUdp, NO_UDP_STATS, type UdpIo, type UdpListener, type UdpStats } from './udp.ts'

/** How long a reload took; `slices` for a live one in slices (what it held the event loop for). */
export interface ReloadTiming {
  readonly ms: number
  readonly slices: Readonly<SliceStats> | undefined
}

export interface ListenAddress {
  readonly host: string
  /** 0 picks a free port, the same one for UDP and TCP. */
  readonly port: number
}

export interface ServerOptions {
  readonly zonesDir: string
  readonly listen: readonly ListenAddress[]
  readonly answer?: AnswerConfig
  /** An Answerer made by the caller, who shares it with its observer (metrics); else one from `answer`. */
  readonly answerer?: Answerer
  readonly tcp?: Partial<TcpLimits>
  /** Response rate limiting for UDP answers; none by default. */
  readonly rrl?: ResponseRateLimiter | undefined
  readonly log: Logger
  readonly observe?: QueryObserver
  /** Log this fraction (0..1) of answered queries, one JSON line each (`--query-log-sample`); default 0. */
  readonly queryLogSample?: number
  /** Watch the zones directory and reload on change (default true). */
  readonly watch?: boolean
  /** Called after a reload changed the served zones (the prober and health view follow). */
  readonly onZonesChanged?: () => void
  /**
   * Called with every file's outcome after each reload, the startup load included, and how long
   * it took (metrics).
   */
  readonly onReloadOutcome?: (files: readonly FileOutcome[], reason: string, timing: ReloadTiming) => void
  /**
   * Bind every listener with SO_REUSEPORT, so several worker threads share the addresses and the
   * kernel spreads flows over them (Linux). Off by default: a second server on a taken port fails.
   */
  readonly reusePort?: boolean
  /** UDP I/O path (default auto: batched recvmmsg/sendmmsg where the addon is built, else dgram). */
  readonly udpIo?: UdpIo | undefined
  /**
   * Log each file's outcome on every reload (default true). Data-plane workers turn it off: the
   * main thread loads the same directory on the same triggers and logs it once, not once per thread.
   */
  readonly logZones?: boolean
  /**
   * Called once after the startup load, before any socket is bound: the place for work that
   * stops the thread (the serve CLI compacts the heap there, ops/heap), so no query waits on it.
   */
  readonly beforeListen?: (() => void) | undefined
  /**
   * Awaited before each live reload reads the directory (file changes and SIGHUP): serve's lazy
   * handover moves answering to a worker thread there, before this thread loads anything.
   */
  readonly beforeReload?: ((reason: string) => Promise<void>) | undefined
}

export interface RunningServer {
  /** The address each listener bound, with the real port when 0 was asked for. */
  readonly addresses: readonly ListenAddress[]
  readonly zones: ZoneSet
  readonly answerer: Answerer
  reload(reason: string): readonly FileOutcome[]
  /**
   * The same reload in slices of a few milliseconds, answering queries between them (large zone
   * sets reload without stalling); the table still swaps whole at the end. File changes use it.
   */
  reloadLive(reason: string): Promise<readonly FileOutcome[]>
  /** TCP connection figures summed over every listener. */
  tcpStats(): TcpStats
  /** UDP datagrams received, batches they came in, responses the kernel refused, over every listener. */
  udpStats(): UdpStats
  /**
   * Steers each UDP address's SO_REUSEPORT group to its socket `index` (a handover's fresh worker,
   * to itself: see server/udp `steer`). How many listeners it took on.
   */
  steerUdp(index: number): number
  /**
   * Stops answering: the DNS listeners close (open TCP connections get `graceMs`), the zone set
   * and its watch stay. Their figures stay in tcpStats/udpStats.
   */
  closeListeners(graceMs: number): Promise<void>
  close(graceMs?: number): Promise<void>
}

export class NoZonesError extends GslbError {
  override readonly code = 'GSLB_ERR_NO_ZONES'
}

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const log = opts.log
  const zones = new ZoneSet(opts.zonesDir)
  const answerer = opts.answerer ?? new Answerer(opts.answer)
  const limits: TcpLimits = { ...DEFAULT_TCP_LIMITS, ...opts.tcp }
  const sample = opts.queryLogSample ?? 0
  const counted = opts.observe ?? NO_OBSERVER
  const observe: QueryObserver = sample > 0 ? chainObservers(counted, queryLogger(log, sample)) : counted

  const applied = (report: ReturnType<ZoneSet['reload']>, reason: string, t0: number): readonly FileOutcome[] => {
    if (opts.logZones !== false) for (const f of report.files) logOutcome(log, f, reason)
    const s = report.slices
    // A sliced reload also says how long its longest slice kept queries waiting (see zone/cooperative).
    const sliced = s && {
      pauses: s.pauses,
      longestSliceMs: Math.round(s.longestSliceMs * 10) / 10,
      backoffs: s.backoffs,
    }
    const ms = performance.now() - t0
    log.info({ reason, ms: Math.round(ms), changed: report.changed, ...sliced }, 'zones reloaded')
    answerer.table = zones.table
    opts.onReloadOutcome?.(report.files, reason, { ms, slices: s })
    if (report.changed && reason !== 'startup') opts.onZonesChanged?.()
    return report.files
  }
  const reload = (reason: string): readonly FileOutcome[] => {
    let report: ReturnType<ZoneSet['reload']>
    const t0 = performance.now()
    try {
      report = zones.reload()
    } catch (err) {
      if (reason === 'startup') throw err
      log.error({ err, reason }, 'zone reload failed; still serving the previous zones')
      return []
    }
    return applied(report, reason, t0)
  }
  // Calls made while a live reload runs share the next one: apply (log, count) each report once.
  const appliedReports = new WeakSet<ReturnType<ZoneSet['reload']>>()
  const reloadLive = async (reason: string): Promise<readonly FileOutcome[]> => {
    let report: ReturnType<ZoneSet['reload']>
    if (opts.beforeReload) await opts.beforeReload(reason)
    const t0 = performance.now()
    try {
      report = await zones.reloadSliced()
    } catch (err) {
      log.error({ err, reason }, 'zone reload failed; still serving the previous zones')
      return []
    }
    if (appliedReports.has(report)) return report.files
    appliedReports.add(report)
    return applied(report, reason, t0)
  }
  const first = reload('startup')
  if (answerer.table.zones.length === 0) {
    const failed = first.filter((f) => f.errors.length > 0).length
    throw new NoZonesError(
      `no zone could be loaded from ${zones.dir}` +
        (failed > 0 ? ` (${failed} file(s) rejected, see the errors above)` : ''),
    )
  }

  opts.beforeListen?.()
  const udp: UdpListener[] = []
  const tcp: TcpListener[] = []
  const addresses: ListenAddress[] = []
  try {
    for (const a of opts.listen) {
      const pair = await bindPair(a, answerer, log, observe, limits, opts.rrl, opts.reusePort === true, opts.udpIo)
      udp.push(pair.udp)
      tcp.push(pair.tcp)
      addresses.push({ host: a.host, port: pair.udp.port })
      log.info({ host: a.host, port: pair.udp.port, udpIo: pair.udp.io }, 'listening on UDP and TCP')
    }
  } catch (err) {
    await Promise.all([...udp.map((u) => u.close()), ...tcp.map((t) => t.close(0))])
    throw err
  }

  let listenersClosed: Promise<void> | undefined
  const closeListeners = (graceMs: number): Promise<void> => {
    listenersClosed ??= Promise.all([...udp.map((u) => u.close()), ...tcp.map((t) => t.close(graceMs))]).then(() => {})
    return listenersClosed
  }

  let watcher: FSWatcher | undefined
  if (opts.watch !== false) {
    let timer: NodeJS.Timeout | undefined
    // Editors write files in several steps (truncate, write, rename); wait for them to settle.
    watcher = watch(zones.dir, { recursive: true, persistent: false }, () => {
      clearTimeout(timer)
      timer = setTimeout(() => void reloadLive('file change'), 200)
    })
    watcher.on('error', (err) => log.warn({ err }, 'zone directory watch failed; reload with SIGHUP'))
  }

  return {
    addresses,
    zones,
    answerer,
    reload,
    reloadLive,
    tcpStats: () => tcp.reduce((sum, t) => addTcpStats(sum, t.stats()), NO_TCP_STATS),
    udpStats: () => udp.reduce((sum, u) => addUdpStats(sum, u.stats()), NO_UDP_STATS),
    steerUdp(index) {
      return udp.filter((u) => u.steer(index)).length
    },
    closeListeners,
    async close(graceMs = 5_000) {
      watcher?.close()
      await closeListeners(graceMs)
    },
  }
}

async function bindPair(
  a: ListenAddress,
  answerer: Answerer,
  log: Logger,
  observe: QueryObserver,
  limits: TcpLimits,
  rrl: ResponseRateLimiter | undefined,
  reusePort: boolean,
  io: UdpIo | undefined,
): Promise<{ udp: UdpListener; tcp: TcpListener }> {
  // With port 0, UDP picks the port and TCP must get the same one; retry if another process has it.
  for (let attempt = 0; ; attempt++) {
    const udp = await listenUdp(a.host, a.port, answerer, log, observe, rrl, { reusePort, io })
    try {
      const tcp = await listenTcp(a.host, udp.port, answerer, log, observe, limits, { reusePort })
      return { udp, tcp }
    } catch (err) {
      await udp.close()
      if (a.port !== 0 || attempt >= 20 || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err
    }
  }
}

function chainObservers(first: QueryObserver, second: QueryObserver): QueryObserver {
  return (query, response, transport, client) => {
    first(query, response, transport, client)
    second(query, response, transport, client)
  }
}

/** The sampled query log: an unsampled query pays one random number and one comparison. */
export function queryLogger(log: Logger, rate: number): QueryObserver {
  const qlog = log.child({ log: 'query' })
  return (query, response, transport, client) => {
    if (Math.random() >= rate) return
    let end = 12
    while (end < query.length && query[end] !== 0) end += query[end]! + 1
    const qname = end < query.length ? nameToString(nameFromWire(Buffer.from(query.subarray(12, end + 1)))) : '?'
    const qtype = end + 3 <= query.length ? typeName(query.readUInt16BE(end + 1)) : '?'
    qlog.info({ client, transport, qname, qtype, rcode: response[3]! & 0xf, size: response.length }, 'query')
  }
}

function logOutcome(log: Logger, f: FileOutcome, reason: string): void {
  for (const w of f.warnings) log.warn({ file: w.file, line: w.line, field: w.field }, w.message)
  switch (f.status) {
    case 'loaded':
      log.info({ file: f.file, zone: f.zone, serial: f.serial, reason }, 'zone loaded')
      break
    case 'removed':
      log.info({ file: f.file, zone: f.zone, reason }, 'zone file removed; zone no longer served')
      break
    case 'rejected':
      for (const e of f.errors) log.error({ file: e.file, line: e.line, field: e.field }, e.message)
      log.error(
        { file: f.file, zone: f.zone, serial: f.serial, reason },
        f.zone ? 'zone file rejected; still serving the previous version' : 'zone file rejected; zone not served',
      )
      break
    case 'unchanged':
      break
  }
}
