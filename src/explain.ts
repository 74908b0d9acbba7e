/**
 * @module explain
 * `gslb explain`: the decision trace for one query as the server would answer it: which zone and
 * service, what the geo database says about the client, each chain step's input and output with
 * health, the final answer, TTL and ECS scope. For static names, the response sections.
 */

import * as dnsPacket from 'dns-packet'
import { parseCidr } from './dns/address.ts'
import { nameToString, parseName } from './dns/name.ts'
import { ParseResult, parseQuery, Query } from './dns/query.ts'
import { T, typeNumber } from './dns/types.ts'
import { ConfigError } from './errors.ts'
import type { HealthSnapshot } from './health/state.ts'
import { failoverBudget } from './policy/budget.ts'
import { describeDecision } from './policy/golden.ts'
import { seededRandom } from './policy/random.ts'
import { clientFromText, type GeoLookup, QueryContext } from './query/context.ts'
import { Answerer } from './query/handle.ts'
import { keyIsSubdomain, lookup, type ZoneTable } from './zone/table.ts'

export interface ExplainRequest {
  readonly name: string
  readonly qtype: string
  readonly client: string
  /** ECS subnet like 198.51.100.0/24; when set, the decision uses it instead of `client`. */
  readonly ecs?: string | undefined
  readonly seed?: number | undefined
}

export function explain(
  table: ZoneTable,
  geo: GeoLookup | undefined,
  health: HealthSnapshot,
  req: ExplainRequest,
): string {
  const lines: string[] = []
  const qtypeNum = typeNumber(req.qtype)
  if (qtypeNum === undefined) throw new ConfigError(`unknown query type "${req.qtype}"`)
  const name = parseName(req.name.endsWith('.') ? req.name : `${req.name}.`)
  let client = clientFromText(req.client)
  if (!client) throw new ConfigError(`--client: expected an IP address, got "${req.client}"`)
  let viaEcs = false
  if (req.ecs !== undefined) {
    const c = parseCidr(req.ecs)
    if (typeof c === 'string') throw new ConfigError(`--ecs: ${c}`)
    client = clientFromText(req.ecs.split('/')[0]!, c.prefix)!
    viaEcs = true
  }
  lines.push(
    `query     ${nameToString(name)} ${req.qtype.toUpperCase()} from ${client.address}${viaEcs ? `/${client.sourcePrefix} (ECS)` : ''}`,
  )

  // The same lookup the server does, from a real query packet.
  const header = Buffer.from([0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0])
  const tail = Buffer.alloc(4)
  tail.writeUInt16BE(qtypeNum, 0)
  tail.writeUInt16BE(1, 2)
  const packet = Buffer.concat([header, name.wire, tail])
  const q = new Query()
  if (parseQuery(packet, q) !== ParseResult.OK)
    throw new ConfigError(`cannot build a query for ${req.name} ${req.qtype}`)
  const found = lookup(table, q)
  if (found === undefined) {
    lines.push('result    REFUSED: no served zone contains this name')
    return lines.join('\n')
  }
  const zone = table.nodes.get(q.key)?.zone ?? zoneOf(table, q.key)
  if (zone) lines.push(`zone      ${nameToString(zone.apex)} (${zone.file}, serial ${zone.serial})`)

  if (found.kind === 'template') {
    const answerer = new Answerer()
    answerer.table = table
    const reply = answerer.answer(packet, 'tcp', client.address)
    const m = dnsPacket.decode(reply!)
    lines.push(
      `static    ${(m as { rcode?: string }).rcode ?? ''} ${m.flags !== undefined && m.flags & 0x400 ? 'authoritative' : 'not authoritative'}`,
    )
    for (const [label, rrs] of [
      ['answer', m.answers],
      ['authority', m.authorities],
      ['additional', m.additionals],
    ] as const) {
      for (const rr of rrs ?? []) lines.push(`${label.padEnd(9)} ${rrText(rr)}`)
    }
    return lines.join('\n')
  }

  const svc = found.service
  const cfg = svc.config
  lines.push(
    `service   ${nameToString(cfg.owner)} (line ${cfg.line}) ttl ${cfg.ttl}, degraded ttl ${cfg.degradedTtl}, all-down ${cfg.allDown.kind}`,
  )
  const ctx = new QueryContext(geo)
  const view = health.view(svc.zoneKey)
  ctx.resetFor(client, viaEcs, view)
  ctx.random = seededRandom(req.seed ?? Date.now())
  const g = ctx.geo()
  lines.push(
    g
      ? `geo       ${[g.country && `country ${g.country}`, g.continent && `continent ${g.continent}`, g.subdivision && `subdivision ${g.subdivision}`, g.asn !== undefined && `AS${g.asn}`, g.location && `at ${g.location.lat},${g.location.lon}`, `network /${g.prefixLength}`].filter(Boolean).join(', ')}`
      : 'geo       unknown to the geo database',
  )
  const health_ = cfg.endpoints.map(
    (e) => `${e.name}=${view.up(e) ? 'up' : 'down'}${view.weight(e) !== e.weight ? ` w${view.weight(e)}` : ''}`,
  )
  lines.push(`health    ${health_.join(' ')}`)
  ctx.trace = { note: (text) => lines.push(`          ${text}`) }
  lines.push('chain')
  const qtype = q.qtype === T.AAAA ? T.AAAA : T.A
  const d = svc.decide(qtype, ctx)
  lines.push(`answer    ${describeDecision(d)}`)
  if (zone) lines.push(`failover  worst case ${failoverBudget(zone, svc).detail}`)
  lines.push(`ecs scope /${viaEcs ? ctx.ecsScope : 0}${viaEcs ? '' : ' (no ECS in the query)'}`)
  return lines.join('\n')
}

function zoneOf(table: ZoneTable, key: string) {
  let best: ZoneTable['zones'][number] | undefined
  for (const z of table.zones) {
    if (keyIsSubdomain(key, z.apex.key) && (!best || z.apex.labels > best.apex.labels)) best = z
  }
  return best
}

function rrText(rr: dnsPacket.Answer): string {
  const data = (rr as { data?: unknown }).data
  const text = typeof data === 'string' ? data : Buffer.isBuffer(data) ? data.toString('hex') : JSON.stringify(data)
  return `${rr.name}. ${(rr as { ttl?: number }).ttl ?? ''} ${rr.type} ${text}`
}
