/**
 * @module policy/golden
 * Runs the test cases written next to a service in its zone file (`tests:`): for a client (or ECS
 * subnet) and optional endpoints forced down, the answer must match. `gslb check` runs them, so a
 * policy change is reviewed with its consequences in front of the reviewer.
 */

import { T } from '../dns/types.ts'
import { ALL_UP } from '../health/state.ts'
import { clientFromText, type GeoLookup, QueryContext } from '../query/context.ts'
import type { CompiledZone } from '../zone/compile.ts'
import { seededRandom } from './random.ts'
import type { Decision } from './service.ts'

export interface GoldenOutcome {
  readonly file: string
  readonly line: number
  readonly service: string
  readonly ok: boolean
  /** What was answered, for the report. */
  readonly got: string
  /** Why it failed; empty when ok. */
  readonly problem: string
}

/** Fixed seed: golden cases of random policies give the same answer on every run and machine. */
export const GOLDEN_SEED = 1

export function runGoldenTests(zone: CompiledZone, geo: GeoLookup | undefined): GoldenOutcome[] {
  const out: GoldenOutcome[] = []
  const ctx = new QueryContext(geo)
  for (const svc of zone.services) {
    const cfg = svc.config
    for (const t of cfg.tests) {
      const health = ALL_UP.with(t.down.map((d) => [svc.zoneKey, d, { up: false }] as const)).view(svc.zoneKey)
      const client = clientFromText(t.client, t.ecsPrefix)!
      ctx.resetFor(client, t.ecsPrefix !== undefined, health)
      ctx.random = seededRandom(GOLDEN_SEED)
      const d = svc.decide(t.qtype === 'AAAA' ? T.AAAA : T.A, ctx)
      const got = describeDecision(d)
      const problem = check(t, d)
      out.push({ file: zone.file, line: t.line, service: svc.config.owner.key, ok: problem === '', got, problem })
    }
  }
  return out
}

export function describeDecision(d: Decision): string {
  switch (d.kind) {
    case 'servfail':
      return 'SERVFAIL'
    case 'nodata':
      return d.allDown ? 'NODATA (all down)' : 'NODATA'
    case 'answer':
      return `${d.values.join(' ')} ttl ${d.ttl}${d.allDown ? ' (all down)' : d.degraded ? ' (degraded)' : ''}`
  }
}

function check(t: CompiledZone['services'][number]['config']['tests'][number], d: Decision): string {
  if (t.expectRcode === 'SERVFAIL') return d.kind === 'servfail' ? '' : 'expected SERVFAIL'
  if (d.kind === 'servfail') return 'got SERVFAIL'
  const values = d.kind === 'answer' ? [...d.values].sort() : []
  if (t.expect !== undefined) {
    const want = [...t.expect].sort()
    if (values.length !== want.length || values.some((v, i) => v !== want[i]))
      return `expected ${want.join(' ') || 'no answer'}`
  }
  if (t.expectAnyOf !== undefined) {
    if (values.length === 0) return `expected some of ${t.expectAnyOf.join(' ')}`
    const bad = values.filter((v) => !t.expectAnyOf!.includes(v))
    if (bad.length > 0) return `${bad.join(' ')} not in ${t.expectAnyOf.join(' ')}`
  }
  if (t.expectPool !== undefined) {
    const eps = d.kind === 'answer' ? d.endpoints : []
    if (eps.length === 0) return `expected an answer from pool ${t.expectPool}`
    const other = eps.filter((e) => e.pool.name !== t.expectPool)
    if (other.length > 0)
      return `expected pool ${t.expectPool}, got ${other.map((e) => `${e.name} (pool ${e.pool.name})`).join(', ')}`
  }
  return ''
}
