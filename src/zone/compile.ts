/**
 * @module zone/compile
 * Compiles a validated zone into answer nodes whose every response is a pre-encoded template
 * (dns/template). At query time the server does one or a few Map lookups and copies bytes; all
 * RFC logic (CNAME chasing, wildcard synthesis per RFC 4592, referrals, additional-section
 * processing, negative answers per RFC 2308) runs here, once per zone load.
 */

import type { GslbConfig } from '../config/gslb-file.ts'
import {
  type Owner,
  QNAME,
  SharedArrays,
  TemplateBuilder,
  type TemplateQuestion,
  type TemplateStore,
} from '../dns/builder.ts'
import { childName, isSubdomain, type Name, nameFromKey, nameFromWire, nameToString, parentName } from '../dns/name.ts'
import { ByteSlab, type Placement } from '../dns/slab.ts'
import {
  FLAG_AA,
  FLAG_QR,
  SECTION_ADDITIONAL,
  SECTION_ANSWER,
  SECTION_AUTHORITY,
  type Template,
} from '../dns/template.ts'
import { RCODE, T } from '../dns/types.ts'
import { CompiledService, type ServiceNode } from '../policy/service.ts'
import type { Pool } from '../policy/types.ts'
import type { ProbeTarget } from '../probe/types.ts'
import { targetId } from '../state/types.ts'
import { COPIES_PER_STEP, runSync, type Steps } from './cooperative.ts'
import { AnswerNode } from './node.ts'
import { type RRset, readName, type ZoneData } from './validate.ts'

export interface BelowAnswers {
  readonly byType: ReadonlyMap<number, Template>
  readonly other: Template
  /** A wildcard service (`*.<this node>`) answering A, AAAA and ANY below this node. */
  readonly service: ServiceNode | undefined
}

export interface CompiledZone {
  readonly apex: Name
  /** The apex as health state and operators name it: lowercase, no trailing dot (`example.com`). */
  readonly stateKey: string
  readonly file: string
  readonly serial: number
  readonly nodes: ReadonlyMap<string, AnswerNode>
  readonly nxdomain: Template
  readonly nodata: Template
  readonly services: readonly CompiledService[]
  /** Pools of the zone (for per-pool latency figures and operator commands on pools). */
  readonly pools: readonly Pool[]
  /** Endpoints with a health check, as the prober runs them. */
  readonly probes: readonly ProbeTarget[]
}

const NO_GSLB_PARTS = { services: [], pools: [], probes: [] } as const

const MAX_CHAIN = 12
/** Types answered with the RRset of one type at a name; ANY gets the RFC 8482 subset instead. */
const ANY_PREFERRED = [T.A, T.AAAA]

interface Ctx {
  readonly data: ZoneData
  readonly cuts: ReadonlyMap<string, Name>
  readonly soaNeg: RRset
  /** Every name that exists, empty non-terminals included. */
  readonly exists: ReadonlySet<string>
  /** Names whose A/AAAA answers come from a service: CNAME chasing stops there. */
  readonly dynamic: ReadonlySet<string>
  readonly templates: ZoneTemplateStore
}

/**
 * Where the templates of one zone keep their bytes and arrays. The bytes go into the zone's own
 * slab (dns/slab: not Node's shared pool, where each template would keep a 64 KiB chunk of
 * build-time garbage alive). Equal per-RRset arrays are shared (about 1 KB a template saved; a
 * 100k-record zone has some 150k templates).
 */
class ZoneTemplateStore implements TemplateStore {
  readonly #slab = new ByteSlab()
  readonly #arrays = new SharedArrays()

  place(src: Buffer, end: number, into: Placement): Placement {
    return this.#slab.place(src, 0, end, into)
  }

  u16(values: readonly number[]): Uint16Array {
    return this.#arrays.u16(values)
  }

  u8(values: readonly number[]): Uint8Array {
    return this.#arrays.u8(values)
  }
}

/**
 * The ANY answer at a name (RFC 8482 subset). When that subset is a single RRset whose own answer
 * is already built, it is the same message but for the question's type, which every response
 * copies from the query: share it.
 */
function anyAnswer(
  ctx: Ctx,
  name: Name,
  rrsets: ReadonlyMap<number, RRset> | undefined,
  exact: ReadonlyMap<number, Template>,
): Template {
  const subset = rrsets ? anySubset(rrsets) : []
  const same = subset.length === 1 ? exact.get(subset[0]!.type) : undefined
  return same ?? positive(ctx, { name, qtype: T.ANY, standIn: false }, T.ANY, name)
}

/** Names (or services) compiled between two yields of `compileZoneSteps`. */
const NAMES_PER_STEP = 2

export function compileZone(
  data: ZoneData,
  gslb: Pick<GslbConfig, 'services' | 'pools' | 'probes'> = NO_GSLB_PARTS,
): CompiledZone {
  return runSync(compileZoneSteps(data, gslb))
}

/** `compileZone` as steps that yield every few names or services (see zone/cooperative). */
export function* compileZoneSteps(
  data: ZoneData,
  gslb: Pick<GslbConfig, 'services' | 'pools' | 'probes'> = NO_GSLB_PARTS,
): Steps<CompiledZone> {
  const serviceConfigs = gslb.services
  const soa = data.soa
  const minimum = soa.rdatas[0]!.readUInt32BE(soa.rdatas[0]!.length - 4)
  const soaNeg: RRset = { ...soa, ttl: Math.min(soa.ttl, minimum) }
  const cuts = new Map<string, Name>()
  // Large zones: every whole-zone pass yields now and then, copies included.
  let count = 0
  for (const [key, node] of data.nodes) {
    if (key !== data.apex.key && node.has(T.NS)) cuts.set(key, data.names.get(key)!)
    if (++count % COPIES_PER_STEP === 0) yield
  }
  // Empty non-terminals exist (RFC 4592 2.2.2): a name with nothing but descendants answers NODATA.
  const allNames = new Map<string, Name>()
  for (const [key, name] of data.names) {
    allNames.set(key, name)
    if (++count % COPIES_PER_STEP === 0) yield
  }
  for (const svc of serviceConfigs) allNames.set(svc.owner.key, svc.owner)
  for (const name of [...allNames.values()]) {
    // Walk up by key (the wire form has the same offsets); a Name is made only for a new ENT.
    let key = name.key
    for (let labels = name.labels; labels > data.apex.labels; labels--) {
      const off = name.key.length - key.length + key.charCodeAt(0) + 1
      key = key.slice(key.charCodeAt(0) + 1)
      if (allNames.has(key)) break
      allNames.set(key, nameFromWire(Buffer.from(name.wire.subarray(off))))
    }
    if (++count % COPIES_PER_STEP === 0) yield
  }
  const dynamic = new Set(serviceConfigs.map((svc) => svc.owner.key))
  const exists = new Set<string>()
  for (const key of allNames.keys()) {
    exists.add(key)
    if (++count % COPIES_PER_STEP === 0) yield
  }
  const ctx: Ctx = {
    data,
    cuts,
    soaNeg,
    exists,
    dynamic,
    templates: new ZoneTemplateStore(),
  }

  const standIn = childName('*', data.apex)
  const nxdomain = negative(ctx, { name: standIn, qtype: T.A, standIn: true }, RCODE.NXDOMAIN)
  const nodata = negative(ctx, { name: standIn, qtype: T.A, standIn: true }, RCODE.NOERROR)
  const stateKey = zoneStateKey(data.apex)
  const zone: { -readonly [K in keyof CompiledZone]: CompiledZone[K] } = {
    apex: data.apex,
    stateKey,
    file: data.file,
    serial: data.serial,
    nodes: new Map(),
    nxdomain,
    nodata,
    services: [],
    pools: gslb.pools,
    probes: gslb.probes.map((p) => Object.freeze({ id: targetId(stateKey, p.endpoint), zone: stateKey, ...p })),
  }
  const services = new Map<string, CompiledService>()
  for (const cfg of serviceConfigs) {
    services.set(cfg.owner.key, new CompiledService(cfg, stateKey, nodata))
    if (services.size % NAMES_PER_STEP === 0) yield
  }
  zone.services = [...services.values()]
  const nodes = new Map<string, AnswerNode>()
  const referralBelow = new Map<string, BelowAnswers>()
  const belowCut = (cut: Name): BelowAnswers => {
    let r = referralBelow.get(cut.key)
    if (!r) {
      r = {
        byType: new Map(),
        other: referral(ctx, { name: childName('*', cut), qtype: T.A, standIn: true }, cut),
        service: undefined,
      }
      referralBelow.set(cut.key, r)
    }
    return r
  }

  count = 0
  for (const [key, name] of allNames) {
    if (++count % NAMES_PER_STEP === 0) yield
    const rrsets = data.nodes.get(key)
    const cut = cutAbove(ctx, name)
    const exact = new Map<number, Template>()
    let exactOther: Template
    let below: BelowAnswers | undefined
    if (cut && cut.key !== key) {
      // Occluded (glue or an empty non-terminal under a cut): only the child zone can answer.
      below = belowCut(cut)
      exactOther = below.other
    } else if (cut) {
      below = belowCut(cut)
      exactOther = referral(ctx, { name, qtype: T.A, standIn: false }, cut)
      // DS lives on the parent side of the cut (RFC 4035 3.1.4.1): answer it with authority.
      const ds = rrsets?.get(T.DS)
      exact.set(T.DS, ds ? positive(ctx, { name, qtype: T.DS, standIn: false }, T.DS, name) : nodata)
    } else {
      for (const type of [...(rrsets?.keys() ?? []), ...chaseTypes(ctx, rrsets)]) {
        if (!exact.has(type)) exact.set(type, positive(ctx, { name, qtype: type, standIn: false }, type, name))
      }
      exact.set(T.ANY, anyAnswer(ctx, name, rrsets, exact))
      exactOther = rrsets?.has(T.CNAME) ? positive(ctx, { name, qtype: 0, standIn: false }, 0, name) : nodata
      const wildKey = `\x01*${key}`
      const wild = data.nodes.get(wildKey)
      const wildService = services.get(wildKey)
      if (wild || wildService) {
        const wildName = childName('*', name)
        below = { ...wildcardAnswers(ctx, wildName, wild ?? new Map()), service: wildService?.node(wildName, true) }
      }
    }
    const service = cut ? undefined : services.get(key)?.node(name, false)
    nodes.set(key, new AnswerNode(zone, exact, exactOther, below, service))
  }
  zone.nodes = nodes
  return zone
}

export function zoneStateKey(apex: Name): string {
  return nameToString(nameFromKey(apex.key)).replace(/\.$/, '') || '.'
}

/** QTYPEs whose CNAME chase ends in data: each needs its own template, everything else shares one. */
function chaseTypes(ctx: Ctx, rrsets: ReadonlyMap<number, RRset> | undefined): number[] {
  const out: number[] = []
  let cname = rrsets?.get(T.CNAME)
  const seen = new Set<string>()
  for (let i = 0; cname && i < MAX_CHAIN; i++) {
    const target = readName(cname.rdatas[0]!, 0)
    if (!target || seen.has(target.key)) break
    seen.add(target.key)
    const r = resolve(ctx, target)
    if (r.kind !== 'node') break
    for (const t of r.rrsets.keys()) if (t !== T.CNAME) out.push(t)
    cname = r.rrsets.get(T.CNAME)
  }
  return out
}

function wildcardAnswers(ctx: Ctx, wildName: Name, rrsets: ReadonlyMap<number, RRset>): Omit<BelowAnswers, 'service'> {
  const q = (qtype: number): TemplateQuestion => ({ name: wildName, qtype, standIn: true })
  const byType = new Map<number, Template>()
  for (const type of [...rrsets.keys(), ...chaseTypes(ctx, rrsets), T.ANY]) {
    if (!byType.has(type)) byType.set(type, positive(ctx, q(type), type, wildName))
  }
  const other = rrsets.has(T.CNAME) ? positive(ctx, q(0), 0, wildName) : negative(ctx, q(T.A), RCODE.NOERROR)
  return { byType, other }
}

type Resolution =
  | { kind: 'node'; name: Name; rrsets: ReadonlyMap<number, RRset> }
  | { kind: 'nxdomain' }
  | { kind: 'referral'; cut: Name }
  | { kind: 'outside' }

/** Where a name inside (or outside) this zone leads, as the query path would find it. */
function resolve(ctx: Ctx, name: Name): Resolution {
  const { data } = ctx
  if (!isSubdomain(name, data.apex)) return { kind: 'outside' }
  const cut = cutAbove(ctx, name)
  if (cut) return { kind: 'referral', cut }
  const exact = data.nodes.get(name.key)
  if (exact) return { kind: 'node', name, rrsets: exact }
  // Closest encloser, then its wildcard (RFC 4592 3.3.1); an empty non-terminal is an encloser too.
  let n = name
  while (n.labels > data.apex.labels) {
    n = parentName(n)
    if (ctx.exists.has(n.key)) {
      const wild = data.nodes.get(childName('*', n).key)
      return wild ? { kind: 'node', name, rrsets: wild } : { kind: 'nxdomain' }
    }
  }
  return { kind: 'nxdomain' }
}

function cutAbove(ctx: Ctx, name: Name): Name | undefined {
  if (ctx.cuts.size === 0) return undefined
  // The highest cut wins: anything below it, including lower "cuts", is the child's business.
  let found: Name | undefined
  let key = name.key
  for (let labels = name.labels; labels > ctx.data.apex.labels; labels--) {
    const c = ctx.cuts.get(key)
    if (c) found = c
    key = key.slice(key.charCodeAt(0) + 1)
  }
  return found
}

/**
 * A positive answer (possibly through CNAMEs) for `qtype` at `start`. QTYPE 0 stands for "a type the
 * chain's end does not have" (used for the shared NODATA-after-CNAME template).
 */
function positive(ctx: Ctx, q: TemplateQuestion, qtype: number, start: Name): Template {
  const b = new TemplateBuilder(q)
  let owner: Owner = QNAME
  let rrsets = ctx.data.nodes.get(start.key) ?? new Map<number, RRset>()
  let rcode: number = RCODE.NOERROR
  let flags = FLAG_QR | FLAG_AA
  const seen = new Set<string>([start.key])
  for (let i = 0; ; i++) {
    const cname = rrsets.get(T.CNAME)
    if (cname && qtype !== T.CNAME && qtype !== T.ANY) {
      b.add(SECTION_ANSWER, { ...cname, owner })
      const target = readName(cname.rdatas[0]!, 0)
      if (!target || seen.has(target.key) || i >= MAX_CHAIN) break
      seen.add(target.key)
      // A service's answers are made per query; the client asks for the target itself.
      if (ctx.dynamic.has(target.key)) break
      const r = resolve(ctx, target)
      if (r.kind === 'outside') break
      if (r.kind === 'nxdomain') {
        // RFC 6604: the rcode describes the last name in the chain.
        rcode = RCODE.NXDOMAIN
        b.add(SECTION_AUTHORITY, { ...ctx.soaNeg, owner: ctx.data.apex })
        break
      }
      if (r.kind === 'referral') {
        addReferral(ctx, b, r.cut)
        break
      }
      owner = r.name
      rrsets = r.rrsets
      continue
    }
    const sets = qtype === T.ANY ? anySubset(rrsets) : [rrsets.get(qtype)].filter((s) => s !== undefined)
    if (sets.length === 0) {
      b.add(SECTION_AUTHORITY, { ...ctx.soaNeg, owner: ctx.data.apex })
      break
    }
    for (const s of sets) b.add(SECTION_ANSWER, { ...s, owner })
    addAdditional(ctx, b, sets)
    break
  }
  if (rcode === RCODE.NXDOMAIN) flags |= rcode
  return b.finish(flags, ctx.templates)
}

/** RFC 8482: answer ANY with a small subset. Addresses when the name has them, else one RRset. */
function anySubset(rrsets: ReadonlyMap<number, RRset>): RRset[] {
  const cname = rrsets.get(T.CNAME)
  if (cname) return [cname]
  const pick = ANY_PREFERRED.map((t) => rrsets.get(t)).filter((s) => s !== undefined)
  if (pick.length > 0) return pick
  const rest = [...rrsets.values()].sort((a, b) => a.type - b.type)
  return rest.length > 0 ? [rest[0]!] : []
}

/** Addresses of in-zone NS, MX and SRV targets (RFC 1034 4.3.2 step 6, RFC 2782). */
function addAdditional(ctx: Ctx, b: TemplateBuilder, sets: readonly RRset[]): void {
  const targets: Name[] = []
  for (const s of sets) {
    const at = s.type === T.NS ? 0 : s.type === T.MX ? 2 : s.type === T.SRV ? 6 : -1
    if (at < 0) continue
    for (const r of s.rdatas) {
      const n = readName(r, at)
      if (n && !targets.some((t) => t.key === n.key)) targets.push(n)
    }
  }
  addAddresses(ctx, b, targets, () => false)
}

function addAddresses(ctx: Ctx, b: TemplateBuilder, targets: readonly Name[], required: (n: Name) => boolean): void {
  for (const t of targets) {
    if (!isSubdomain(t, ctx.data.apex)) continue
    const node = ctx.data.nodes.get(t.key)
    if (!node) continue
    for (const type of [T.A, T.AAAA]) {
      const s = node.get(type)
      if (!s) continue
      // Optional extras never push a response over 64 KiB; UDP truncation is handled per query.
      if (!required(t) && b.length + s.rdatas.length * (t.wire.length + 26) > 65000) continue
      b.add(SECTION_ADDITIONAL, s, required(t))
    }
  }
}

function addReferral(ctx: Ctx, b: TemplateBuilder, cut: Name): void {
  const ns = ctx.data.nodes.get(cut.key)!.get(T.NS)!
  b.add(SECTION_AUTHORITY, ns)
  const targets: Name[] = []
  for (const r of ns.rdatas) {
    const n = readName(r, 0)
    if (n && !targets.some((t) => t.key === n.key)) targets.push(n)
  }
  // Glue for servers inside the delegated zone is mandatory (RFC 9471): losing it sets TC.
  addAddresses(ctx, b, targets, (n) => isSubdomain(n, cut))
}

function referral(ctx: Ctx, q: TemplateQuestion, cut: Name): Template {
  const b = new TemplateBuilder(q)
  addReferral(ctx, b, cut)
  return b.finish(FLAG_QR, ctx.templates)
}

function negative(ctx: Ctx, q: TemplateQuestion, rcode: number): Template {
  const b = new TemplateBuilder(q)
  b.add(SECTION_AUTHORITY, { ...ctx.soaNeg, owner: ctx.data.apex })
  return b.finish(FLAG_QR | FLAG_AA | rcode, ctx.templates)
}
