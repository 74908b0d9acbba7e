/**
 * @module policy/service
 * A load-balanced name at query time: run the policy chain over the endpoints that can answer the
 * query type, apply the all-down mode when nothing healthy is left, pick the TTL, and hand back a
 * response template. Templates are cached per (type, TTL, endpoint set), and each service node
 * keeps what it answers made ahead (`Ready`), so once the common decisions have been seen a query
 * reads the node, its Ready and a template, and copies bytes (policy/README.md, "Query-time
 * caching").
 */

import type { AllDownMode, ServiceConfig } from '../config/gslb-file.ts'
import { parseAddress } from '../dns/address.ts'
import { QNAME, TemplateBuilder } from '../dns/builder.ts'
import { type Name, nameToString } from '../dns/name.ts'
import { FLAG_AA, FLAG_QR, SECTION_ANSWER, type Template } from '../dns/template.ts'
import { T } from '../dns/types.ts'
import { type GeoLookup, KEY_BITS4, KEY_BITS6, KEY_UNKNOWN, KEY_V4, KEY_V6 } from '../query/context.ts'
import { alone } from './common.ts'
import { makeSteps } from './registry.ts'
import type { Endpoint, HealthView, NamedStep, PolicyContext, PolicyStep, Pool } from './types.ts'

/**
 * An answer a service decided: interned per service, so a repeated decision is the same object
 * and what is derived from it (its response template, its metrics counters) hangs off it, found
 * with no lookup. On a zone set of 10k services the Map and WeakMap lookups that used to find them
 * were cache misses on every query.
 */
export class AnswerDecision {
  readonly kind = 'answer' as const
  /**
   * The response template for `templateNode` (A or AAAA, whichever family this answer is for),
   * built on first use. Another node answering with the same decision (a wildcard next to the
   * exact name) keeps its own in the node's Map.
   */
  template: Template | undefined = undefined
  templateNode: ServiceNode | undefined = undefined
  /** Whatever the metrics keep for this answer (ops/metrics checks that it is its own). */
  meter: unknown = undefined

  readonly type: number
  /** Endpoints answered (empty for a static all-down answer). */
  readonly endpoints: readonly Endpoint[]
  readonly rdatas: readonly Buffer[]
  /** Text of each answered record (addresses or the CNAME target), for traces and tests. */
  readonly values: readonly string[]
  readonly ttl: number
  /** Nothing healthy was left and the all-down mode produced this answer. */
  readonly allDown: boolean
  readonly degraded: boolean
  /**
   * The records go out in random order: `endpoints` is in canonical (index) order, the template
   * is built once in that order and the rendered response is shuffled.
   */
  readonly shuffle: boolean

  constructor(fields: Omit<AnswerDecision, 'kind' | 'template' | 'templateNode' | 'meter'>) {
    this.type = fields.type
    this.endpoints = fields.endpoints
    this.rdatas = fields.rdatas
    this.values = fields.values
    this.ttl = fields.ttl
    this.allDown = fields.allDown
    this.degraded = fields.degraded
    this.shuffle = fields.shuffle
  }
}

/** What a service decided for one query; `gslb explain` and golden tests read it directly. */
export type Decision =
  | AnswerDecision
  | { readonly kind: 'nodata'; readonly allDown: boolean }
  | { readonly kind: 'servfail' }

type Answer = AnswerDecision

/**
 * What a node answers for one query type, made ahead under one health view and geo state
 * (`CompiledService.ready`) from what the service's caches hold: the decisions a query can get,
 * their response templates for this node, and the running weight sums to draw one with (`total`
 * 0: the one decision). On a zone set of 10k services the query path's time went into following
 * pointers (service, prefix cache, its Map, draw table, sums, decision, template: a cache miss
 * each, ~250 ns on the bench machine); from the node, this is one object (two for a chain that
 * depends on the client) and arrays read side by side.
 */
export interface Ready {
  /** What it was made under; a query under another view or geo state takes the full path. */
  readonly view: HealthView | undefined
  readonly geo: GeoLookup | undefined
  readonly geoGeneration: number
  /**
   * The clients it holds for: ANY_CLIENT (the chain looks at no client), KEY_V4 or KEY_V6 (its
   * pure steps depended on no client bit for a known client of that family), BY_CLIENT (the
   * answer depends on the client: `clients` holds one Ready per client prefix seen), or
   * NO_CLIENT (the full path for every query of this view: random steps, or no cacheable answer).
   */
  readonly family: number
  /** The client bits the answer depended on, replayed into the context for the ECS scope. */
  readonly scope: number
  readonly total: number
  readonly sums: readonly number[]
  /**
   * The one weight every drawable candidate has, when that is an integer (equal weights, the
   * common case); else 0. The draw then divides instead of reading `sums`, a cache miss less.
   */
  readonly step: number
  readonly decisions: readonly Decision[]
  readonly templates: readonly Template[]
  /**
   * The first two decisions and templates again, inline: a Ready of one decision (a pure chain,
   * the commonest) or a draw between two (a pool of two) is then read without its arrays. A Ready
   * of one decision has it only here (`decisions` and `templates` empty): a large zone set keeps
   * tens of thousands of them, and the heap a live reload's collections mark grew by that much.
   */
  readonly decision0: Decision | undefined
  readonly template0: Template | undefined
  readonly decision1: Decision | undefined
  readonly template1: Template | undefined
  /** The index of the last decision (read where the arrays themselves would be one more miss). */
  readonly last: number
  /** Whether a decision's records go out in random order (AnswerDecision.shuffle), for any of them. */
  readonly shuffle: boolean
  /**
   * A client's own Ready (in a BY_CLIENT one's `clients`): its key (QueryContext.keyFamily,
   * keyHi as a signed 32-bit number, keyLo); family KEY_UNKNOWN otherwise.
   */
  readonly clientFamily: number
  readonly clientHi: number
  readonly clientKey: number
  /**
   * BY_CLIENT: the clients' Readys by client key (the /24 or /56 and prefix length), an open
   * addressing table (a power of two in size, at most half full) rather than a Map: one array
   * read finds a client, where a Map reads its bucket, then its entry.
   */
  readonly clients: (Ready | undefined)[] | undefined
  /** BY_CLIENT: how many `clients` holds. */
  clientCount: number
}

const ANY_CLIENT = -1
const NO_CLIENT = -2
const BY_CLIENT = -3
/** Client prefixes kept per node and query type; more starts afresh (the full path still caches). */
const MAX_READY_CLIENTS = 4096
const FIRST_CLIENT_SLOTS = 8

const NO_SUMS: readonly number[] = Object.freeze([])
const NO_DECISIONS: readonly Decision[] = Object.freeze([])
const NO_TEMPLATES: readonly Template[] = Object.freeze([])

/** Every Ready has this one shape, so the query path's reads of it stay monomorphic. */
function makeReady(
  view: HealthView | undefined,
  geo: GeoLookup | undefined,
  family: number,
  scope: number,
  total: number,
  sums: readonly number[],
  decisions: readonly Decision[],
  templates: readonly Template[],
  client: ClientKey = NO_CLIENT_KEY,
  clients: (Ready | undefined)[] | undefined = undefined,
  /** A Ready of this one decision: inline only, no arrays (most of them, and each is kept a while). */
  one: Decision | undefined = undefined,
  oneTemplate: Template | undefined = undefined,
): Ready {
  const geoGeneration = geo === undefined ? -1 : (geo.generation ?? 0)
  const shuffle =
    one !== undefined ? one.kind === 'answer' && one.shuffle : decisions.some((d) => d.kind === 'answer' && d.shuffle)
  const step =
    sums.length > 0 && Number.isInteger(sums[0]) && sums.every((x, k) => x === (k + 1) * sums[0]!) ? sums[0]! : 0
  return {
    view,
    geo,
    geoGeneration,
    family,
    scope,
    total,
    sums,
    step,
    decisions,
    templates,
    decision0: one ?? decisions[0],
    template0: oneTemplate ?? templates[0],
    decision1: decisions[1],
    template1: templates[1],
    last: one !== undefined ? 0 : decisions.length - 1,
    shuffle,
    clientFamily: client.family,
    clientHi: client.hi,
    clientKey: client.lo,
    clients,
    clientCount: 0,
  }
}

/** A client as the Readys key it: QueryContext's keyFamily, keyHi (signed 32-bit) and keyLo. */
interface ClientKey {
  readonly family: number
  readonly hi: number
  readonly lo: number
}

const NO_CLIENT_KEY: ClientKey = Object.freeze({ family: KEY_UNKNOWN, hi: 0, lo: -1 })

function clientKeyOf(ctx: CacheableContext): ClientKey {
  return { family: ctx.keyFamily, hi: ctx.keyFamily === KEY_V6 ? ctx.keyHi | 0 : 0, lo: ctx.keyLo }
}

/** Where a client starts probing in a table of `mask + 1` slots (keys differ in their high bits). */
function clientSlot(family: number, hi: number, lo: number, mask: number): number {
  return (Math.imul(lo ^ Math.imul(hi ^ family, 0x85ebca6b), 0x9e3779b1) >>> 16) & mask
}

/** Puts `c` into BY_CLIENT `r`'s table, or into a new BY_CLIENT Ready with room; returns the one that holds it. */
function addClient(r: Ready, c: Ready): Ready {
  let into = r
  const slots = r.clients!
  if ((r.clientCount + 1) * 2 > slots.length) {
    const size = slots.length * 2 > MAX_READY_CLIENTS * 2 ? FIRST_CLIENT_SLOTS : slots.length * 2
    into = makeReady(
      r.view,
      r.geo,
      BY_CLIENT,
      0,
      0,
      NO_SUMS,
      NO_DECISIONS,
      NO_TEMPLATES,
      NO_CLIENT_KEY,
      new Array(size).fill(undefined),
    )
    if (size > slots.length) for (const old of slots) if (old !== undefined) putClient(into, old)
  }
  putClient(into, c)
  return into
}

function putClient(r: Ready, c: Ready): void {
  const slots = r.clients!
  const mask = slots.length - 1
  for (let i = clientSlot(c.clientFamily, c.clientHi, c.clientKey, mask); ; i = (i + 1) & mask) {
    const old = slots[i]
    if (
      old === undefined ||
      (old.clientKey === c.clientKey && old.clientHi === c.clientHi && old.clientFamily === c.clientFamily)
    ) {
      slots[i] = c
      if (old === undefined) r.clientCount++
      return
    }
  }
}

/** A node's Ready before its first query: matches no view. */
const NOT_READY: Ready = Object.freeze(
  makeReady(undefined, undefined, NO_CLIENT, 0, 0, NO_SUMS, NO_DECISIONS, NO_TEMPLATES),
)

/** The query-path handle of a service at one name (exact owner or wildcard). */
export class ServiceNode {
  readonly kind = 'service' as const
  readonly service: CompiledService
  /** The service's zone, for its health view (read here: the service object is one miss more). */
  readonly zoneKey: string
  /** Name the response templates are built for: the owner, or the wildcard name as a stand-in. */
  readonly question: Name
  readonly standIn: boolean
  /**
   * Templates per (query type: A = 0, AAAA = 1, decision); decisions are interned per service, so
   * identity works. Each Map is made on first use: most of a large zone set's services are never
   * asked for one of the two types, and an empty Map still costs ~200 bytes.
   */
  readonly templates: [Map<Decision, Template> | undefined, Map<Decision, Template> | undefined] = [
    undefined,
    undefined,
  ]
  /** A and AAAA answers made ahead (see Ready), replaced when the query path finds them stale. */
  ready4: Ready = NOT_READY
  ready6: Ready = NOT_READY
  /**
   * The client table of `ready4` / `ready6` when that is a BY_CLIENT Ready, here as well: the query
   * path goes from the node to the table, one object less to read (each client's Ready says under
   * which view and geo state it was made).
   */
  clients4: (Ready | undefined)[] | undefined = undefined
  clients6: (Ready | undefined)[] | undefined = undefined

  constructor(service: CompiledService, question: Name, standIn: boolean) {
    this.service = service
    this.zoneKey = service.zoneKey
    this.question = question
    this.standIn = standIn
  }

  /** Sets the node's Ready for `qtype` (A or AAAA) and its client table. */
  setReady(qtype: number, r: Ready): void {
    const clients = r.family === BY_CLIENT ? r.clients : undefined
    if (qtype === T.AAAA) {
      this.ready6 = r
      this.clients6 = clients
    } else {
      this.ready4 = r
      this.clients4 = clients
    }
  }
}

/** Whether `r` was made under `view` and the context's geo state. */
function current(r: Ready, view: HealthView | undefined, geo: GeoLookup | undefined): boolean {
  return r.view === view && r.geo === geo && (geo === undefined || r.geoGeneration === (geo.generation ?? 0))
}

/**
 * The Ready that answers this query at `node` (A or AAAA; `ctx` reset for it with `view`, the
 * zone's current health view), its scope replayed into `ctx`; undefined when none does and the
 * full path answers (then `CompiledService.refresh`). Draw its decision with `drawIndex`.
 */
export function readyFor(node: ServiceNode, qtype: number, view: HealthView, ctx: CacheableContext): Ready | undefined {
  let r: Ready
  if (qtype === T.A) {
    const clients = node.clients4
    if (clients !== undefined) return ownReady(clients, view, ctx)
    r = node.ready4
  } else if (qtype === T.AAAA) {
    const clients = node.clients6
    if (clients !== undefined) return ownReady(clients, view, ctx)
    r = node.ready6
  } else return undefined
  if (!current(r, view, ctx.geoDatabase)) return undefined
  const family = r.family
  if (family === ANY_CLIENT) return r
  if (family === NO_CLIENT || family === BY_CLIENT) return undefined
  ctx.computeKey()
  return ctx.keyFamily === family ? r : undefined
}

/** The query's client's Ready in a client table, if current and usable. */
function ownReady(clients: readonly (Ready | undefined)[], view: HealthView, ctx: CacheableContext): Ready | undefined {
  const c = findClient(clients, ctx)
  if (c === undefined || c.family === NO_CLIENT || !current(c, view, ctx.geoDatabase)) return undefined
  ctx.scope(c.scope)
  return c
}

/** The Ready of the query's client in a client table (computing the context's client key). */
function findClient(slots: readonly (Ready | undefined)[], ctx: CacheableContext): Ready | undefined {
  ctx.computeKey()
  return clientReady(slots, ctx.keyFamily, ctx.keyHi, ctx.keyLo)
}

/** Where `clientReady` starts probing a client table for a (known) client key. */
export function firstClientSlot(
  slots: readonly (Ready | undefined)[],
  family: number,
  keyHi: number,
  key: number,
): number {
  return clientSlot(family, family === KEY_V6 ? keyHi | 0 : 0, key, slots.length - 1)
}

/** The Ready under a client key (QueryContext.keyFamily, keyHi, keyLo) in a client table. */
export function clientReady(
  slots: readonly (Ready | undefined)[],
  family: number,
  keyHi: number,
  key: number,
): Ready | undefined {
  if (family === KEY_UNKNOWN) return undefined
  const hi = family === KEY_V6 ? keyHi | 0 : 0
  const mask = slots.length - 1
  for (let i = firstClientSlot(slots, family, keyHi, key); ; i = (i + 1) & mask) {
    const c = slots[i]
    if (c === undefined) return undefined
    if (c.clientKey === key && c.clientHi === hi && c.clientFamily === family) return c
  }
}

/**
 * One decision of the Ready that answers this query: the same draw as drawFrom's (and the
 * weighted step's) when it has several.
 */
export function drawIndex(r: Ready, ctx: PolicyContext): number {
  if (r.total === 0) return 0
  const target = ctx.random() * r.total
  const step = r.step
  if (step > 0) {
    // The scan's answer (the first i with target < (i + 1) * step), by division; i * step is
    // exact for an integer step, so the two checks undo a quotient rounded across a boundary.
    let i = Math.floor(target / step)
    if (i * step > target) i--
    else if ((i + 1) * step <= target) i++
    const last = r.last
    return i < last ? i : last
  }
  const sums = r.sums
  for (let i = 0; i < sums.length; i++) if (target < sums[i]!) return i
  return sums.length - 1
}

const NODATA: Decision = Object.freeze({ kind: 'nodata', allDown: false })
const NODATA_ALL_DOWN: Decision = Object.freeze({ kind: 'nodata', allDown: true })
const SERVFAIL: Decision = Object.freeze({ kind: 'servfail' })

const NO_ENDPOINTS: readonly Endpoint[] = Object.freeze([])
/**
 * The memo slots of a service that has not been queried yet: every read finds nothing, and
 * `#validate` gives the service arrays of its own before anything is stored (the first query of a
 * view always passes there, and nothing is memoized outside a validated view). Most services of a
 * large zone set are never queried, and two arrays per service were 40k objects for 10k services.
 */
const NOT_MEMOIZED = Object.freeze([]) as never[]

/** Bounds of the per-service caches; hitting one clears that cache (a rare full rebuild). */
const MAX_CACHED_TEMPLATES = 4096
const MAX_INTERNED = 4096
const MAX_CLIENT_ENTRIES = 65536

/** Result of the chain's leading pure steps for one client prefix (see `decideCached`). */
interface PrefixEntry {
  readonly out: readonly Endpoint[]
  /** Client bits those steps depended on: replayed into the context for the ECS scope. */
  readonly scope: number
  /** The whole decision, when the chain has no impure step (set on first use). */
  decision: Decision | undefined
  /** The last step's draw over `out`, when the chain ends with one (`CompiledService.#drawLast`). */
  draw: DrawTable | undefined
}

/**
 * A `draw` step over one candidate list under one health view, done ahead: the running sums of
 * the drawable candidates' weights in candidate order and the decision each one leads to. A
 * query then costs one random number and a scan of a few numbers: no health lookups, no health
 * filter, TTL or interning. The same sums, in the same order, as `weighted` adds them per query.
 */
interface DrawTable {
  readonly total: number
  readonly sums: readonly number[]
  readonly decisions: readonly Decision[]
  /** No candidate up: the step passes the list on, and this is what it leads to. */
  readonly none: Decision | undefined
}

/** What `decideCached` needs of the context beyond PolicyContext: the client as numbers. */
export interface CacheableContext extends PolicyContext {
  readonly geoDatabase: GeoLookup | undefined
  readonly scopeBits: number
  readonly keyFamily: number
  readonly keyHi: number
  readonly keyLo: number
  computeKey(): void
}

/** Per query-type slot (A = 0, AAAA = 1) cache of prefix results, valid for one health view and geo state. */
class PrefixCache {
  /**
   * Result that did not depend on the client (scope 0 for a known client), per family: a geo
   * database with no data for a whole family reports scope 0 for it and not for the other.
   */
  global4: PrefixEntry | undefined = undefined
  global6: PrefixEntry | undefined = undefined
  /** Client sent ECS with source prefix 0: no address may be used. */
  unknown: PrefixEntry | undefined = undefined
  readonly v4 = new Map<number, PrefixEntry>()
  readonly v6 = new Map<number, Map<number, PrefixEntry>>()
  size = 0

  clear(): void {
    this.global4 = undefined
    this.global6 = undefined
    this.unknown = undefined
    this.v4.clear()
    this.v6.clear()
    this.size = 0
  }

  get(ctx: CacheableContext): PrefixEntry | undefined {
    switch (ctx.keyFamily) {
      case KEY_V4:
        return this.v4.get(ctx.keyLo)
      case KEY_V6:
        return this.v6.get(ctx.keyHi)?.get(ctx.keyLo)
      default:
        return this.unknown
    }
  }

  /** Stores `entry` for the client in `ctx` if its scope fits the key (else it is not reusable). */
  set(ctx: CacheableContext, entry: PrefixEntry): void {
    const family = ctx.keyFamily
    if (family === KEY_UNKNOWN) {
      this.unknown = entry
      return
    }
    if (entry.scope === 0) {
      // Known client, no client bit used: every known client gets this. (An unknown client keeps
      // its own slot: "no address" is itself something a step may branch on.)
      if (family === KEY_V4) this.global4 = entry
      else this.global6 = entry
      return
    }
    if (entry.scope > (family === KEY_V4 ? KEY_BITS4 : KEY_BITS6)) return
    if (this.size >= MAX_CLIENT_ENTRIES) this.clear()
    this.size++
    if (family === KEY_V4) this.v4.set(ctx.keyLo, entry)
    else {
      let inner = this.v6.get(ctx.keyHi)
      if (inner === undefined) {
        inner = new Map()
        this.v6.set(ctx.keyHi, inner)
      }
      inner.set(ctx.keyLo, entry)
    }
  }
}

export class CompiledService {
  readonly config: ServiceConfig
  readonly zoneKey: string
  readonly steps: readonly NamedStep[]
  /** Endpoints that can answer A (IPv4 address or CNAME) and AAAA (IPv6 address or CNAME). */
  readonly #forA: readonly Endpoint[]
  readonly #forAAAA: readonly Endpoint[]
  readonly #nodata: Template
  /** How many leading steps are pure (cacheable per client prefix). */
  readonly #pure: number
  /** The last step's order-free variant: its answers are canonical and shuffled at render. */
  readonly #unordered: PolicyStep | undefined
  /** The chain is its pure steps and then one `draw` step: the query path draws from a DrawTable. */
  readonly #drawLast: boolean
  /** With no pure step, the draw over the service's own list, per family, for #view. */
  #draws: [DrawTable | undefined, DrawTable | undefined] | undefined
  /** The nodes of this service: nearly always one, so the rare others go in an array made for them. */
  #node: ServiceNode | undefined
  #moreNodes: ServiceNode[] | undefined
  /** Made on first use: a zone set may hold tens of thousands of services, most never queried. */
  #prefix: readonly [PrefixCache, PrefixCache] | undefined
  /** What the prefix caches and the pool verdicts were computed under. */
  #view: HealthView | undefined
  #geo: GeoLookup | undefined
  #geoGeneration = -1
  /** Per pool index: 0 unknown, 1 healthy, 2 degraded (some member down or ramping), for #view. */
  #poolState: Uint8Array | undefined
  /** Interned decisions: a decision seen before is the same object, so templates key on identity. */
  #interned: Map<number, Answer> | undefined
  /**
   * The last decision made from a stable candidate list (a step that passes its input through,
   * e.g. a multivalue over every up endpoint returns the service's own list), per family, for the
   * current view: found by the list's identity, without walking it.
   */
  #memoOut: (readonly Endpoint[] | undefined)[] = NOT_MEMOIZED
  #memo: (Decision | undefined)[] = NOT_MEMOIZED
  /**
   * The last one-endpoint decision per (endpoint, family): the common case, found without hashing.
   * Made on first store.
   */
  #single: (Answer | undefined)[] | undefined

  constructor(config: ServiceConfig, zoneKey: string, nodata: Template) {
    this.config = config
    this.zoneKey = zoneKey
    this.steps = makeSteps(config.steps)
    this.#nodata = nodata
    this.#forA = answering(config.endpoints, (e) => e.address4 !== undefined || e.cname !== undefined)
    this.#forAAAA = answering(config.endpoints, (e) => e.address6 !== undefined || e.cname !== undefined)
    let pure = 0
    while (pure < this.steps.length && this.steps[pure]!.pure === true) pure++
    this.#pure = pure
    this.#unordered = this.steps.length > 0 ? this.steps[this.steps.length - 1]!.unordered : undefined
    this.#drawLast = pure === this.steps.length - 1 && this.steps[pure]!.draw === true && this.#unordered === undefined
  }

  node(question: Name, standIn: boolean): ServiceNode {
    const node = new ServiceNode(this, question, standIn)
    if (this.#node === undefined) this.#node = node
    else if (this.#moreNodes === undefined) this.#moreNodes = [node]
    else this.#moreNodes.push(node)
    return node
  }

  /**
   * Runs the chain, uncached, with a trace when the context has one: the reference behaviour
   * (`gslb explain`, golden tests). `qtype` is A or AAAA (ANY is answered as A).
   */
  decide(qtype: number, ctx: PolicyContext): Decision {
    const six = qtype === T.AAAA
    const candidates = six ? this.#forAAAA : this.#forA
    const trace = ctx.trace
    if (candidates.length === 0) {
      trace?.note(`no endpoint has an ${six ? 'IPv6' : 'IPv4'} address: NODATA`)
      return NODATA
    }
    let out: readonly Endpoint[] = candidates
    for (const step of this.steps) {
      const before = out
      out = step.run(out, ctx)
      if (trace) trace.note(`${step.name}: ${names(before, ctx)} -> ${names(out, ctx)}`)
    }
    return this.#finish(out, six, ctx)
  }

  /**
   * The query path: the same decision as `decide`, with the leading pure steps run once per
   * (query type, client prefix, health view, geo data) and the result reused. Random and stateful
   * steps after them run per query, on the cached candidates. Answers are interned, so a repeated
   * decision allocates nothing.
   */
  decideCached(qtype: number, ctx: CacheableContext): Decision {
    if (ctx.trace !== undefined) return this.decide(qtype, ctx)
    const six = qtype === T.AAAA
    let out: readonly Endpoint[] = six ? this.#forAAAA : this.#forA
    if (out.length === 0) return NODATA
    this.#validate(ctx)
    const steps = this.steps
    const pure = this.#pure
    if (pure > 0) {
      this.#prefix ??= [new PrefixCache(), new PrefixCache()]
      const cache = this.#prefix[six ? 1 : 0]
      ctx.computeKey()
      let entry = ctx.keyFamily === KEY_V4 ? cache.global4 : ctx.keyFamily === KEY_V6 ? cache.global6 : undefined
      if (entry === undefined) {
        entry = cache.get(ctx)
        if (entry === undefined) {
          for (let i = 0; i < pure; i++) out = steps[i]!.run(out, ctx)
          entry = { out, scope: ctx.scopeBits, decision: undefined, draw: undefined }
          cache.set(ctx, entry)
        }
      }
      ctx.scope(entry.scope)
      if (pure === steps.length) {
        entry.decision ??= this.#finish(entry.out, six, ctx)
        return entry.decision
      }
      if (this.#drawLast) {
        entry.draw ??= this.#drawTable(entry.out, six, ctx)
        return drawFrom(entry.draw, ctx)
      }
      out = entry.out
    } else if (this.#drawLast) {
      this.#draws ??= [undefined, undefined]
      const slot = six ? 1 : 0
      this.#draws[slot] ??= this.#drawTable(out, six, ctx)
      return drawFrom(this.#draws[slot], ctx)
    }
    const stable = out
    const last = this.#unordered === undefined ? steps.length : steps.length - 1
    for (let i = pure; i < last; i++) out = steps[i]!.run(out, ctx)
    if (last < steps.length) out = this.#unordered!(out, ctx)
    return this.#finish(out, six, ctx, out === stable)
  }

  /**
   * `node`'s Ready for `qtype` (A or AAAA) under `ctx`'s view and geo state, made from what
   * `decideCached` just cached for the same query and context: the draw table or decision it
   * found for a client-independent chain (no pure step, or pure steps whose result for this
   * client's family depended on no client bit); for a chain that depends on the client, `prev`
   * (when it is this view's BY_CLIENT Ready) or a new one, with this client's added; else a
   * Ready that sends every query of this view down the full path.
   */
  ready(node: ServiceNode, qtype: number, ctx: CacheableContext, prev: Ready): Ready {
    const six = qtype === T.AAAA
    const view = ctx.health
    const geo = ctx.geoDatabase
    if ((six ? this.#forAAAA : this.#forA).length === 0)
      return this.#readyOf(node, qtype, view, geo, ANY_CLIENT, 0, NODATA, undefined)
    if (view !== this.#view) return this.#notReady(view, geo)
    if (this.#pure === 0) {
      const draw = this.#drawLast ? this.#draws?.[six ? 1 : 0] : undefined
      return this.#readyOf(node, qtype, view, geo, ANY_CLIENT, 0, undefined, draw)
    }
    const cache = this.#prefix?.[six ? 1 : 0]
    ctx.computeKey()
    const family = ctx.keyFamily
    const global = family === KEY_V4 ? cache?.global4 : family === KEY_V6 ? cache?.global6 : undefined
    const byClientNow = prev.family === BY_CLIENT && current(prev, view, geo)
    // The first query of a view that finds a result for its whole family makes the node's Ready
    // hold for that family.
    if (global !== undefined && !byClientNow) return this.#readyOfEntry(node, qtype, view, geo, family, global)
    // Per client: only when what a prefix entry holds is the whole answer (pure to the end, or
    // pure steps and a draw); a random step after them runs per query on the full path anyway.
    if (cache === undefined || (this.#pure < this.steps.length && !this.#drawLast)) return this.#notReady(view, geo)
    const byClient = byClientNow
      ? prev
      : makeReady(
          view,
          geo,
          BY_CLIENT,
          0,
          0,
          NO_SUMS,
          NO_DECISIONS,
          NO_TEMPLATES,
          NO_CLIENT_KEY,
          new Array(FIRST_CLIENT_SLOTS).fill(undefined),
        )
    // The entry this client's query used: its family's (once a BY_CLIENT Ready holds the node), or
    // the one cached under its key (a scope that fits the /24 or /56 key). Unknown clients (ECS
    // source prefix 0) take the full path.
    const entry = global ?? (family === KEY_UNKNOWN ? undefined : cache.get(ctx))
    if (entry === undefined) return byClient
    // Kept also when NO_CLIENT (e.g. SERVFAIL, which has no template): this client then takes the
    // full path without this being made again.
    return addClient(byClient, this.#readyOfEntry(node, qtype, view, geo, family, entry, clientKeyOf(ctx)))
  }

  /**
   * After the full path answered a query at `node` (`decideCached` ran for this query and
   * context): makes the node's Ready for `qtype` again when it was made under another view or geo
   * state, or adds this client's to its client table; nothing when it holds and this query was
   * not one it answers (another family, a random step). Not for ANY (answered as A, its own question).
   */
  refresh(node: ServiceNode, qtype: number, ctx: CacheableContext): void {
    if (qtype !== T.A && qtype !== T.AAAA) return
    const prev = qtype === T.A ? node.ready4 : node.ready6
    if (current(prev, ctx.health, ctx.geoDatabase)) {
      if (prev.family !== BY_CLIENT) return
      // A client the table has (one the full path answers, e.g. SERVFAIL) stays as it is.
      if (findClient(prev.clients!, ctx) !== undefined) return
    }
    node.setReady(qtype, this.ready(node, qtype, ctx, prev))
  }

  #readyOfEntry(
    node: ServiceNode,
    qtype: number,
    view: HealthView,
    geo: GeoLookup | undefined,
    family: number,
    entry: PrefixEntry,
    client: ClientKey = NO_CLIENT_KEY,
  ): Ready {
    const pureChain = this.#pure === this.steps.length
    const decision = pureChain ? entry.decision : undefined
    const draw = !pureChain && this.#drawLast ? entry.draw : undefined
    return this.#readyOf(node, qtype, view, geo, family, entry.scope, decision, draw, client)
  }

  /** A Ready of `decision`, or of `draw` when given; NO_CLIENT when neither is, or one has no template. */
  #readyOf(
    node: ServiceNode,
    qtype: number,
    view: HealthView,
    geo: GeoLookup | undefined,
    family: number,
    scope: number,
    decision: Decision | undefined,
    draw: DrawTable | undefined,
    client: ClientKey = NO_CLIENT_KEY,
  ): Ready {
    if (draw !== undefined && draw.none === undefined) {
      const templates: Template[] = []
      for (const d of draw.decisions) {
        const t = this.template(node, qtype, d)
        if (t === undefined) return this.#notReady(view, geo, client)
        templates.push(t)
      }
      return makeReady(view, geo, family, scope, draw.total, draw.sums, draw.decisions, templates, client)
    }
    const d = draw?.none ?? decision
    const t = d === undefined ? undefined : this.template(node, qtype, d)
    if (d === undefined || t === undefined) return this.#notReady(view, geo, client)
    return makeReady(view, geo, family, scope, 0, NO_SUMS, NO_DECISIONS, NO_TEMPLATES, client, undefined, d, t)
  }

  #notReady(view: HealthView, geo: GeoLookup | undefined, client: ClientKey = NO_CLIENT_KEY): Ready {
    return makeReady(view, geo, NO_CLIENT, 0, 0, NO_SUMS, NO_DECISIONS, NO_TEMPLATES, client)
  }

  /** The chain's last step (a `draw`) over `list`, done ahead for the current view (DrawTable). */
  #drawTable(list: readonly Endpoint[], six: boolean, ctx: PolicyContext): DrawTable {
    const health = ctx.health
    let up = 0
    let weight = 0
    for (let i = 0; i < list.length; i++) {
      const e = list[i]!
      if (!health.up(e)) continue
      up++
      const w = health.weight(e)
      if (w > 0) weight += w
    }
    if (up === 0) return { total: 0, sums: [], decisions: [], none: this.#finish(list, six, ctx) }
    const uniform = weight <= 0
    const sums: number[] = []
    const decisions: Decision[] = []
    let acc = 0
    for (let i = 0; i < list.length; i++) {
      const e = list[i]!
      if (!health.up(e)) continue
      const w = uniform ? 1 : Math.max(0, health.weight(e))
      if (w <= 0) continue
      acc += w
      sums.push(acc)
      decisions.push(this.#finish(alone(e), six, ctx, false))
    }
    return { total: uniform ? up : weight, sums, decisions, none: undefined }
  }

  /** Drops what was cached under another health view or geo data. */
  #validate(ctx: CacheableContext): void {
    const geo = ctx.geoDatabase
    const geoGeneration = geo?.generation ?? 0
    if (ctx.health === this.#view && geo === this.#geo && geoGeneration === this.#geoGeneration) return
    this.#view = ctx.health
    this.#geo = geo
    this.#geoGeneration = geoGeneration
    this.#prefix?.[0].clear()
    this.#prefix?.[1].clear()
    if (this.#draws !== undefined) this.#draws[0] = this.#draws[1] = undefined
    this.#poolState?.fill(0)
    if (this.#memo === NOT_MEMOIZED) {
      this.#memoOut = [undefined, undefined]
      this.#memo = [undefined, undefined]
    } else {
      this.#memoOut[0] = this.#memoOut[1] = undefined
      this.#memo[0] = this.#memo[1] = undefined
    }
  }

  /**
   * Health filter and all-down handling over a chain's output, memoized per family.
   * `stable`: `out` is an array that outlives this query (a cached prefix result, the service's own
   * list, passed through unchanged). Only those are memoized: a random step's fresh array never
   * comes back, and holding it until the service's next query (on a large zone set, ~100 ms later)
   * made every such array outlive two scavenges and get promoted, then collected in old space.
   */
  #finish(out: readonly Endpoint[], six: boolean, ctx: PolicyContext, stable = true): Decision {
    const slot = six ? 1 : 0
    const memoable = stable && ctx.health === this.#view && ctx.trace === undefined
    if (memoable && out === this.#memoOut[slot]) return this.#memo[slot]!
    const d = this.#finishUncached(out, six, ctx)
    if (memoable) {
      this.#memoOut[slot] = out
      this.#memo[slot] = d
    }
    return d
  }

  #finishUncached(out: readonly Endpoint[], six: boolean, ctx: PolicyContext): Decision {
    const health = ctx.health
    let anyUp = false
    let anyDown = false
    for (let i = 0; i < out.length; i++) {
      if (health.up(out[i]!)) anyUp = true
      else anyDown = true
    }
    if (anyUp && anyDown) out = out.filter((e) => health.up(e))
    if (!anyUp) return this.#allDown(out, six, ctx)
    return this.#answer(out, six, ctx, false)
  }

  #allDown(out: readonly Endpoint[], six: boolean, ctx: PolicyContext): Decision {
    const mode: AllDownMode = this.config.allDown
    ctx.trace?.note(`nothing healthy left: all-down mode ${mode.kind}`)
    switch (mode.kind) {
      case 'fail-open':
        // Answer as if everything were healthy (Route 53, gdnsd): better a maybe-dead address than none.
        return this.#answer(out, six, ctx, true)
      case 'pool': {
        const members = mode.pool.endpoints.filter((e) => (six ? e.address6 : e.address4) !== undefined || e.cname)
        const up = members.filter((e) => ctx.health.up(e))
        if (members.length === 0) return NODATA_ALL_DOWN
        return this.#answer(up.length > 0 ? up : members, six, ctx, true)
      }
      case 'address': {
        const list = six ? mode.v6 : mode.v4
        if (list.length === 0) return NODATA_ALL_DOWN
        return this.#intern(six ? T.AAAA : T.A, [], this.config.degradedTtl, true, true, false, six, {
          rdatas: list.map((a) => parseAddress(a)!.bytes),
          values: list,
        })
      }
      case 'cname':
        return this.#intern(T.CNAME, [], this.config.degradedTtl, true, true, false, six, {
          rdatas: [mode.target.wire],
          values: [nameToString(mode.target)],
        })
      case 'nodata':
        return NODATA_ALL_DOWN
      case 'servfail':
        return SERVFAIL
    }
  }

  /** Whether any member of `pool` is down or ramping up under the current view (cached per view). */
  #degraded(pool: Pool, health: HealthView): boolean {
    const cacheable = health === this.#view
    let state = this.#poolState
    if (cacheable && state !== undefined && pool.index < state.length) {
      const s = state[pool.index]!
      if (s !== 0) return s === 2
    }
    let degraded = false
    for (const m of pool.endpoints) {
      if (!health.up(m) || health.recovering(m)) {
        degraded = true
        break
      }
    }
    if (cacheable) {
      if (state === undefined || pool.index >= state.length) {
        const grown = new Uint8Array(Math.max(pool.index + 1, (state?.length ?? 4) * 2))
        if (state !== undefined) grown.set(state)
        state = grown
        this.#poolState = state
      }
      state[pool.index] = degraded ? 2 : 1
    }
    return degraded
  }

  #answer(out: readonly Endpoint[], six: boolean, ctx: PolicyContext, allDown: boolean): Decision {
    const health = ctx.health
    // TTL follows health: lower while any member of an answering pool is down or ramping up,
    // so clients come back soon after the pool recovers.
    let ttl = Number.MAX_SAFE_INTEGER
    let degraded = allDown
    let lastPool = undefined as Endpoint['pool'] | undefined
    let cnameEp: Endpoint | undefined
    for (let i = 0; i < out.length; i++) {
      const e = out[i]!
      if (cnameEp === undefined && e.cname !== undefined) cnameEp = e
      if (e.pool === lastPool) continue
      lastPool = e.pool
      const t = e.pool.ttl ?? this.config.ttl
      if (t < ttl) ttl = t
      if (!degraded && this.#degraded(e.pool, health)) degraded = true
    }
    if (degraded && this.config.degradedTtl < ttl) ttl = this.config.degradedTtl
    if (cnameEp !== undefined) return this.#intern(T.CNAME, [cnameEp], ttl, allDown, degraded, false, six)
    const shuffle = this.#unordered !== undefined && out.length > 1
    if (shuffle && !ascending(out)) out = [...out].sort((a, b) => a.index - b.index)
    return this.#intern(six ? T.AAAA : T.A, out, ttl, allDown, degraded, shuffle, six)
  }

  /**
   * The one Decision object for these fields: found by a hash of them and checked field by field
   * (a collision replaces the older entry), built by `make` only when new.
   */
  #intern(
    type: number,
    endpoints: readonly Endpoint[],
    ttl: number,
    allDown: boolean,
    degraded: boolean,
    shuffle: boolean,
    six: boolean,
    /** The records of an answer not made of endpoints (all-down address or CNAME); else derived. */
    fixed?: { readonly rdatas: readonly Buffer[]; readonly values: readonly string[] },
  ): Answer {
    const slot = endpoints.length === 1 ? endpoints[0]!.index * 2 + (six ? 1 : 0) : -1
    if (slot >= 0) {
      const last = this.#single?.[slot]
      if (
        last !== undefined &&
        last.type === type &&
        last.ttl === ttl &&
        last.allDown === allDown &&
        last.degraded === degraded &&
        last.shuffle === shuffle
      ) {
        return last
      }
    }
    let h = fnvStep(fnvStep(FNV_OFFSET, type), ttl)
    h = fnvStep(h, (allDown ? 1 : 0) | (degraded ? 2 : 0) | (shuffle ? 4 : 0) | (six ? 8 : 0))
    for (let i = 0; i < endpoints.length; i++) h = fnvStep(h, endpoints[i]!.index)
    const key = h >>> 0
    const found = this.#interned?.get(key)
    if (
      found !== undefined &&
      found.type === type &&
      found.ttl === ttl &&
      found.allDown === allDown &&
      found.degraded === degraded &&
      found.shuffle === shuffle &&
      sameEndpoints(found.endpoints, endpoints)
    ) {
      if (slot >= 0) this.#keepSingle(slot, found)
      return found
    }
    // Only on a miss: a repeated decision costs no arrays and no closure.
    const { rdatas, values } = fixed ?? this.#records(type, endpoints, six)
    const d = new AnswerDecision({
      type,
      endpoints: Object.freeze([...endpoints]),
      rdatas,
      values,
      ttl,
      allDown,
      degraded,
      shuffle,
    })
    if (this.#interned === undefined) this.#interned = new Map()
    else if (this.#interned.size >= MAX_INTERNED) this.#clearInterned()
    this.#interned.set(key, d)
    if (slot >= 0) this.#keepSingle(slot, d)
    return d
  }

  #keepSingle(slot: number, d: Answer): void {
    let single = this.#single
    if (single === undefined) {
      single = []
      this.#single = single
    }
    single[slot] = d
  }

  /** rdata and text of an answer made of endpoints: their CNAME target, or their addresses. */
  #records(type: number, endpoints: readonly Endpoint[], six: boolean): { rdatas: Buffer[]; values: string[] } {
    if (type === T.CNAME) {
      const target = endpoints[0]!.cname!
      return { rdatas: [target.wire], values: [nameToString(target)] }
    }
    return {
      rdatas: endpoints.map((e) => (six ? e.rdata6! : e.rdata4!)),
      values: endpoints.map((e) => (six ? e.address6! : e.address4!)),
    }
  }

  #clearInterned(): void {
    this.#interned?.clear()
    this.#single = undefined
    if (this.#node !== undefined) clearTemplates(this.#node)
    for (const n of this.#moreNodes ?? NO_NODES) clearTemplates(n)
  }

  /** The response template for a decision at `node`: cached, built on first use. */
  template(node: ServiceNode, qtype: number, d: Decision): Template | undefined {
    if (d.kind === 'servfail') return undefined
    if (d.kind === 'nodata') return this.#nodata
    // Only A and AAAA templates are kept: ANY (answered as A) carries its own question type. A
    // decision is for one family, so one slot on it holds the template of its first node.
    const cacheable = qtype === T.A || qtype === T.AAAA
    if (cacheable && d.templateNode === node) return d.template
    const slot = qtype === T.AAAA ? 1 : 0
    let cache: Map<Decision, Template> | undefined
    if (cacheable && d.templateNode !== undefined) {
      cache = node.templates[slot] ?? new Map()
      node.templates[slot] = cache
    }
    let t = cache?.get(d)
    if (t !== undefined) return t
    const b = new TemplateBuilder({ name: node.question, qtype, standIn: node.standIn })
    b.add(SECTION_ANSWER, { owner: QNAME, type: d.type, ttl: d.ttl, rdatas: d.rdatas })
    t = b.finish(FLAG_QR | FLAG_AA)
    if (!cacheable) return t
    if (d.templateNode === undefined) {
      d.templateNode = node
      d.template = t
    } else if (cache !== undefined) {
      if (cache.size >= MAX_CACHED_TEMPLATES) cache.clear()
      cache.set(d, t)
    }
    return t
  }
}

const NO_NODES: readonly ServiceNode[] = Object.freeze([])

function clearTemplates(node: ServiceNode): void {
  for (const m of node.templates) m?.clear()
}

/**
 * The endpoints of `list` that can answer one query type, in order. The list itself when all can
 * and a shared empty list when none can (both common: most services are all IPv4 or dual-stack),
 * so a service keeps no copy of its endpoints.
 */
function answering(list: readonly Endpoint[], can: (e: Endpoint) => boolean): readonly Endpoint[] {
  let n = 0
  for (let i = 0; i < list.length; i++) if (can(list[i]!)) n++
  if (n === list.length) return list
  return n === 0 ? NO_ENDPOINTS : list.filter(can)
}

const FNV_OFFSET = 0x811c9dc5
const FNV_PRIME = 0x01000193

function fnvStep(h: number, value: number): number {
  h = Math.imul(h ^ (value & 0xffff), FNV_PRIME)
  return Math.imul(h ^ (value >>> 16), FNV_PRIME)
}

function ascending(list: readonly Endpoint[]): boolean {
  for (let i = 1; i < list.length; i++) if (list[i - 1]!.index > list[i]!.index) return false
  return true
}

function sameEndpoints(a: readonly Endpoint[], b: readonly Endpoint[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

function names(list: readonly Endpoint[], ctx: PolicyContext): string {
  return `[${list.map((e) => (ctx.health.up(e) ? e.name : `${e.name}(down)`)).join(' ')}]`
}

/** One draw from a DrawTable: the decision of the first candidate whose running sum exceeds it. */
function drawFrom(t: DrawTable, ctx: PolicyContext): Decision {
  if (t.none !== undefined) return t.none
  const target = ctx.random() * t.total
  const sums = t.sums
  for (let i = 0; i < sums.length; i++) if (target < sums[i]!) return t.decisions[i]!
  // Only reached through float rounding at the very top of the range, as in policy/weighted.
  return t.decisions[t.decisions.length - 1]!
}
