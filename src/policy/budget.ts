/**
 * @module policy/budget
 * The failover-time budget of a service: the worst case from an endpoint's death to clients
 * moving away from it. Detection (interval, stretched by jitter, times `fall`, plus one timeout),
 * then the write reaching every instance, then resolvers holding the old answer for a full TTL.
 */

import type { CompiledZone } from '../zone/compile.ts'
import type { CompiledService } from './service.ts'

/** Probe report batching plus Redis pub/sub and the instance's re-read. */
export const PROPAGATION_MS = 1500

export interface Budget {
  /** Worst case in ms, or undefined when some endpoint has no health check (it never fails over). */
  readonly worstMs: number | undefined
  readonly unchecked: readonly string[]
  readonly detail: string
}

export function failoverBudget(zone: CompiledZone, svc: CompiledService): Budget {
  const checks = new Map(zone.probes.map((p) => [p.endpoint, p.check]))
  const unchecked: string[] = []
  let detectMs = 0
  let ttl = svc.config.ttl
  for (const e of svc.config.endpoints) {
    const c = checks.get(e.name)
    if (!c) {
      unchecked.push(e.name)
      continue
    }
    const d = Math.ceil(c.intervalMs * (1 + c.jitter)) * c.fall + c.timeoutMs
    if (d > detectMs) detectMs = d
    if (e.pool.ttl !== undefined && e.pool.ttl > ttl) ttl = e.pool.ttl
  }
  if (unchecked.length > 0) {
    return {
      worstMs: undefined,
      unchecked,
      detail: `no health check on ${unchecked.join(', ')}: those endpoints are never taken out`,
    }
  }
  const worstMs = detectMs + PROPAGATION_MS + ttl * 1000
  return {
    worstMs,
    unchecked,
    detail: `${fmt(worstMs)} = detection ${fmt(detectMs)} + propagation ${fmt(PROPAGATION_MS)} + TTL ${ttl}s`,
  }
}

function fmt(ms: number): string {
  return ms >= 10_000 ? `${Math.round(ms / 1000)}s` : `${(ms / 1000).toFixed(1)}s`
}
