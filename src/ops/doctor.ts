/**
 * @module ops/doctor
 * `gslb doctor`: checks a deployment the way an operator would by hand with dig and redis-cli,
 * and says for each problem how to fix it. It asks the parent for the delegation, every instance
 * for SOA, NS, a name outside its zones, ECS, EDNS and TCP, and optionally reads the shared state
 * in Redis and the zone file on disk.
 *
 * Queries go only to the addresses given (no system resolver, no recursion), so running the
 * doctor never sends traffic anywhere else.
 */

import { randomInt } from 'node:crypto'
import { createSocket } from 'node:dgram'
import { connect, isIP, isIPv6 } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import * as dnsPacket from 'dns-packet'
import { ZoneSet } from '../config/zone-set.ts'
import type { InstanceInfo, StateData, StateStore } from '../state/types.ts'

export type FindingLevel = 'ok' | 'warn' | 'error'

export interface Finding {
  readonly level: FindingLevel
  /** Which check produced it: `delegation`, `glue`, `soa`, `ns`, `refused`, `ecs`, `edns`, `tcp`, `redis`, `instances`, `probers`, `zone-file`. */
  readonly check: string
  readonly message: string
  /** What to do about it, concrete enough to paste (records in BIND syntax, commands). */
  readonly fix?: string
}

export interface DoctorServer {
  /** An IP address: the doctor never resolves names, so it cannot leak queries to a resolver. */
  readonly address: string
  readonly port: number
}

export interface DoctorOptions {
  /** The delegated zone the instances serve, e.g. `gslb.example.com`. */
  readonly zone: string
  /** A server authoritative for the parent zone. */
  readonly parent: DoctorServer
  /** Every gslb instance named (or meant to be named) by the zone's NS records. */
  readonly instances: readonly DoctorServer[]
  /** The shared state store, already connected. */
  readonly redis?: StateStore | undefined
  /** The zones directory the instances load, to compare the file's serial with what they serve. */
  readonly zonesDir?: string | undefined
  /** Per query (default 2000 ms); a UDP query is sent again halfway through. */
  readonly timeoutMs?: number | undefined
  /** Vantage regions that must have live probers (`gslb probe --region`); without it, only the ones seen are checked. */
  readonly regions?: readonly string[] | undefined
}

const DEFAULT_TIMEOUT_MS = 2_000
/** The ECS subnet sent (TEST-NET-2): documentation space, so nobody's real address is claimed. */
const ECS_ADDRESS = '198.51.100.0'
const ECS_PREFIX = 24
/**
 * Asked to check that names outside the served zones are REFUSED. `.invalid` (RFC 6761) because a
 * recursive server answers it at once without asking anyone, so even a misconfigured address
 * cannot make the doctor cause traffic off the box.
 */
const OUTSIDE_NAME = 'gslb-doctor-outside.invalid'
/** Instances heartbeat every 2 s with a 6 s ttl (health/sync.ts). */
const INSTANCE_HEARTBEAT_MS = 2_000
const INSTANCE_HEARTBEAT_TTL_MS = 3 * INSTANCE_HEARTBEAT_MS
/** An instance that has not read the store for this long cannot reach Redis. */
const INSTANCE_SYNC_STALE_MS = 5_000

const RCODE_NAMES: Record<number, string> = {
  0: 'NOERROR',
  1: 'FORMERR',
  2: 'SERVFAIL',
  3: 'NXDOMAIN',
  4: 'NOTIMP',
  5: 'REFUSED',
  16: 'BADVERS',
}
const NOERROR = 0
const REFUSED = 5
const BADVERS = 16

// ---- the query helper -----------------------------------------------------------------------

interface EdnsSpec {
  readonly version?: number
  readonly ecs?: { readonly address: string; readonly prefix: number }
}

interface QuerySpec {
  readonly name: string
  readonly type: dnsPacket.RecordType
  /** Undefined: no OPT record. */
  readonly edns?: EdnsSpec | undefined
  readonly tcp?: boolean
}

interface Reply {
  readonly ok: true
  readonly msg: dnsPacket.DecodedPacket
  /** Full rcode, including the OPT record's extended bits (RFC 6891 6.1.3). */
  readonly rcode: number
  readonly opt: dnsPacket.OptAnswer | undefined
  readonly transport: 'udp' | 'tcp'
}

interface Failure {
  readonly ok: false
  readonly error: string
}

type Result = Reply | Failure

function encodeQuery(q: QuerySpec, id: number): Buffer {
  const additionals: dnsPacket.Answer[] = []
  if (q.edns) {
    const opt: dnsPacket.OptAnswer = {
      type: 'OPT',
      name: '.',
      udpPayloadSize: 1232,
      extendedRcode: 0,
      ednsVersion: q.edns.version ?? 0,
      flags: 0,
      flag_do: false,
      options: q.edns.ecs
        ? [
            {
              code: 8,
              family: isIPv6(q.edns.ecs.address) ? 2 : 1,
              sourcePrefixLength: q.edns.ecs.prefix,
              scopePrefixLength: 0,
              ip: q.edns.ecs.address,
            },
          ]
        : [],
    }
    additionals.push(opt)
  }
  // RD clear: we ask authoritative servers, and a referral is only visible to a non-recursive query.
  return dnsPacket.encode({
    type: 'query',
    id,
    flags: 0,
    questions: [{ type: q.type, name: q.name, class: 'IN' }],
    additionals,
  })
}

function decodeReply(wire: Buffer, transport: 'udp' | 'tcp'): Result {
  let msg: dnsPacket.DecodedPacket
  try {
    msg = dnsPacket.decode(wire)
  } catch (err) {
    return { ok: false, error: `undecodable response over ${transport}: ${errorMessage(err)}` }
  }
  const opt = (msg.additionals ?? []).find((r): r is dnsPacket.OptAnswer => r.type === 'OPT')
  const rcode = ((opt?.extendedRcode ?? 0) << 4) | ((msg.flags ?? 0) & 0xf)
  return { ok: true, msg, rcode, opt, transport }
}

/** One query to one server; a truncated UDP answer is asked again over TCP, as a resolver would. */
async function ask(server: DoctorServer, q: QuerySpec, timeoutMs: number): Promise<Result> {
  const id = randomInt(0, 0x10000)
  const wire = encodeQuery(q, id)
  if (q.tcp) return tcpExchange(server, wire, id, timeoutMs)
  const r = await udpExchange(server, wire, id, timeoutMs)
  if (r.ok && r.msg.flag_tc) return tcpExchange(server, wire, id, timeoutMs)
  return r
}

function udpExchange(server: DoctorServer, wire: Buffer, id: number, timeoutMs: number): Promise<Result> {
  return new Promise((resolve) => {
    // Connected, so an ICMP port unreachable comes back as ECONNREFUSED at once instead of a timeout.
    const sock = createSocket(isIPv6(server.address) ? 'udp6' : 'udp4')
    let done = false
    const timers: NodeJS.Timeout[] = []
    const finish = (r: Result): void => {
      if (done) return
      done = true
      for (const t of timers) clearTimeout(t)
      try {
        sock.close()
      } catch {
        // already closed by an error
      }
      resolve(r)
    }
    sock.on('error', (err) => finish({ ok: false, error: `UDP: ${socketError(err)}` }))
    sock.on('message', (msg) => {
      // Only our answer: same id, QR set. Anything else on the socket is ignored, as resolvers do.
      if (msg.length < 12 || msg.readUInt16BE(0) !== id || (msg[2]! & 0x80) === 0) return
      finish(decodeReply(msg, 'udp'))
    })
    sock.connect(server.port, server.address, () => {
      const send = (): void => {
        if (!done) sock.send(wire, (err) => err && finish({ ok: false, error: `UDP: ${socketError(err)}` }))
      }
      send()
      // One retransmission: a single lost datagram should not read as a dead instance.
      timers.push(setTimeout(send, timeoutMs / 2))
    })
    timers.push(setTimeout(() => finish({ ok: false, error: `no answer over UDP within ${timeoutMs} ms` }), timeoutMs))
  })
}

function tcpExchange(server: DoctorServer, wire: Buffer, id: number, timeoutMs: number): Promise<Result> {
  return new Promise((resolve) => {
    const sock = connect({ host: server.address, port: server.port })
    let buf = Buffer.alloc(0)
    let done = false
    const finish = (r: Result): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      sock.destroy()
      resolve(r)
    }
    const timer = setTimeout(() => finish({ ok: false, error: `no answer over TCP within ${timeoutMs} ms` }), timeoutMs)
    sock.on('error', (err) => finish({ ok: false, error: `TCP: ${socketError(err)}` }))
    sock.on('close', () => finish({ ok: false, error: 'TCP: connection closed before an answer' }))
    sock.on('connect', () => {
      const len = Buffer.alloc(2)
      len.writeUInt16BE(wire.length)
      sock.write(Buffer.concat([len, wire]))
    })
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk])
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0))
        buf = buf.subarray(2 + msg.length)
        if (msg.length >= 12 && msg.readUInt16BE(0) === id) return finish(decodeReply(msg, 'tcp'))
      }
    })
  })
}

// ---- what one instance serves ---------------------------------------------------------------

interface Rrset {
  readonly ttl: number
  /** Lowercased names without the trailing dot, or addresses; sorted, unique. */
  readonly values: readonly string[]
}

interface InstanceView {
  readonly server: DoctorServer
  readonly label: string
  /** Why the instance could not be checked at all (no answer to SOA); the rest is then empty. */
  readonly down: string | undefined
  readonly soa: Result | undefined
  readonly serial: number | undefined
  readonly ns: Result | undefined
  readonly nsSet: Rrset | undefined
  readonly outside: Result | undefined
  readonly ecs: Result | undefined
  readonly badvers: Result | undefined
  readonly tcp: Result | undefined
  /** Addresses each in-bailiwick NS name has on this instance. */
  readonly glue: ReadonlyMap<string, { readonly a: Rrset | undefined; readonly aaaa: Rrset | undefined }>
}

function label(s: DoctorServer): string {
  return isIPv6(s.address) ? `[${s.address}]:${s.port}` : `${s.address}:${s.port}`
}

/** Lowercase, no trailing dot: how names are compared (DNS names are case-insensitive). */
function norm(name: string): string {
  return name.toLowerCase().replace(/\.$/, '')
}

function fqdn(name: string): string {
  return name === '' ? '.' : `${name}.`
}

function inBailiwick(name: string, zone: string): boolean {
  return name === zone || name.endsWith(`.${zone}`)
}

function rrsetOf(records: readonly dnsPacket.Answer[] | undefined, owner: string, type: string): Rrset | undefined {
  const matching = (records ?? []).filter((r) => r.type === type && norm(r.name) === owner)
  if (matching.length === 0) return undefined
  const values = new Set<string>()
  let ttl = Number.POSITIVE_INFINITY
  for (const r of matching) {
    const data = (r as { data: unknown }).data
    if (typeof data === 'string') values.add(type === 'NS' ? norm(data) : data.toLowerCase())
    ttl = Math.min(ttl, (r as { ttl?: number }).ttl ?? 0)
  }
  return { ttl, values: [...values].sort() }
}

function soaSerial(r: Result | undefined, zone: string): number | undefined {
  if (!r?.ok) return undefined
  const soa = (r.msg.answers ?? []).find((a) => a.type === 'SOA' && norm(a.name) === zone)
  return soa ? (soa as dnsPacket.SoaAnswer).data.serial : undefined
}

async function inspectInstance(server: DoctorServer, zone: string, timeoutMs: number): Promise<InstanceView> {
  const base = { server, label: label(server) }
  const empty = {
    serial: undefined,
    ns: undefined,
    nsSet: undefined,
    outside: undefined,
    ecs: undefined,
    badvers: undefined,
    tcp: undefined,
    glue: new Map(),
  }
  if (isIP(server.address) === 0)
    return { ...base, ...empty, soa: undefined, down: `"${server.address}" is not an IP address` }
  const soa = await ask(server, { name: zone, type: 'SOA', edns: {} }, timeoutMs)
  if (!soa.ok) return { ...base, ...empty, soa, down: soa.error }
  const [ns, outside, ecs, badvers, tcp] = await Promise.all([
    ask(server, { name: zone, type: 'NS', edns: {} }, timeoutMs),
    ask(server, { name: OUTSIDE_NAME, type: 'A', edns: {} }, timeoutMs),
    ask(server, { name: zone, type: 'SOA', edns: { ecs: { address: ECS_ADDRESS, prefix: ECS_PREFIX } } }, timeoutMs),
    ask(server, { name: zone, type: 'SOA', edns: { version: 1 } }, timeoutMs),
    ask(server, { name: zone, type: 'SOA', edns: {}, tcp: true }, timeoutMs),
  ])
  const nsSet = ns.ok ? rrsetOf(ns.msg.answers, zone, 'NS') : undefined
  const glue = new Map<string, { a: Rrset | undefined; aaaa: Rrset | undefined }>()
  await Promise.all(
    (nsSet?.values ?? [])
      .filter((n) => inBailiwick(n, zone))
      .map(async (n) => {
        const [a, aaaa] = await Promise.all([
          ask(server, { name: n, type: 'A', edns: {} }, timeoutMs),
          ask(server, { name: n, type: 'AAAA', edns: {} }, timeoutMs),
        ])
        glue.set(n, {
          a: a.ok ? rrsetOf(a.msg.answers, n, 'A') : undefined,
          aaaa: aaaa.ok ? rrsetOf(aaaa.msg.answers, n, 'AAAA') : undefined,
        })
      }),
  )
  return {
    ...base,
    down: undefined,
    soa,
    serial: soaSerial(soa, zone),
    ns,
    nsSet,
    outside,
    ecs,
    badvers,
    tcp,
    glue,
  }
}

// ---- the checks -------------------------------------------------------------------------------

export async function runDoctor(opts: DoctorOptions): Promise<Finding[]> {
  const zone = norm(opts.zone)
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const [parentReply, views] = await Promise.all([
    isIP(opts.parent.address) === 0
      ? Promise.resolve<Result>({ ok: false, error: `"${opts.parent.address}" is not an IP address` })
      : ask(opts.parent, { name: zone, type: 'NS', edns: {} }, timeoutMs),
    Promise.all(opts.instances.map((s) => inspectInstance(s, zone, timeoutMs))),
  ])
  const findings: Finding[] = []
  const up = views.filter((v) => v.down === undefined)
  // Instances that answer but do not serve the zone get one finding (soa), not one per check.
  const serving = up.filter((v) => v.serial !== undefined)
  const reference = referenceNs(serving)

  findings.push(...checkDelegation(zone, opts.parent, parentReply, reference))
  findings.push(...checkSoa(zone, views))
  findings.push(...checkNs(zone, serving, reference))
  findings.push(...checkOutside(up))
  findings.push(...checkEcs(serving))
  findings.push(...checkEdns(up))
  findings.push(...checkTcp(zone, serving))
  if (opts.redis) findings.push(...(await checkRedis(opts.redis, opts, zone)))
  if (opts.zonesDir !== undefined) findings.push(...checkZoneFile(zone, opts.zonesDir, serving))
  return findings
}

/** The NS set (and its instance) most instances serve: what the parent and the others are compared with. */
function referenceNs(up: readonly InstanceView[]): InstanceView | undefined {
  const counts = new Map<string, { n: number; view: InstanceView }>()
  for (const v of up) {
    if (!v.nsSet) continue
    const key = v.nsSet.values.join(' ')
    const c = counts.get(key)
    if (c) c.n++
    else counts.set(key, { n: 1, view: v })
  }
  let best: { n: number; view: InstanceView } | undefined
  for (const c of counts.values()) if (!best || c.n > best.n) best = c
  return best?.view
}

function nsLines(zone: string, ttl: number, names: readonly string[]): string[] {
  return names.map((n) => `${fqdn(zone)}  ${ttl} IN NS  ${fqdn(n)}`)
}

function addressLines(name: string, ttl: number, type: 'A' | 'AAAA', addresses: readonly string[]): string[] {
  return addresses.map((a) => `${fqdn(name)}  ${ttl} IN ${type}  ${a}`)
}

/** The whole delegation the parent should carry, as the instances describe the zone. */
function delegationBlock(zone: string, ref: InstanceView): string[] {
  const ns = ref.nsSet!
  const lines = nsLines(zone, ns.ttl, ns.values)
  for (const n of ns.values) {
    const g = ref.glue.get(n)
    if (g?.a) lines.push(...addressLines(n, g.a.ttl, 'A', g.a.values))
    if (g?.aaaa) lines.push(...addressLines(n, g.aaaa.ttl, 'AAAA', g.aaaa.values))
  }
  return lines
}

function checkDelegation(zone: string, parent: DoctorServer, reply: Result, ref: InstanceView | undefined): Finding[] {
  const where = `parent ${label(parent)}`
  const out: Finding[] = []
  if (!reply.ok)
    return [
      {
        level: 'error',
        check: 'delegation',
        message: `${where}: ${reply.error}`,
        fix: `check that a server authoritative for the parent zone of ${fqdn(zone)} listens there (dig NS ${fqdn(zone)} @${parent.address} -p ${parent.port} +norecurse)`,
      },
    ]
  if (reply.rcode !== NOERROR) {
    return [
      {
        level: 'error',
        check: 'delegation',
        message: `${where} answers ${rcodeName(reply.rcode)} for ${fqdn(zone)} NS: it does not serve the parent zone, or the delegation is missing`,
        fix: ref?.nsSet
          ? `in the parent zone, add:\n${delegationBlock(zone, ref).join('\n')}`
          : `point --parent at a server authoritative for the parent zone of ${fqdn(zone)}`,
      },
    ]
  }
  const authoritative = reply.msg.flag_aa && rrsetOf(reply.msg.answers, zone, 'NS') !== undefined
  const parentNs = authoritative ? rrsetOf(reply.msg.answers, zone, 'NS') : rrsetOf(reply.msg.authorities, zone, 'NS')
  if (!parentNs) {
    const soaOnly = (reply.msg.authorities ?? []).some((r) => r.type === 'SOA')
    // A referral to a cut above the zone: the server asked is a grandparent, not the parent.
    const above = (reply.msg.authorities ?? []).find((r) => r.type === 'NS' && inBailiwick(zone, norm(r.name)))
    if (above)
      return [
        {
          level: 'error',
          check: 'delegation',
          message: `${where} refers ${fqdn(zone)} to the servers of ${fqdn(norm(above.name))}: it is not the parent of the zone`,
          fix: `point --parent at a server of ${fqdn(norm(above.name))} (or of the zone directly above ${fqdn(zone)})`,
        },
      ]
    return [
      {
        level: 'error',
        check: 'delegation',
        message: `${where} has no delegation for ${fqdn(zone)}${soaOnly ? ' (it answers NODATA from its own zone: no NS records at the cut)' : ''}`,
        fix: ref?.nsSet
          ? `in the parent zone, add:\n${delegationBlock(zone, ref).join('\n')}`
          : `add NS records for ${fqdn(zone)} (and glue for names inside it) to the parent zone`,
      },
    ]
  }
  if (!authoritative && reply.msg.flag_aa)
    out.push({
      level: 'warn',
      check: 'delegation',
      message: `${where} sets AA on the referral for ${fqdn(zone)}; a referral must have AA clear (RFC 1034 4.3.2)`,
      fix: 'check the parent server software: the delegation point must not be answered as authoritative data',
    })
  out.push({
    level: 'ok',
    check: 'delegation',
    message: authoritative
      ? `${where} answers ${fqdn(zone)} NS authoritatively (it serves the zone itself): ${parentNs.values.map(fqdn).join(', ')}`
      : `${where} refers ${fqdn(zone)} to ${parentNs.values.map(fqdn).join(', ')}`,
  })
  if (!ref?.nsSet) {
    out.push({
      level: 'error',
      check: 'delegation',
      message: 'no instance serves the zone with NS records, so the delegation cannot be compared with them',
    })
    return out
  }
  const childNs = ref.nsSet
  const missing = childNs.values.filter((n) => !parentNs.values.includes(n))
  const extra = parentNs.values.filter((n) => !childNs.values.includes(n))
  if (missing.length > 0)
    out.push({
      level: 'error',
      check: 'delegation',
      message: `${where} lacks NS ${missing.map(fqdn).join(', ')}, which the zone's apex names (instance ${ref.label})`,
      fix: `in the parent zone, add:\n${nsLines(zone, childNs.ttl, missing).join('\n')}`,
    })
  if (extra.length > 0)
    out.push({
      level: 'error',
      check: 'delegation',
      message: `${where} delegates to ${extra.map(fqdn).join(', ')}, which the zone's apex does not name (instance ${ref.label}); resolvers will try servers that may not answer`,
      fix: `in the parent zone, remove:\n${nsLines(zone, parentNs.ttl, extra).join('\n')}\nor add them to the zone's apex NS records`,
    })
  if (missing.length === 0 && extra.length === 0)
    out.push({ level: 'ok', check: 'delegation', message: `NS set at the parent matches the zone's apex NS set` })
  if (parentNs.ttl !== childNs.ttl)
    out.push({
      level: 'warn',
      check: 'delegation',
      message: `NS TTL differs: parent ${parentNs.ttl}, zone ${childNs.ttl}; resolvers see one or the other depending on where they learned it`,
      fix: `use the same TTL on both sides, e.g. at the parent:\n${nsLines(zone, childNs.ttl, parentNs.values).join('\n')}`,
    })
  if (!authoritative) out.push(...checkGlue(zone, where, reply, parentNs, ref))
  return out
}

function checkGlue(zone: string, where: string, reply: Reply, parentNs: Rrset, ref: InstanceView): Finding[] {
  const out: Finding[] = []
  // Every name the referral or the zone names: glue for one only the parent lists is checked too.
  const names = [...new Set([...parentNs.values, ...ref.nsSet!.values])].sort()
  for (const n of names) {
    if (!inBailiwick(n, zone)) {
      out.push({
        level: 'ok',
        check: 'glue',
        message: `${fqdn(n)} is outside ${fqdn(zone)}: resolvers look its address up elsewhere, so the parent needs no glue for it`,
      })
      continue
    }
    const served = ref.glue.get(n)
    if (!served && !ref.nsSet!.values.includes(n)) continue
    if (!served?.a && !served?.aaaa) {
      out.push({
        level: 'error',
        check: 'glue',
        message: `${fqdn(n)} is inside the zone but instance ${ref.label} serves no A or AAAA for it: the delegation is lame`,
        fix: `in the zone file, add the name server's address, e.g.:\n${fqdn(n)}  3600 IN A  <address>`,
      })
      continue
    }
    for (const type of ['A', 'AAAA'] as const) {
      const want = type === 'A' ? served.a : served.aaaa
      const have = rrsetOf(reply.msg.additionals, n, type)
      const wantValues = want?.values ?? []
      const haveValues = have?.values ?? []
      const missing = wantValues.filter((a) => !haveValues.includes(a))
      const extra = haveValues.filter((a) => !wantValues.includes(a))
      if (missing.length === 0 && extra.length === 0) {
        if (wantValues.length > 0)
          out.push({
            level: 'ok',
            check: 'glue',
            message: `${where} has glue ${fqdn(n)} ${type} ${wantValues.join(', ')}, as the zone serves`,
          })
        continue
      }
      // Removal first, so the fix reads as "replace this with that" when an address changed.
      const fix: string[] = []
      if (extra.length > 0)
        fix.push(`in the parent zone, remove:\n${addressLines(n, have!.ttl, type, extra).join('\n')}`)
      if (missing.length > 0)
        fix.push(
          `${extra.length > 0 ? 'and add' : 'in the parent zone, add'}:\n${addressLines(n, want!.ttl, type, missing).join('\n')}`,
        )
      const what =
        haveValues.length === 0
          ? `has no ${type} glue for ${fqdn(n)}`
          : `has ${type} glue ${fqdn(n)} ${haveValues.join(', ')}`
      out.push({
        level: 'error',
        check: 'glue',
        message: `${where} ${what}, but the zone serves ${wantValues.length > 0 ? wantValues.join(', ') : `no ${type}`} (instance ${ref.label})`,
        fix: fix.join('\n'),
      })
    }
  }
  return out
}

/** RFC 1982 serial arithmetic: positive when `a` is newer than `b`. */
export function serialDiff(a: number, b: number): number {
  const d = (a - b + 2 ** 32) % 2 ** 32
  return d < 2 ** 31 ? d : d - 2 ** 32
}

function checkSoa(zone: string, views: readonly InstanceView[]): Finding[] {
  const out: Finding[] = []
  for (const v of views) {
    if (v.down !== undefined) {
      out.push({
        level: 'error',
        check: 'soa',
        message: `instance ${v.label} does not answer: ${v.down}`,
        fix: `check that gslb serve runs there with --listen ${v.label} and that UDP and TCP to it are allowed (dig SOA ${fqdn(zone)} @${v.server.address} -p ${v.server.port})`,
      })
      continue
    }
    const r = v.soa as Reply
    if (r.rcode !== NOERROR || v.serial === undefined) {
      const referral = r.rcode === NOERROR && rrsetOf(r.msg.authorities, zone, 'NS') !== undefined
      out.push({
        level: 'error',
        check: 'soa',
        message: referral
          ? `instance ${v.label} answers ${fqdn(zone)} SOA with a referral: it serves the parent zone, not the zone itself`
          : `instance ${v.label} answers ${rcodeName(r.rcode)}${r.rcode === NOERROR ? ' without an SOA' : ''} for ${fqdn(zone)} SOA: it does not serve the zone`,
        fix: `put the zone file in the instance's --zones directory and look for "zone file rejected" lines in its log (gslb check DIR shows the errors)`,
      })
      continue
    }
    if (!r.msg.flag_aa)
      out.push({
        level: 'error',
        check: 'soa',
        message: `instance ${v.label} answers ${fqdn(zone)} SOA without the AA flag: something other than gslb answers there (a resolver or a proxy)`,
        fix: `make ${v.label} the gslb instance itself, not a resolver in front of it`,
      })
  }
  const serials = views.filter((v) => v.serial !== undefined)
  if (serials.length === 0) return out
  // The serial most instances serve; on a tie the newest, since the others are then behind it.
  const counts = new Map<number, number>()
  for (const v of serials) counts.set(v.serial!, (counts.get(v.serial!) ?? 0) + 1)
  const reference = [...counts].sort((a, b) => b[1] - a[1] || serialDiff(b[0], a[0]))[0]![0]
  const differ = serials.filter((v) => v.serial !== reference)
  if (differ.length === 0) {
    out.push({
      level: 'ok',
      check: 'soa',
      message: `${serials.length} instance(s) answer ${fqdn(zone)} SOA authoritatively with serial ${reference}`,
    })
    return out
  }
  const agreeing = serials.filter((v) => v.serial === reference).map((v) => v.label)
  for (const v of differ) {
    const d = serialDiff(v.serial!, reference)
    out.push({
      level: 'error',
      check: 'soa',
      message: `instance ${v.label} serves serial ${v.serial}, ${d < 0 ? `behind by ${-d}` : `ahead by ${d}`} of ${reference} (served by ${agreeing.join(', ')})`,
      fix:
        d < 0
          ? `the instance did not load the current zone file: check its --zones directory has the new file, look for "zone file rejected" lines in its log, and send it SIGHUP if it runs with --no-watch`
          : `the other instances did not load the newest zone file: deploy it to all of them (and look for "zone file rejected" lines in their logs)`,
    })
  }
  return out
}

function checkNs(zone: string, up: readonly InstanceView[], ref: InstanceView | undefined): Finding[] {
  const out: Finding[] = []
  for (const v of up) {
    if (v.serial === undefined) continue
    if (!v.ns?.ok || !v.nsSet) {
      out.push({
        level: 'error',
        check: 'ns',
        message: `instance ${v.label} answers no NS for ${fqdn(zone)}${v.ns && !v.ns.ok ? `: ${v.ns.error}` : ''}`,
        fix: 'every zone needs NS records at its apex naming the servers',
      })
      continue
    }
    if (ref?.nsSet && v.nsSet.values.join(' ') !== ref.nsSet.values.join(' '))
      out.push({
        level: 'error',
        check: 'ns',
        message: `instance ${v.label} serves NS ${v.nsSet.values.map(fqdn).join(', ')}, instance ${ref.label} serves ${ref.nsSet.values.map(fqdn).join(', ')}`,
        fix: 'deploy the same zone file to every instance',
      })
  }
  // Instances serving different addresses for a name server send resolvers to different places.
  if (ref?.nsSet)
    for (const n of ref.nsSet.values) {
      if (!inBailiwick(n, zone)) continue
      const seen = new Map<string, string[]>()
      for (const v of up) {
        const g = v.glue.get(n)
        if (!g) continue
        const key = [...(g.a?.values ?? []), ...(g.aaaa?.values ?? [])].join(' ') || '(none)'
        seen.set(key, [...(seen.get(key) ?? []), v.label])
      }
      if (seen.size > 1)
        out.push({
          level: 'error',
          check: 'ns',
          message: `instances disagree on the address of ${fqdn(n)}: ${[...seen].map(([a, l]) => `${l.join(', ')}: ${a}`).join('; ')}`,
          fix: 'deploy the same zone file to every instance',
        })
    }
  const ok = up.filter((v) => v.nsSet && ref?.nsSet && v.nsSet.values.join(' ') === ref.nsSet.values.join(' '))
  if (ref?.nsSet && ok.length === up.length)
    out.push({
      level: 'ok',
      check: 'ns',
      message: `${ok.length} instance(s) serve the same NS set: ${ref.nsSet.values.map(fqdn).join(', ')}`,
    })
  return out
}

function checkOutside(up: readonly InstanceView[]): Finding[] {
  const out: Finding[] = []
  for (const v of up) {
    const r = v.outside
    if (!r) continue
    if (!r.ok) {
      out.push({
        level: 'warn',
        check: 'refused',
        message: `instance ${v.label} did not answer a query for ${OUTSIDE_NAME}. (outside its zones): ${r.error}`,
      })
    } else if (r.msg.flag_ra || (r.rcode === NOERROR && (r.msg.answers ?? []).length > 0)) {
      out.push({
        level: 'error',
        check: 'refused',
        message: `instance ${v.label} answers ${OUTSIDE_NAME}. with ${rcodeName(r.rcode)}${r.msg.flag_ra ? ' and RA set' : ''}: it behaves like a recursive resolver`,
        fix: `an authoritative server must not recurse (open resolvers are abused for amplification): make ${v.label} the gslb instance itself, not a resolver`,
      })
    } else if (r.rcode === REFUSED) {
      out.push({
        level: 'ok',
        check: 'refused',
        message: `instance ${v.label} REFUSES names outside its zones (not recursive)`,
      })
    } else {
      out.push({
        level: 'warn',
        check: 'refused',
        message: `instance ${v.label} answers ${rcodeName(r.rcode)} for ${OUTSIDE_NAME}. where gslb answers REFUSED: is something else listening there?`,
      })
    }
  }
  return out
}

function checkEcs(up: readonly InstanceView[]): Finding[] {
  const out: Finding[] = []
  for (const v of up) {
    const r = v.ecs
    if (!r) continue
    if (!r.ok || r.rcode !== NOERROR) {
      out.push({
        level: 'warn',
        check: 'ecs',
        message: `instance ${v.label} did not answer a query with ECS ${ECS_ADDRESS}/${ECS_PREFIX}: ${r.ok ? rcodeName(r.rcode) : r.error}`,
        fix: 'something on the path drops or rejects EDNS Client Subnet; geo answers will follow the resolver address instead',
      })
      continue
    }
    const ecs = (r.opt?.options ?? []).find((o) => o.code === 8) as
      | { family?: number; sourcePrefixLength?: number; scopePrefixLength?: number; ip?: string }
      | undefined
    if (!ecs) {
      out.push({
        level: 'warn',
        check: 'ecs',
        message: `instance ${v.label} does not echo the ECS option (RFC 7871 7.2.1): resolvers will not cache per subnet`,
        fix: 'a proxy or load balancer in front of the instance strips EDNS options; let them through',
      })
    } else if (
      ecs.family !== 1 ||
      ecs.sourcePrefixLength !== ECS_PREFIX ||
      ecs.ip !== ECS_ADDRESS ||
      (ecs.scopePrefixLength ?? 0) > ECS_PREFIX
    ) {
      out.push({
        level: 'warn',
        check: 'ecs',
        message: `instance ${v.label} echoes ECS as ${ecs.ip}/${ecs.sourcePrefixLength}/${ecs.scopePrefixLength}, not ${ECS_ADDRESS}/${ECS_PREFIX} with a scope of at most ${ECS_PREFIX}`,
      })
    } else {
      out.push({
        level: 'ok',
        check: 'ecs',
        message: `instance ${v.label} echoes ECS ${ECS_ADDRESS}/${ECS_PREFIX} (scope /${ecs.scopePrefixLength ?? 0})`,
      })
    }
  }
  return out
}

function checkEdns(up: readonly InstanceView[]): Finding[] {
  const out: Finding[] = []
  for (const v of up) {
    const soa = v.soa as Reply
    const problems: string[] = []
    if (!soa.opt) problems.push('no OPT record in the answer to an EDNS query (RFC 6891 7)')
    const bv = v.badvers
    if (bv && (!bv.ok || bv.rcode !== BADVERS))
      problems.push(`EDNS version 1 answered ${bv.ok ? rcodeName(bv.rcode) : bv.error} instead of BADVERS`)
    if (problems.length > 0)
      out.push({
        level: 'warn',
        check: 'edns',
        message: `instance ${v.label}: ${problems.join('; ')}`,
        fix: 'a proxy or firewall in front of the instance rewrites EDNS; let OPT records through unchanged',
      })
    else out.push({ level: 'ok', check: 'edns', message: `instance ${v.label} echoes OPT and answers BADVERS` })
  }
  return out
}

function checkTcp(zone: string, up: readonly InstanceView[]): Finding[] {
  const out: Finding[] = []
  for (const v of up) {
    const tcp = v.tcp
    if (!tcp?.ok)
      out.push({
        level: 'error',
        check: 'tcp',
        message: `instance ${v.label}: SOA over TCP failed: ${tcp ? (tcp.ok ? '' : tcp.error) : 'not tried'}`,
        fix: `allow TCP to ${v.label} too: large and truncated answers are retried over TCP (RFC 7766)`,
      })
    else if (tcp.rcode !== NOERROR || !tcp.msg.flag_aa || soaSerial(tcp, zone) !== v.serial)
      out.push({
        level: 'error',
        check: 'tcp',
        message: `instance ${v.label} answers SOA over TCP differently from UDP (${rcodeName(tcp.rcode)}${tcp.msg.flag_aa ? '' : ', no AA'}): UDP and TCP reach different servers`,
        fix: `make the UDP and TCP listeners at ${v.label} the same gslb instance`,
      })
    else out.push({ level: 'ok', check: 'tcp', message: `instance ${v.label} answers SOA over TCP` })
  }
  return out
}

// ---- shared state -----------------------------------------------------------------------------

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no reply within ${ms} ms`)), ms)
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)}s`
}

async function checkRedis(store: StateStore, opts: DoctorOptions, zone: string): Promise<Finding[]> {
  const timeoutMs = Math.max(opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, 1_000)
  let data: StateData
  let instances: InstanceInfo[]
  try {
    ;[data, instances] = await Promise.all([
      withTimeout(store.load(), timeoutMs, 'load'),
      withTimeout(store.instances(), timeoutMs, 'instances'),
    ])
  } catch (err) {
    return [
      {
        level: 'error',
        check: 'redis',
        message: `the state store is unreachable: ${errorMessage(err)}`,
        fix: 'check the URL, credentials and --redis-prefix (redis-cli -u URL ping); instances keep their last view meanwhile',
      },
    ]
  }
  const out: Finding[] = [
    { level: 'ok', check: 'redis', message: `state store reachable, generation ${data.generation}` },
  ]
  out.push(...(await checkInstances(store, data.generation, instances, opts.instances.length, timeoutMs)))
  out.push(...checkProbers(data, opts, zone))
  return out
}

async function checkInstances(
  store: StateStore,
  generation: number,
  first: readonly InstanceInfo[],
  expected: number,
  timeoutMs: number,
): Promise<Finding[]> {
  const out: Finding[] = []
  if (first.length === 0)
    return [
      {
        level: expected > 0 ? 'error' : 'warn',
        check: 'instances',
        message: 'no instance heartbeat in the store: no gslb serve uses this Redis with this prefix',
        fix: 'start the instances with the same --redis URL and --redis-prefix as given here',
      },
    ]
  if (first.length < expected)
    out.push({
      level: 'warn',
      check: 'instances',
      message: `${first.length} instance heartbeat(s) in the store for ${expected} instance address(es) checked`,
      fix: 'an instance may run without --redis (embedded state) or with another --redis-prefix; they then answer from their own health view',
    })
  // A heartbeat may predate the latest write by one interval: look again before calling it behind.
  let latest = first
  if (first.some((i) => i.generation !== generation)) {
    await sleep(INSTANCE_HEARTBEAT_MS + 500)
    try {
      latest = await withTimeout(store.instances(), timeoutMs, 'instances')
      const data = await withTimeout(store.load(), timeoutMs, 'load')
      generation = data.generation
    } catch {
      // Keep the first reading; reachability was already reported.
    }
  }
  const now = Date.now()
  const versions = new Set(latest.map((i) => i.version))
  for (const i of latest) {
    const who = `instance ${i.id} (${i.host}, ${i.version})`
    const problems: Finding[] = []
    const age = now - i.at
    if (age > INSTANCE_HEARTBEAT_TTL_MS)
      problems.push({
        level: 'error',
        check: 'instances',
        message: `${who}: last heartbeat ${seconds(age)} ago (every ${seconds(INSTANCE_HEARTBEAT_MS)} expected)`,
        fix: "the instance is hung, or its clock is behind this host's (liveness uses the writer's clock): check NTP (timedatectl) and its log",
      })
    else if (age < -INSTANCE_HEARTBEAT_TTL_MS)
      problems.push({
        level: 'warn',
        check: 'instances',
        message: `${who}: heartbeat dated ${seconds(-age)} in the future`,
        fix: "its clock is ahead of this host's; probe reports and liveness use the writer's clock: check NTP (timedatectl)",
      })
    if (i.staleMs > INSTANCE_SYNC_STALE_MS)
      problems.push({
        level: 'error',
        check: 'instances',
        message: `${who}: has not read the state store for ${seconds(i.staleMs)}; it answers from an old view`,
        fix: 'look for "redis state store disconnected" in its log; check its network path and credentials to Redis',
      })
    if (i.generation !== generation)
      problems.push({
        level: 'error',
        check: 'instances',
        message: `${who}: serves generation ${i.generation}, the store is at ${generation}${i.generation > generation ? ' (the store went back: Redis lost its data?)' : ''}`,
        fix:
          i.generation > generation
            ? 'Redis restarted without persistence or was flushed; the instance reloads once it hears of a change (any operator action), or restart it'
            : 'the instance missed change notifications: look for redis disconnections in its log; restart it if it stays behind',
      })
    if (problems.length > 0) out.push(...problems)
    else
      out.push({
        level: 'ok',
        check: 'instances',
        message: `${who}: heartbeat ${seconds(Math.max(0, age))} ago, generation ${i.generation}`,
      })
  }
  if (versions.size > 1)
    out.push({
      level: 'warn',
      check: 'instances',
      message: `instances run different versions: ${[...versions].sort().join(', ')}`,
      fix: 'finish the rolling upgrade; versions may answer differently',
    })
  return out
}

function checkProbers(data: StateData, opts: DoctorOptions, zone: string): Finding[] {
  const out: Finding[] = []
  const now = Date.now()
  const expected = expectedTargets(opts.zonesDir, zone)
  for (const [vantage, reports] of [...data.probes].sort(([a], [b]) => a.localeCompare(b))) {
    const probers = new Map<string, { at: number; lifetime: number; count: number }>()
    for (const r of reports.values()) {
      const p = probers.get(r.prober) ?? { at: 0, lifetime: 0, count: 0 }
      probers.set(r.prober, {
        at: Math.max(p.at, r.at),
        lifetime: Math.max(p.lifetime, r.expiresAt - r.at),
        count: p.count + 1,
      })
    }
    let alive = 0
    for (const [prober, p] of [...probers].sort(([a], [b]) => a.localeCompare(b))) {
      const age = now - p.at
      // Reports live three check intervals: two without a fresh one means the prober stalled.
      if (age > (p.lifetime * 2) / 3)
        out.push({
          level: 'warn',
          check: 'probers',
          message: `vantage ${vantage}: prober ${prober} last reported ${seconds(age)} ago (${p.count} report(s), expiring within ${seconds(Math.max(0, p.at + p.lifetime - now))})`,
          fix: `check that gslb probe --region ${vantage} runs and reaches Redis (its log says why probes stall)`,
        })
      else {
        alive++
        out.push({
          level: 'ok',
          check: 'probers',
          message: `vantage ${vantage}: prober ${prober} reported ${seconds(Math.max(0, age))} ago (${p.count} report(s))`,
        })
      }
    }
    if (alive === 0)
      out.push({
        level: 'error',
        check: 'probers',
        message: `vantage ${vantage}: no prober has reported recently; its reports will expire and it will stop counting in the quorum`,
        fix: `start or restart gslb probe --zones DIR --redis URL --region ${vantage}`,
      })
    if (expected) {
      const missing = expected.filter((t) => !reports.has(t))
      if (missing.length > 0)
        out.push({
          level: 'warn',
          check: 'probers',
          message: `vantage ${vantage}: no live report for ${missing.join(', ')}`,
          fix: `the probers of ${vantage} may run with another zones directory, or have just (re)started; check gslb probe --region ${vantage}`,
        })
    }
  }
  for (const region of opts.regions ?? [])
    if (!data.probes.has(region))
      out.push({
        level: 'error',
        check: 'probers',
        message: `region ${region}: no live probe report; the region is dead and its view is missing from every quorum`,
        fix: `start gslb probe --zones DIR --redis URL --region ${region} and check its log`,
      })
  if (data.probes.size === 0 && (opts.regions ?? []).length === 0) {
    const needed = expected !== undefined && expected.length > 0
    out.push({
      level: needed ? 'error' : 'warn',
      check: 'probers',
      message: needed
        ? `no probe reports in the store, but ${fqdn(zone)} has ${expected.length} checked endpoint(s): nothing is probing them`
        : 'no probe reports in the store (fine if no zone has health checks)',
      fix: 'start gslb probe --zones DIR --redis URL --region NAME per region, with the same --redis-prefix',
    })
  }
  return out
}

/** Probe targets of the zone, from the zones directory; undefined when unknown. */
function expectedTargets(zonesDir: string | undefined, zone: string): string[] | undefined {
  if (zonesDir === undefined) return undefined
  try {
    const set = new ZoneSet(zonesDir)
    set.reload()
    const z = set.table.zones.find((c) => c.stateKey === zone)
    return z ? [...new Set(z.probes.map((p) => p.id))].sort() : undefined
  } catch {
    return undefined
  }
}

// ---- the zone file ----------------------------------------------------------------------------

function checkZoneFile(zone: string, zonesDir: string, up: readonly InstanceView[]): Finding[] {
  let report: ReturnType<ZoneSet['reload']>
  try {
    report = new ZoneSet(zonesDir).reload()
  } catch (err) {
    return [{ level: 'error', check: 'zone-file', message: errorMessage(err) }]
  }
  const file = report.files.find((f) => f.zone !== undefined && norm(f.zone) === zone)
  if (!file) {
    // A file that fails to load names no zone; those named after it are the likely culprits.
    const rejected = report.files.filter((f) => f.errors.length > 0)
    const likely = rejected.filter((f) => (f.file.split('/').pop() ?? '').toLowerCase().startsWith(zone))
    const shown = likely.length > 0 ? likely : rejected
    return [
      {
        level: 'error',
        check: 'zone-file',
        message:
          shown.length > 0
            ? `no loadable file for ${fqdn(zone)} in ${zonesDir}: ${shown.flatMap((f) => f.errors.map((e) => e.message)).join('; ')}`
            : `no file for ${fqdn(zone)} in ${zonesDir}`,
        fix: `run gslb check ${zonesDir}; the instances keep serving the last version that loaded`,
      },
    ]
  }
  const out: Finding[] = []
  for (const v of up) {
    if (v.serial === undefined || file.serial === undefined) continue
    const d = serialDiff(v.serial, file.serial)
    if (d === 0) continue
    out.push(
      d < 0
        ? {
            level: 'error',
            check: 'zone-file',
            message: `instance ${v.label} serves serial ${v.serial}, ${file.file} has ${file.serial} (behind by ${-d}): the instance failed to reload`,
            fix: `look in the instance's log for "zone file rejected" lines naming ${file.file} (gslb check ${zonesDir} shows the same errors); check it reads this directory, and send SIGHUP if it runs with --no-watch`,
          }
        : {
            level: 'warn',
            check: 'zone-file',
            message: `instance ${v.label} serves serial ${v.serial}, newer than ${file.file} (${file.serial}): this directory is not what the instance loads`,
            fix: `compare ${zonesDir} with the instance's --zones directory`,
          },
    )
  }
  if (out.length === 0)
    out.push({
      level: 'ok',
      check: 'zone-file',
      message: `${file.file}: serial ${file.serial}, as every answering instance serves`,
    })
  return out
}

// ---- output -----------------------------------------------------------------------------------

function rcodeName(rcode: number): string {
  return RCODE_NAMES[rcode] ?? `RCODE${rcode}`
}

/** Socket errors as an operator reads them; the syscall name (recvmsg, connect) says nothing to them. */
function socketError(err: unknown): string {
  const code = (err as { code?: unknown }).code
  if (code === 'ECONNREFUSED') return 'connection refused: nothing listens on that port'
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return `no route to the address (${code})`
  return errorMessage(err)
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

/** One line per finding, fixes indented below; a summary line last. */
export function formatFindings(findings: readonly Finding[]): string {
  const width = Math.max(0, ...findings.map((f) => f.check.length))
  const lines: string[] = []
  for (const f of findings) {
    lines.push(`${f.level.padEnd(5)}  ${f.check.padEnd(width)}  ${f.message}`)
    if (f.fix) {
      const indent = ' '.repeat(5 + 2 + width + 2)
      const [head, ...rest] = f.fix.split('\n')
      lines.push(`${indent}fix: ${head}`)
      for (const r of rest) lines.push(`${indent}     ${r}`)
    }
  }
  const errors = findings.filter((f) => f.level === 'error').length
  const warnings = findings.filter((f) => f.level === 'warn').length
  lines.push(
    errors + warnings === 0
      ? `all ${findings.length} check(s) ok`
      : `${errors} error(s), ${warnings} warning(s), ${findings.length - errors - warnings} ok`,
  )
  return lines.join('\n')
}

/** Exit status for the CLI: 1 when anything is an error, else 0 (warnings do not fail). */
export function doctorExitCode(findings: readonly Finding[]): number {
  return findings.some((f) => f.level === 'error') ? 1 : 0
}
