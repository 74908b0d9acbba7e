/**
 * @module serve
 * `gslb serve` put together: DNS listeners, the health view following the state store, and either
 * the in-process prober (embedded default, in-memory state) or Redis shared with other instances
 * and separate `gslb probe` workers. The same state and probing code runs in both modes. Metrics
 * (`/metrics`), readiness (`/readyz`) and webhooks hang off the same pieces.
 *
 * With `--workers N` (N >= 2) this thread keeps all of that (the control plane) and N worker
 * threads answer DNS (`workers/`), each with its own zone set, geo database and SO_REUSEPORT
 * listeners; this thread sends them every health change and SIGHUP, and sums their counts into
 * `/metrics`. It loads the zone set too, without listening: probes, health pools, `/status` and
 * `/explain` need the table. `--reload-mode handover` runs the workers the same way, and hands
 * each zone change this thread applied to fresh ones (workers/pool).
 *
 * Handover with one worker starts lazily: this thread answers (SO_REUSEPORT listeners) until the
 * first zone change, so startup costs one load of the zone set, not two. At that change, before
 * this thread reads anything, a fresh worker loads the files, joins the sockets and steers every
 * datagram to itself; this thread then closes its listeners, and only then reloads its own copy.
 * From there on it is the handover above. A fresh worker that cannot load every file is dropped
 * and this thread reloads in place, still answering (the broken zone keeps its last good version).
 */

import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import type { ServeConfig } from './config/server-config.ts'
import type { FileOutcome } from './config/zone-set.ts'
import { addRrlFigures, NO_RRL_FIGURES, ResponseRateLimiter } from './dns/rrl.ts'
import { GeoDatabase } from './geo/reader.ts'
import type { ZonePools } from './health/builder.ts'
import { HealthStore } from './health/state.ts'
import { HealthSync } from './health/sync.ts'
import type { Logger } from './log.ts'
import { type AdminServer, type Readiness, startAdmin } from './ops/admin.ts'
import type { ServeHeap } from './ops/heap.ts'
import { Metrics } from './ops/metrics.ts'
import { startWebhooks } from './ops/webhook.ts'
import { runCheck } from './probe/checks/index.ts'
import { DestinationGuard } from './probe/guard.ts'
import type { RunCheck } from './probe/scheduler.ts'
import { startProber } from './probe/worker.ts'
import { Answerer } from './query/handle.ts'
import { type ListenAddress, type RunningServer, startServer } from './server/index.ts'
import type { QueryObserver } from './server/observer.ts'
import { addTcpStats, NO_TCP_STATS } from './server/tcp.ts'
import { addUdpStats, NO_UDP_STATS } from './server/udp.ts'
import { MemoryStore } from './state/memory.ts'
import { RedisStore } from './state/redis.ts'
import type { StateStore } from './state/types.ts'
import { assertFree, HANDOVER_GRACE_MS, WorkerPool } from './workers/pool.ts'
import { EMPTY_TABLE, type ZoneTable } from './zone/table.ts'

export interface Serving {
  /** The zone set (and, with one worker, the DNS listeners) of this thread. */
  readonly server: RunningServer
  /** The DNS addresses answered on, ports resolved (by this thread, or by the worker threads). */
  readonly addresses: readonly ListenAddress[]
  /**
   * The data-plane threads with `--workers N`, N >= 2, or with handover reloads (with one worker,
   * from the first zone change on); undefined while this thread answers.
   */
  readonly workers: WorkerPool | undefined
  readonly store: StateStore
  readonly health: HealthStore
  readonly admin: AdminServer | undefined
  readonly metrics: Metrics
  readonly instanceId: string
  /** Re-reads the zones here and in every worker (SIGHUP). */
  reload(reason: string): void
  close(): Promise<void>
}

export function instanceName(): string {
  return `${hostname()}-${process.pid}-${randomBytes(2).toString('hex')}`
}

/** The configured store: Redis (URL, Sentinel or Cluster) when any is given, else in memory. */
export function stateStore(cfg: ServeConfig, log: Logger): StateStore {
  if (cfg.redisCluster) {
    return RedisStore.cluster(cfg.redisCluster, {}, cfg.redisPrefix === 'gslb:' ? '{gslb}:' : cfg.redisPrefix, log)
  }
  if (cfg.redisSentinel) {
    const { sentinels, name, password } = cfg.redisSentinel
    return new RedisStore({
      prefix: cfg.redisPrefix,
      log,
      options: {
        sentinels: sentinels.map((s) => ({ ...s })),
        name,
        ...(password ? { password, sentinelPassword: password } : {}),
      },
    })
  }
  if (cfg.redis) return new RedisStore({ url: cfg.redis, prefix: cfg.redisPrefix, log })
  return new MemoryStore()
}

/** runCheck behind a destination guard with the operator's allow/deny lists (validated here, once). */
export function guardedCheck(allow: readonly string[], deny: readonly string[]): RunCheck {
  const guard = new DestinationGuard({ allow, deny })
  return (target, signal) => runCheck(target, signal, guard)
}

/**
 * Ready for traffic: some zone is loaded and, with a shared store, the health view is not stale
 * (HealthSync's verdict, the one fail-open goes by: an instance that cannot reach Redis keeps
 * answering, but a load balancer should prefer one that can). The embedded store is always current.
 * `staleMs` only words the reason.
 */
export function readiness(
  zones: number,
  store: StateStore['kind'],
  stale: boolean,
  staleMs: number,
  staleAfterMs: number,
  workersAnswering?: number,
): Readiness {
  if (zones === 0) return { ready: false, reason: 'no zone loaded' }
  if (workersAnswering === 0) return { ready: false, reason: 'no worker thread is answering (restarting)' }
  if (store === 'redis' && (stale || !Number.isFinite(staleMs))) {
    const reason = Number.isFinite(staleMs)
      ? `health view is ${Math.round(staleMs / 1000)}s old, over the ${Math.round(staleAfterMs / 1000)}s stale limit`
      : 'health view never read from the state store'
    return { ready: false, reason }
  }
  return { ready: true }
}

export function zonePools(table: ZoneTable): ZonePools[] {
  return table.zones.map((z) => ({
    zone: z.stateKey,
    pools: z.pools,
    unknownDown: z.probes.filter((p) => p.check.unknownIs === 'down').map((p) => p.endpoint),
  }))
}

/**
 * `observe` sees every query this thread answers, after the metrics count it; with worker threads
 * this thread answers none, so it is never called (the sampled query log, `queryLogSample`, runs
 * in whichever thread answers). `heap` is told of the startup load (before this thread binds its
 * sockets) and of each handover (ops/heap).
 */
export async function serve(
  cfg: ServeConfig,
  log: Logger,
  version: string,
  observe?: QueryObserver,
  heap?: ServeHeap,
): Promise<Serving> {
  const geo = await GeoDatabase.open(cfg.geoip, log)
  for (const d of geo.describe())
    log.info({ path: d.path, schema: d.schema, built: d.buildDate }, 'geo database loaded')
  geo.watch()

  const instanceId = instanceName()
  const store = stateStore(cfg, log)
  const health = new HealthStore()
  let server: RunningServer | undefined
  const table = (): ZoneTable => server?.zones.table ?? EMPTY_TABLE
  const sync = new HealthSync(
    store,
    health,
    () => zonePools(table()),
    {
      quorum: cfg.quorum,
      slowStartMs: cfg.slowStartMs,
      staleAfterMs: cfg.staleAfterMs,
      staleMode: cfg.staleMode,
      instanceId,
      version,
    },
    log,
  )
  // Restart safety: read the stored view before the first query is answered, so an instance that
  // starts while Redis is up does not begin with everything up. A slow first connection gets a few
  // seconds; an unreachable Redis does not stop DNS from starting (it then begins all-up).
  if (store instanceof RedisStore) {
    await store
      .ready(5_000)
      .catch((err: unknown) =>
        log.warn({ err }, 'state store not reachable at startup; starting with every endpoint up'),
      )
  }
  await sync.start()
  log.info({ store: store.kind, generation: sync.generation, instance: instanceId }, 'health state loaded')
  // Webhooks follow the health view from here on, the first full view (just below) included, so
  // their per-pool tracking starts from what this instance actually answers.
  const webhooks =
    cfg.webhooks.length > 0
      ? startWebhooks({
          urls: cfg.webhooks,
          instance: instanceId,
          log,
          poolSize: (zone, pool) =>
            table()
              .zones.find((z) => z.stateKey === zone)
              ?.pools.find((p) => p.name === pool)?.endpoints.length ?? 0,
        })
      : undefined
  const answerer = new Answerer({
    nsid: cfg.nsid,
    chaos: { id: cfg.chaosId, version: cfg.chaosVersion },
    maxUdpSize: cfg.maxUdpSize,
    geo,
    health,
  })
  const metrics = new Metrics({ answerer, health })
  // Worker threads answer (and rate-limit) with N >= 2, or with handover reloads; else this thread.
  // Handover with one worker begins on this thread (see the module comment).
  const handover = cfg.reloadMode === 'handover'
  const lazy = handover && cfg.workers === 1
  const threaded = cfg.workers > 1 || (handover && !lazy)
  const rrl = cfg.rrl && !threaded ? new ResponseRateLimiter(cfg.rrl) : undefined
  let workers: WorkerPool | undefined
  /** The lazy handover's pool while its worker loads (closed with the server if it never answers). */
  let takingOver: WorkerPool | undefined
  /** What the lazy handover's worker serves, until this thread's reload after it compares its own. */
  let tookOver: string | undefined
  if (rrl && !lazy) metrics.rateLimit(rrl)
  else if (cfg.rrl)
    metrics.rateLimit({
      stats: () => addRrlFigures(rrl?.stats() ?? NO_RRL_FIGURES, workers?.rrlStats() ?? NO_RRL_FIGURES),
    })
  if (cfg.rrl) log.info({ rrl: cfg.rrl }, 'response rate limiting on (UDP)')
  const count = metrics.observe
  const observer: QueryObserver = observe
    ? (query, response, transport, client) => {
        count(query, response, transport)
        observe(query, response, transport, client)
      }
    : count
  let onZones = (): void => {}
  /**
   * With handover, what this thread's reload found decides what the workers do: a clean change is
   * handed to fresh workers; a change next to a rejected file is reloaded in place, where each
   * worker keeps the last good version of that file (a fresh one would have none).
   */
  const handOver = (files: readonly FileOutcome[], reason: string): void => {
    const pool = workers
    const took = tookOver
    tookOver = undefined
    if (pool === undefined) return
    const changed = files.some((f) => f.status === 'loaded' || f.status === 'removed')
    if (!changed) return
    if (files.some((f) => f.status === 'rejected')) pool.reload(reason)
    else {
      heap?.afterZoneChange()
      // Right after a lazy takeover the worker read the same files, unless they changed again in
      // between: then it gets them like any change.
      if (took !== undefined && took === server?.zones.fingerprint()) return
      void pool.replace(reason)
    }
  }
  /**
   * The lazy handover (module comment), run before this thread's reload reads the files. Resolves
   * when the worker answers, or when it could not start (this thread then reloads in place).
   */
  let takeover: Promise<void> | undefined
  const takeOver = (reason: string): Promise<void> => {
    const running = server
    if (workers !== undefined || closing || running === undefined) return Promise.resolve()
    takeover ??= (async () => {
      const t0 = performance.now()
      log.info({ worker: 0, reason }, 'a fresh worker loads the zones to take over answering')
      const pool = WorkerPool.beside({ count: 1, cfg, health, log, handover: true }, running.addresses)
      takingOver = pool
      try {
        tookOver = await pool.takeOver()
        workers = pool
        // Every datagram goes to the worker's sockets by now; open TCP connections get the grace.
        void running.closeListeners(HANDOVER_GRACE_MS)
        log.info({ worker: 0, reason, ms: Math.round(performance.now() - t0) }, 'zones handed over to a fresh worker')
        log.info({ workers: 1, addresses: pool.addresses }, 'worker threads answering')
      } catch (err) {
        if (!closing) {
          log.warn({ reason, problem: (err as Error).message }, 'zone handover not possible; reloading in place')
        }
      } finally {
        takingOver = undefined
        takeover = undefined
      }
    })()
    return takeover
  }
  let closing = false
  try {
    // SO_REUSEPORT would let this thread share another process's sockets without a word.
    if (lazy) await assertFree(cfg.listen)
    server = await startServer({
      zonesDir: cfg.zones,
      // With worker threads this thread binds no DNS socket: it would join the SO_REUSEPORT group
      // and take 1/(N+1) of the flows on the thread that also runs probes, the state store, webhooks
      // and the admin endpoint, making those flows' latency depend on control-plane work. N workers
      // for N cores leave it mostly idle, which is what keeps health changes prompt.
      listen: threaded ? [] : cfg.listen,
      // Lazy handover: the worker joins these sockets' groups when it takes over.
      reusePort: lazy,
      ...(lazy ? { beforeReload: takeOver } : {}),
      queryLogSample: cfg.queryLogSample,
      udpIo: cfg.udpIo,
      log,
      watch: cfg.watch,
      tcp: cfg.tcp,
      answerer,
      observe: observer,
      onZonesChanged: () => onZones(),
      onReloadOutcome: (files, reason, timing) => {
        metrics.reloaded(files, timing)
        if (handover && reason !== 'startup') handOver(files, reason)
      },
      ...(heap ? { beforeListen: () => heap.afterStartupLoad() } : {}),
      ...(rrl ? { rrl } : {}),
    })
    sync.rebuild()
    if (handover) heap?.beforeHandoverWorkers()
    // Started from the view just rebuilt; every change after it follows by message.
    if (threaded) {
      workers = await WorkerPool.start({ count: cfg.workers, cfg, health, log, handover })
      log.info({ workers: cfg.workers, addresses: workers.addresses }, 'worker threads answering')
    }
  } catch (err) {
    webhooks?.stop()
    metrics.close()
    sync.stop()
    geo.close()
    await server?.close(0)
    await store.close()
    throw err
  }

  // Embedded mode probes in-process; with Redis, `gslb probe` workers do it.
  const prober =
    store.kind === 'redis'
      ? undefined
      : startProber({
          targets: () => table().zones.flatMap((z) => z.probes),
          store,
          vantage: cfg.region,
          prober: instanceId,
          log,
          // Alone in its vantage, this prober needs no membership churn: heartbeat rarely.
          heartbeatMs: 5000,
          // The operator's probe allow/deny lists apply here as in `gslb probe`; every result counted.
          run: metrics.countedCheck(guardedCheck(cfg.probeAllow, cfg.probeDeny), cfg.region),
        })
  onZones = () => {
    prober?.reload()
    sync.rebuild()
  }
  const running = server
  // Read at scrape time: with a lazy handover the workers come later, and this thread's listeners
  // (closed then) keep their totals.
  const pooled = threaded || lazy
  metrics.watch({
    tcp: () => addTcpStats(running.tcpStats(), workers?.tcpStats() ?? NO_TCP_STATS),
    udp: () => addUdpStats(running.udpStats(), workers?.udpStats() ?? NO_UDP_STATS),
    remote: pooled ? () => workers?.pull() ?? Promise.resolve([]) : undefined,
    workers: pooled ? () => workers?.figures() ?? [] : undefined,
    store,
    sync,
    prober: prober ? () => prober.stats() : undefined,
    webhooks: webhooks ? () => webhooks.stats() : undefined,
  })

  const admin = cfg.admin
    ? await startAdmin({
        host: cfg.admin.host,
        port: cfg.admin.port,
        token: cfg.adminToken,
        store,
        health,
        table,
        geo,
        quorum: cfg.quorum,
        log,
        self: () => ({
          instance: instanceId,
          store: store.kind,
          connected: store.connected,
          generation: sync.generation,
          staleMs: Math.min(sync.staleMs, Number.MAX_SAFE_INTEGER),
        }),
        ready: () =>
          readiness(table().zones.length, store.kind, sync.stale, sync.staleMs, cfg.staleAfterMs, workers?.answering),
        metrics: () => metrics.scrape(),
      })
    : undefined
  if (admin && cfg.admin) log.info({ host: cfg.admin.host, port: admin.port }, 'admin endpoint listening')

  return {
    server: running,
    addresses: workers?.addresses ?? running.addresses,
    get workers() {
      return workers
    },
    store,
    health,
    admin,
    metrics,
    instanceId,
    reload(reason) {
      // In slices: a SIGHUP reload of a large zone set must not stall answering any more than a
      // file-change reload does.
      // With handover, the outcome of this thread's reload decides what the workers do (handOver).
      void running.reloadLive(reason)
      if (!handover) workers?.reload(reason)
    },
    async close() {
      await prober?.stop()
      sync.stop()
      webhooks?.stop()
      metrics.close()
      geo.close()
      await admin?.close()
      closing = true
      await Promise.all([running.close(), takingOver?.close(), workers?.close()])
      await store.close()
    },
  }
}
