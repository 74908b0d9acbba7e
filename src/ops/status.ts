/**
 * @module ops/status
 * What `gslb status` and the admin endpoint's `/status` show: every endpoint with its health per
 * vantage, latency, effective weight and overrides, and every live instance with the generation it
 * serves, so an operator sees at once whether all instances answer alike.
 */

import { nameToString } from '../dns/name.ts'
import { buildSnapshot, type Quorum } from '../health/builder.ts'
import type { InstanceInfo, StateData } from '../state/types.ts'
import { targetId } from '../state/types.ts'
import type { CompiledZone } from '../zone/compile.ts'

export interface VantageReport {
  readonly vantage: string
  readonly up: boolean
  readonly rttMs: number | undefined
  readonly error: string | undefined
  readonly ageMs: number
  readonly stale: boolean
}

export interface EndpointReport {
  readonly zone: string
  readonly pool: string
  readonly endpoint: string
  readonly address: string
  readonly checked: boolean
  /** After overrides, pushed state and quorum: what the DNS answers follow. */
  readonly effective: 'up' | 'down'
  readonly weight: number
  readonly effectiveWeight: number
  readonly vantages: readonly VantageReport[]
  readonly override: string | undefined
  readonly pushed: string | undefined
}

export interface StatusReport {
  readonly generation: number
  readonly instances: readonly InstanceInfo[]
  readonly services: ReadonlyArray<{
    readonly zone: string
    readonly name: string
    readonly pools: readonly string[]
    readonly chain: string
  }>
  readonly endpoints: readonly EndpointReport[]
}

export function statusReport(
  data: StateData,
  zones: readonly CompiledZone[],
  instances: readonly InstanceInfo[],
  quorum: Quorum,
  now = Date.now(),
): StatusReport {
  const snap = buildSnapshot(
    data,
    zones.map((z) => ({ zone: z.stateKey, pools: z.pools })),
    now,
    { quorum, slowStartMs: 0 },
    new Map(),
    undefined,
  ).snapshot
  const endpoints: EndpointReport[] = []
  for (const z of zones) {
    const view = snap.view(z.stateKey)
    const checked = new Set(z.probes.map((p) => p.endpoint))
    for (const p of z.pools) {
      for (const e of p.endpoints) {
        const id = targetId(z.stateKey, e.name)
        const vantages: VantageReport[] = []
        for (const [vantage, reports] of data.probes) {
          const r = reports.get(id)
          if (r)
            vantages.push({
              vantage,
              up: r.up,
              rttMs: r.rttMs,
              error: r.error,
              ageMs: now - r.at,
              stale: r.expiresAt <= now,
            })
        }
        const o = data.overrides.get(id)
        const pushed = data.pushed.get(id)
        endpoints.push({
          zone: z.stateKey,
          pool: p.name,
          endpoint: e.name,
          address: [e.address4, e.address6, e.cname && nameToString(e.cname)].filter(Boolean).join(' '),
          checked: checked.has(e.name),
          effective: view.up(e) ? 'up' : 'down',
          weight: e.weight,
          effectiveWeight: view.weight(e),
          vantages,
          override: o ? describeOverride(o, now) : undefined,
          pushed:
            pushed && pushed.until > now
              ? `${pushed.up ? 'up' : 'down'} by ${pushed.source} until ${new Date(pushed.until).toISOString()}`
              : undefined,
        })
      }
    }
  }
  const services = zones.flatMap((z) =>
    z.services.map((s) => ({
      zone: z.stateKey,
      name: nameToString(s.config.owner),
      pools: [...new Set(s.config.endpoints.map((e) => e.pool.name))],
      chain: s.steps.map((st) => st.name).join(' -> '),
    })),
  )
  return { generation: data.generation, instances, services, endpoints }
}

function describeOverride(o: NonNullable<ReturnType<StateData['overrides']['get']>>, now: number): string {
  const parts: string[] = []
  if (o.force) parts.push(`forced ${o.force}`)
  if (o.drain) parts.push('drained')
  if (o.weight !== undefined) parts.push(`weight ${o.weight}`)
  if (o.from !== undefined && o.from > now) parts.push(`from ${new Date(o.from).toISOString()}`)
  if (o.until !== undefined) parts.push(`until ${new Date(o.until).toISOString()}`)
  if (o.until !== undefined && o.until <= now) parts.push('(expired)')
  return parts.join(', ')
}

/** Plain-text table for terminals. */
export function formatStatus(r: StatusReport): string {
  const out: string[] = []
  out.push(`state generation ${r.generation}`)
  if (r.instances.length > 0) {
    out.push('', 'instances')
    const gens = new Set(r.instances.map((i) => i.generation))
    for (const i of r.instances) {
      out.push(
        `  ${i.id.padEnd(24)} ${i.host.padEnd(16)} generation ${i.generation}${gens.size > 1 ? ' (differs!)' : ''}, stale ${Math.round(i.staleMs / 1000)}s, v${i.version}`,
      )
    }
  }
  if (r.services.length > 0) {
    out.push('', 'services')
    for (const sv of r.services)
      out.push(`  ${sv.name.padEnd(32)} pools ${sv.pools.join(',').padEnd(16)} chain ${sv.chain}`)
  }
  out.push('', 'endpoints')
  const head = ['zone', 'pool', 'endpoint', 'address', 'state', 'weight', 'vantages', 'override']
  const rows = r.endpoints.map((e) => [
    e.zone,
    e.pool,
    e.endpoint,
    e.address,
    e.checked || e.override || e.pushed ? e.effective : `${e.effective} (unchecked)`,
    e.effectiveWeight === e.weight ? String(e.weight) : `${e.effectiveWeight}/${e.weight}`,
    e.vantages
      .map(
        (v) =>
          `${v.vantage}:${v.stale ? 'stale' : v.up ? 'up' : 'down'}${v.rttMs !== undefined ? ` ${v.rttMs.toFixed(1)}ms` : ''}${!v.up && v.error ? ` (${v.error})` : ''}`,
      )
      .join(' ') || '-',
    [e.override, e.pushed && `pushed ${e.pushed}`].filter(Boolean).join('; ') || '-',
  ])
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)))
  out.push(`  ${head.map((h, i) => h.padEnd(widths[i]!)).join('  ')}`)
  for (const row of rows) out.push(`  ${row.map((c, i) => c.padEnd(widths[i]!)).join('  ')}`)
  return out.join('\n')
}
