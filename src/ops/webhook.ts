/**
 * @module ops/webhook
 * Tells other systems when health changes: every endpoint flip (from `gslb:health:change`) and
 * every pool that goes entirely down or comes back, POSTed as JSON to the configured URLs. Delivery
 * retries with backoff, in order per URL, with a bounded queue so a dead receiver costs memory
 * only up to the bound (oldest events are dropped first, and counted).
 */

import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import type { HealthChangeMessage } from '../health/sync.ts'
import type { Logger } from '../log.ts'

export interface WebhookEvent {
  readonly type: 'endpoint_up' | 'endpoint_down' | 'pool_up' | 'pool_down'
  readonly zone: string
  readonly pool: string
  readonly endpoint?: string
  readonly reason: string
  readonly at: string
  readonly instance: string
}

export interface WebhookOptions {
  readonly urls: readonly string[]
  readonly instance: string
  readonly log: Logger
  /** Endpoints a pool has now (zones reload), to tell when all of them are down. */
  readonly poolSize: (zone: string, pool: string) => number
  /** Attempts per event, default 5; backoff doubles from `retryMs` (default 500 ms). */
  readonly attempts?: number
  readonly retryMs?: number
  readonly timeoutMs?: number
  /** Events kept per URL while the receiver is failing; default 1000. */
  readonly maxQueue?: number
}

export interface Webhooks {
  /** Delivered, failed for good, and dropped (queue full) events, for metrics and tests. */
  stats(): { delivered: number; failed: number; dropped: number }
  /** Resolves when every queue is empty (tests). */
  idle(): Promise<void>
  stop(): void
}

export function startWebhooks(opts: WebhookOptions): Webhooks {
  const attempts = opts.attempts ?? 5
  const retryMs = opts.retryMs ?? 500
  const timeoutMs = opts.timeoutMs ?? 5000
  const maxQueue = opts.maxQueue ?? 1000
  const queues = opts.urls.map(() => [] as WebhookEvent[])
  const busy = opts.urls.map(() => false)
  const counts = { delivered: 0, failed: 0, dropped: 0 }
  const idleWaiters: Array<() => void> = []
  let stopped = false
  // Per pool: endpoints currently down, to tell when a whole pool is down or back.
  const downByPool = new Map<string, Set<string>>()

  const checkIdle = (): void => {
    if (queues.every((q) => q.length === 0) && busy.every((b) => !b)) for (const w of idleWaiters.splice(0)) w()
  }

  const pump = async (i: number): Promise<void> => {
    if (busy[i] || stopped) return
    busy[i] = true
    const url = opts.urls[i]!
    const q = queues[i]!
    while (q.length > 0 && !stopped) {
      const ev = q[0]!
      let ok = false
      for (let attempt = 0; attempt < attempts && !stopped; attempt++) {
        try {
          const res = await fetch(url, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(ev),
            signal: AbortSignal.timeout(timeoutMs),
          })
          await res.arrayBuffer()
          if (res.ok) {
            ok = true
            break
          }
        } catch {
          // Receiver down or slow: retry below.
        }
        await new Promise((r) => setTimeout(r, retryMs * 2 ** attempt).unref())
      }
      q.shift()
      if (ok) counts.delivered++
      else {
        counts.failed++
        opts.log.warn({ url, event: ev.type, attempts }, 'webhook delivery failed; event dropped')
      }
    }
    busy[i] = false
    checkIdle()
  }

  const emit = (ev: WebhookEvent): void => {
    for (let i = 0; i < queues.length; i++) {
      const q = queues[i]!
      if (q.length >= maxQueue) {
        q.shift()
        counts.dropped++
      }
      q.push(ev)
      void pump(i)
    }
  }

  const onChange = (raw: unknown): void => {
    const m = raw as HealthChangeMessage
    const at = new Date().toISOString()
    emit({
      type: m.up ? 'endpoint_up' : 'endpoint_down',
      zone: m.zone,
      pool: m.pool,
      endpoint: m.endpoint,
      reason: m.reason,
      at,
      instance: opts.instance,
    })
    const key = `${m.zone}|${m.pool}`
    const down = downByPool.get(key) ?? new Set<string>()
    downByPool.set(key, down)
    const size = opts.poolSize(m.zone, m.pool)
    const wasAllDown = down.size > 0 && down.size >= size
    if (m.up) down.delete(m.endpoint)
    else down.add(m.endpoint)
    const allDown = down.size > 0 && down.size >= size
    if (allDown && !wasAllDown)
      emit({
        type: 'pool_down',
        zone: m.zone,
        pool: m.pool,
        reason: `every endpoint down (last: ${m.endpoint}, ${m.reason})`,
        at,
        instance: opts.instance,
      })
    if (wasAllDown && !allDown)
      emit({
        type: 'pool_up',
        zone: m.zone,
        pool: m.pool,
        reason: `${m.endpoint} back (${m.reason})`,
        at,
        instance: opts.instance,
      })
  }
  subscribe('gslb:health:change', onChange)

  return {
    stats: () => ({ ...counts }),
    idle: () =>
      new Promise<void>((r) => {
        idleWaiters.push(r)
        checkIdle()
      }),
    stop() {
      stopped = true
      unsubscribe('gslb:health:change', onChange)
    },
  }
}
