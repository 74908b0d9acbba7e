/**
 * @module probe/worker
 * One prober: joins its vantage's membership, probes the share of the targets that rendezvous
 * hashing gives it, and re-shards when the live probers change or the zones are reloaded.
 *
 * Until the first heartbeat answers, the prober owns nothing (a moment, normally); if that
 * heartbeat fails it counts itself alone and probes everything: overlapping probes are harmless,
 * unprobed targets are not.
 */

import type { ProbeStatus, StateStore, TargetId } from '../state/types.ts'
import { ProbeScheduler, type ProbeSchedulerStats, type RunCheck } from './scheduler.ts'
import { owned, type ProbeLogger, ProberMembership } from './sharding.ts'
import type { ProbeTarget } from './types.ts'

export interface ProberOptions {
  /** Every target of this vantage (all zones); read again on `reload()`. */
  readonly targets: () => readonly ProbeTarget[]
  readonly store: StateStore
  readonly vantage: string
  /** This prober's id, unique within the vantage (e.g. hostname:pid). */
  readonly prober: string
  /** How often the membership heartbeat is sent; a prober missing 3 of them is dead. Default 5000. */
  readonly heartbeatMs?: number | undefined
  readonly log: ProbeLogger
  /** Passed to the scheduler (tests and the bench). */
  readonly run?: RunCheck | undefined
  readonly maxInFlight?: number | undefined
  readonly flushMs?: number | undefined
}

export interface ProberStats extends ProbeSchedulerStats {
  readonly vantage: string
  readonly prober: string
  /** Live probers of the vantage, this one included. */
  readonly probers: number
  /** Targets of the vantage, before sharding (`targets` is this prober's share). */
  readonly allTargets: number
}

export interface Prober {
  /** Recomputes this prober's share from the last known live list and target list. */
  reshard(): Promise<void>
  /** Reads `targets()` again (the zones changed), then re-shards. */
  reload(): Promise<void>
  /** Leaves the membership, stops probing and flushes the last reports. */
  stop(): Promise<void>
  stats(): ProberStats
}

const DEFAULT_HEARTBEAT_MS = 5000

export function startProber(options: ProberOptions): Prober {
  const { store, vantage, prober, log } = options
  const heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS
  const scheduler = new ProbeScheduler({
    vantage,
    prober,
    store,
    run: options.run,
    maxInFlight: options.maxInFlight,
    flushMs: options.flushMs,
    // A dead prober is noticed after its TTL (3 heartbeats) plus one of our heartbeats; the new
    // owner then needs its first probe. Reports outlive that, so health never lapses meanwhile.
    minReportLifetimeMs: 4 * heartbeatMs + 2 * options.targets().reduce((m, t) => Math.max(m, t.check.intervalMs), 0),
    log,
  })
  let all: readonly ProbeTarget[] = options.targets()
  let joined = false
  let stopped = false
  // Re-shards are serialised: each reads the state store first, and an older one finishing last
  // must not install a stale share.
  let chain: Promise<void> = Promise.resolve()

  const membership = new ProberMembership({
    store,
    vantage,
    self: prober,
    ttlMs: 3 * heartbeatMs,
    log,
    onChange: (live) => {
      log.info({ vantage, probers: live }, 'live probers changed; re-sharding')
      void reshard()
    },
  })

  async function apply(): Promise<void> {
    if (stopped || !joined) return
    const mine = owned(all, membership.live, prober)
    scheduler.setTargets(mine, await knownReports(mine))
  }

  /** Live reports of this vantage for targets we may be taking over; none when the store is down. */
  async function knownReports(mine: readonly ProbeTarget[]): Promise<ReadonlyMap<TargetId, ProbeStatus> | undefined> {
    const current = scheduler.stats().targets
    if (mine.length === 0 || (current > 0 && mine.every((t) => scheduler.health(t.id) !== undefined))) return undefined
    try {
      return (await store.load()).probes.get(vantage)
    } catch (err) {
      log.warn({ err, vantage }, 'could not read previous probe reports; new targets start unknown')
      return undefined
    }
  }

  function reshard(): Promise<void> {
    chain = chain.then(apply).catch((err: unknown) => log.error({ err, vantage }, 're-sharding failed'))
    return chain
  }

  void membership.start().then(() => {
    joined = true
    return reshard()
  })

  return {
    reshard,
    reload() {
      all = options.targets()
      return reshard()
    },
    async stop() {
      stopped = true
      await membership.stop()
      await chain
      await scheduler.stop()
    },
    stats() {
      return { ...scheduler.stats(), vantage, prober, probers: membership.live.length, allTargets: all.length }
    },
  }
}
