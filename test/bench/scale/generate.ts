/**
 * Generates the zone set of `npm run bench:scale`: many static records in RFC 1035 master files
 * and many load-balanced services in gslb YAML zone files, deterministic for given sizes.
 *
 * Layout (what a mid-size operator might run from one zones directory):
 *
 * - 4 master files, the static records split 40/30/20/10 %:
 *   `corp.example.zone` (data-centre hosts), `shop.example.zone`, `media.example.zone`,
 *   `legacy.example.org.zone`. Each block of 20 records holds 9 new hosts with an A record, 5 AAAA
 *   on those hosts, 3 CNAME aliases to earlier hosts, 1 MX and 2 TXT records on hosts: 45 % A,
 *   25 % AAAA, 15 % CNAME, 5 % MX, 10 % TXT. Names look like `web-01234.fra1.corp.example.`.
 * - 10 gslb YAML files, one per product (`payments.gslb.example.yaml`, ...), the services and
 *   endpoints split evenly. Every service has its own pools and endpoints (5 per service by
 *   default), and its chain follows a fixed mix: 35 % weighted, 25 % geo + weighted, 15 %
 *   failover + weighted, 10 % latency + first 1, 10 % sticky, 5 % multivalue.
 *
 * Answers use documentation addresses only (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24,
 * 2001:db8::/32) and there are no health checks: nothing is ever probed.
 */

import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

export interface ScaleSizes {
  /** Static records over all master files (the SOA, NS and name-server glue come on top). */
  readonly records: number
  readonly services: number
  readonly endpoints: number
}

export type ChainKind = 'weighted' | 'geo' | 'failover' | 'latency' | 'sticky' | 'multivalue'

/** One query the bench may send, with what a correct answer holds. */
export interface ProbeName {
  readonly name: string
  readonly type: 'A' | 'AAAA' | 'CNAME' | 'MX' | 'TXT'
}

export interface GeneratedZones {
  readonly dir: string
  /** The files written, master files first. */
  readonly files: readonly string[]
  readonly staticFiles: readonly string[]
  readonly gslbFiles: readonly string[]
  /** Every static (name, type) pair that has data. */
  readonly staticQueries: readonly ProbeName[]
  /** Every service name, with the chain it runs and whether it has IPv6 endpoints. */
  readonly services: readonly { readonly name: string; readonly chain: ChainKind; readonly v6: boolean }[]
  /** A static name and its A address, and a service name: what the readiness probe asks. */
  readonly readyStatic: { readonly name: string; readonly address: string }
  readonly readyService: string
  /** Records written, SOA/NS/glue included, and the services and endpoints. */
  readonly counts: { readonly records: number; readonly services: number; readonly endpoints: number }
}

const STATIC_ZONES = [
  { apex: 'corp.example', share: 0.4 },
  { apex: 'shop.example', share: 0.3 },
  { apex: 'media.example', share: 0.2 },
  { apex: 'legacy.example.org', share: 0.1 },
] as const

const PRODUCTS = ['payments', 'search', 'video', 'auth', 'maps', 'mail', 'store', 'ads', 'chat', 'docs'] as const

const ROLES = ['web', 'app', 'db', 'cache', 'build', 'mq', 'vpn', 'ldap', 'k8s-node', 'log', 'mon', 'git'] as const
const SITES = ['fra1', 'ams2', 'iad1', 'sfo3', 'sin1', 'nrt1', 'gru1', 'syd1'] as const
const SERVICE_WORDS = ['api', 'www', 'login', 'cdn', 'edge', 'upload', 'ws', 'img', 'static', 'grpc'] as const

/** The three IPv4 documentation networks (RFC 5737), .1 to .254 of each: 762 addresses, reused in turn. */
export function docIPv4(i: number): string {
  const nets = ['192.0.2', '198.51.100', '203.0.113']
  const k = i % (3 * 254)
  return `${nets[Math.floor(k / 254)]}.${(k % 254) + 1}`
}

/** A unique IPv6 documentation address (RFC 3849) per (network, index). */
export function docIPv6(net: number, i: number): string {
  return `2001:db8:${net.toString(16)}:${Math.floor(i / 65535).toString(16)}::${((i % 65535) + 1).toString(16)}`
}

/** How many of `total` items share `k` of `parts` gets (the first ones get the remainder). */
function share(total: number, parts: number, k: number): number {
  return Math.floor(((k + 1) * total) / parts) - Math.floor((k * total) / parts)
}

function header(apex: string, serial: number): string[] {
  return [
    `$ORIGIN ${apex}.`,
    '$TTL 3600',
    `@       IN SOA  ns1 hostmaster ${serial} 7200 3600 1209600 300`,
    '@       IN NS   ns1',
    '@       IN NS   ns2',
    'ns1     IN A    192.0.2.53',
    'ns1     IN AAAA 2001:db8::53',
    'ns2     IN A    198.51.100.53',
    'ns2     IN AAAA 2001:db8:1::53',
  ]
}
const HEADER_RECORDS = 7

interface StaticZone {
  readonly text: string
  readonly queries: ProbeName[]
  readonly records: number
}

/** One master file of `budget` records in blocks of 20 (see the module comment for the mix). */
function staticZone(apex: string, zoneIndex: number, budget: number, serial: number): StaticZone {
  const lines = header(apex, serial)
  lines.push('', '; mail for the whole zone', '@       IN MX   10 mx1', '@       IN MX   20 mx2')
  lines.push('mx1     IN A    192.0.2.25', 'mx2     IN A    198.51.100.25')
  lines.push('@       IN TXT  "v=spf1 mx -all"')
  let written = 5
  const queries: ProbeName[] = [
    { name: `${apex}.`, type: 'MX' },
    { name: `${apex}.`, type: 'TXT' },
  ]
  const hosts: string[] = []
  let v4 = zoneIndex * 97
  let v6 = 0
  let block = 0
  const emit = (line: string): boolean => {
    if (written >= budget) return false
    lines.push(line)
    written++
    return true
  }
  while (written < budget) {
    lines.push('', `; block ${block}`)
    const fresh: string[] = []
    for (let k = 0; k < 9; k++) {
      const n = hosts.length
      const host = `${ROLES[n % ROLES.length]}-${String(n).padStart(5, '0')}.${SITES[Math.floor(n / ROLES.length) % SITES.length]}`
      if (!emit(`${host.padEnd(24)} IN A     ${docIPv4(v4++)}`)) break
      hosts.push(host)
      fresh.push(host)
      queries.push({ name: `${host}.${apex}.`, type: 'A' })
    }
    for (const host of fresh.slice(0, 5)) {
      if (!emit(`${host.padEnd(24)} IN AAAA  ${docIPv6(zoneIndex + 1, v6++)}`)) break
      queries.push({ name: `${host}.${apex}.`, type: 'AAAA' })
    }
    for (let k = 0; k < 3 && hosts.length > 0; k++) {
      const alias = `svc${block}-${k}`
      const target = hosts[(block * 7 + k * 13) % hosts.length]!
      if (!emit(`${alias.padEnd(24)} IN CNAME ${target}`)) break
      queries.push({ name: `${alias}.${apex}.`, type: 'A' })
    }
    const mxHost = fresh[0]
    if (mxHost !== undefined && emit(`${mxHost.padEnd(24)} IN MX    10 mx1`))
      queries.push({ name: `${mxHost}.${apex}.`, type: 'MX' })
    for (const host of fresh.slice(1, 3)) {
      if (!emit(`${host.padEnd(24)} IN TXT   "asset=${zoneIndex}-${block}" "owner=team-${block % 40}"`)) break
      queries.push({ name: `${host}.${apex}.`, type: 'TXT' })
    }
    block++
  }
  return { text: `${lines.join('\n')}\n`, queries, records: written + HEADER_RECORDS }
}

/** Chain of service `i`, following the mix in the module comment. */
export function chainOf(i: number): ChainKind {
  const r = i % 20
  if (r < 7) return 'weighted'
  if (r < 12) return 'geo'
  if (r < 15) return 'failover'
  if (r < 17) return 'latency'
  if (r < 19) return 'sticky'
  return 'multivalue'
}

const REGIONS = [
  { name: 'eu', location: '[50.11, 8.68]' },
  { name: 'us', location: '[37.34, -121.89]' },
  { name: 'ap', location: '[35.68, 139.69]' },
] as const

interface GslbZone {
  readonly text: string
  readonly services: { name: string; chain: ChainKind; v6: boolean }[]
  readonly records: number
}

/** One gslb YAML zone file with `nServices` services over `nEndpoints` endpoints. */
function gslbZone(
  apex: string,
  zoneIndex: number,
  firstService: number,
  nServices: number,
  nEndpoints: number,
  serial: number,
): GslbZone {
  const out: string[] = [
    `# Generated by test/bench/scale.ts: ${nServices} services, ${nEndpoints} endpoints.`,
    `zone: ${apex}`,
    'ttl: 300',
    'records: |',
    `  @    3600 SOA  ns1 hostmaster ${serial} 7200 3600 1209600 60`,
    '  @    3600 NS   ns1',
    '  @    3600 NS   ns2',
    '  ns1  3600 A    192.0.2.53',
    '  ns2  3600 A    198.51.100.53',
    '  @         TXT  "v=spf1 -all"',
  ]
  const pools: string[] = ['', 'pools:']
  const services: string[] = ['', 'services:']
  const made: { name: string; chain: ChainKind; v6: boolean }[] = []
  let v4 = zoneIndex * 131
  let v6 = 0
  for (let s = 0; s < nServices; s++) {
    const global = firstService + s
    const chain = chainOf(global)
    const name = `${SERVICE_WORDS[global % SERVICE_WORDS.length]}-${String(s).padStart(4, '0')}`
    const nEp = Math.max(1, share(nEndpoints, nServices, s))
    const wantPools = chain === 'geo' || chain === 'latency' ? 3 : chain === 'failover' ? 2 : 1
    const nPools = Math.min(wantPools, nEp)
    // Every second service is dual-stack; the others answer AAAA with NODATA.
    const dual = global % 2 === 0
    const poolNames: string[] = []
    for (let p = 0; p < nPools; p++) {
      const region = REGIONS[p]!
      const pool = nPools === 1 ? `${name}` : `${name}-${region.name}`
      poolNames.push(pool)
      pools.push(`  ${pool}:`)
      if (chain === 'geo' || chain === 'latency')
        pools.push(`    region: ${region.name}`, `    location: ${region.location}`)
      pools.push('    endpoints:')
      for (let e = 0; e < share(nEp, nPools, p); e++) {
        const ep = `${pool}-${e + 1}`
        const a4 = docIPv4(v4++)
        const weight = chain === 'weighted' ? `, weight: ${1 + (e % 3)}` : ''
        pools.push(
          dual
            ? `      ${ep}: { address: [${a4}, "${docIPv6(16 + zoneIndex, v6++)}"]${weight} }`
            : weight
              ? `      ${ep}: { address: ${a4}${weight} }`
              : `      ${ep}: ${a4}`,
        )
      }
    }
    services.push(`  ${name}:`)
    // Always listed: without `pools:` a service takes every pool of the zone.
    services.push(`    pools: [${poolNames.join(', ')}]`)
    const [eu, us, ap] = [poolNames[0]!, poolNames[1] ?? poolNames[0]!, poolNames[2] ?? poolNames[0]!]
    switch (chain) {
      case 'weighted':
        services.push('    chain: [weighted]')
        break
      case 'geo':
        services.push(
          `    chain:`,
          `      - geo: { continents: { EU: ${eu}, AF: ${eu}, NA: ${us}, SA: ${us}, AS: ${ap}, OC: ${ap} }, default: ${us} }`,
          `      - weighted`,
        )
        break
      case 'failover':
        services.push('    ttl: 30', '    chain: [failover, weighted]')
        break
      case 'latency':
        services.push(
          '    chain:',
          '      - latency:',
          `          vantages: { ${REGIONS.slice(0, nPools)
            .map((r, k) => `${r.name}: [${['EU, AF', 'NA, SA', 'AS, OC'][k]}]`)
            .join(', ')} }`,
          `          table: { ${REGIONS.slice(0, nPools)
            .map(
              (r, k) =>
                `${r.name}: { ${poolNames.map((p, j) => `${p}: ${k === j ? 10 : 90 + 40 * Math.abs(k - j)}`).join(', ')} }`,
            )
            .join(', ')} }`,
          '      - { first: 1 }',
        )
        break
      case 'sticky':
        services.push('    chain: [sticky]')
        break
      case 'multivalue':
        services.push('    chain: [{ multivalue: 8 }]')
        break
    }
    made.push({ name: `${name}.${apex}.`, chain, v6: dual })
  }
  return { text: `${[...out, ...pools, ...services].join('\n')}\n`, services: made, records: 6 }
}

/** Writes the zone set into `dir` (created if missing). `serial` goes into every SOA. */
export function generateZones(dir: string, sizes: ScaleSizes, serial = 1): GeneratedZones {
  mkdirSync(dir, { recursive: true })
  const files: string[] = []
  const staticFiles: string[] = []
  const gslbFiles: string[] = []
  const staticQueries: ProbeName[] = []
  const services: { name: string; chain: ChainKind; v6: boolean }[] = []
  let records = 0
  let assigned = 0
  STATIC_ZONES.forEach((z, k) => {
    const budget = k === STATIC_ZONES.length - 1 ? sizes.records - assigned : Math.round(sizes.records * z.share)
    assigned += budget
    const zone = staticZone(z.apex, k, Math.max(budget, 8), serial)
    const file = join(dir, `${z.apex}.zone`)
    writeFileSync(file, zone.text)
    files.push(file)
    staticFiles.push(file)
    staticQueries.push(...zone.queries)
    records += zone.records
  })
  let firstService = 0
  PRODUCTS.forEach((p, k) => {
    const nServices = share(sizes.services, PRODUCTS.length, k)
    if (nServices === 0) return
    const nEndpoints = Math.max(nServices, share(sizes.endpoints, PRODUCTS.length, k))
    const apex = `${p}.gslb.example`
    const zone = gslbZone(apex, k, firstService, nServices, nEndpoints, serial)
    firstService += nServices
    const file = join(dir, `${apex}.yaml`)
    writeFileSync(file, zone.text)
    files.push(file)
    gslbFiles.push(file)
    services.push(...zone.services)
    records += zone.records
  })
  const firstHost = staticQueries.find((q) => q.type === 'A' && !q.name.startsWith('svc'))!
  return {
    dir,
    files,
    staticFiles,
    gslbFiles,
    staticQueries,
    services,
    readyStatic: { name: firstHost.name, address: docIPv4(0) },
    readyService: services[0]?.name ?? firstHost.name,
    counts: {
      records,
      services: services.length,
      endpoints: Math.max(sizes.endpoints, sizes.services),
    },
  }
}
