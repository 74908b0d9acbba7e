/**
 * @module ops/metrics
 * Prometheus metrics of one serving instance, in one prom-client registry, scraped at the admin
 * endpoint's `GET /metrics`.
 *
 * The query path never touches prom-client: a label lookup there hashes a labels object per
 * call, which costs more than answering a static query. Queries are counted into plain typed
 * arrays instead (one Float64Array per zone, indexed by qtype bucket x rcode x transport; one small
 * array per service and pool), reached with at most a couple of Map lookups on keys whose hash V8
 * has already cached. prom-client only sees the totals, copied in by `collect()` callbacks when
 * somebody scrapes:
 *
 * ```
 *  query path ─ count() ─→ Float64Array[qtype][rcode][transport] per zone, sizes, TC, outcomes
 *  health sync ─ gslb:health:change ─→ transition counts          │
 *  prober ─ countedCheck() ─→ probe results, last RTT              │ collect() at scrape time
 *  reloads ─ reloaded() ─→ reload counts                           ↓
 *  store, sync, TCP listeners, zone table ─────────────→ prom-client Registry ─→ /metrics text
 * ```
 *
 * With `serve --workers N` the query path runs in worker threads, each counting into its own
 * QueryCounters; at scrape time the main thread pulls every worker's totals as plain data
 * (`QueryCounters.data()`), sums them with its own (`mergeCounts`) and renders the same series,
 * plus `gslb_worker_queries_total{worker}` to show how the kernel spread the flows.
 *
 * Label values come from zone files (zones, services, pools, endpoints) or from fixed lists
 * (qtype, rcode, transport, outcome, result), so the series count is bounded by configuration,
 * never by traffic.
 */

import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { Counter, collectDefaultMetrics, Gauge, type Metric, Registry } from 'prom-client'
import { nameToString } from '../dns/name.ts'
import type { Query } from '../dns/query.ts'
import { RCODE, T } from '../dns/types.ts'
import type { HealthStore } from '../health/state.ts'
import type { HealthChangeMessage } from '../health/sync.ts'
import type { CompiledService, Decision } from '../policy/service.ts'
import type { Endpoint } from '../policy/types.ts'
import type { ProbeSchedulerStats, RunCheck } from '../probe/scheduler.ts'
import type { CheckResult } from '../probe/types.ts'
import type { Answerer, Transport } from '../query/handle.ts'
import type { ReloadTiming } from '../server/index.ts'
import type { TcpStats } from '../server/tcp.ts'
import type { UdpStats } from '../server/udp.ts'
import { splitTargetId, type TargetId } from '../state/types.ts'
import type { CompiledZone } from '../zone/compile.ts'
import type { AnswerNode } from '../zone/node.ts'
import type { ZoneTable } from '../zone/table.ts'
import { CLASS_IN } from '../zone/types.ts'

// ---------------------------------------------------------------------------------------------
// Fixed label sets

/** QTYPE buckets: the types worth telling apart, then everything else, then "no question". */
const QTYPE_LIST: ReadonlyArray<readonly [string, number]> = [
  ['A', T.A],
  ['AAAA', T.AAAA],
  ['CNAME', T.CNAME],
  ['MX', T.MX],
  ['NS', T.NS],
  ['SOA', T.SOA],
  ['TXT', T.TXT],
  ['SRV', T.SRV],
  ['PTR', T.PTR],
  ['NAPTR', T.NAPTR],
  ['CAA', T.CAA],
  ['DS', T.DS],
  ['DNSKEY', T.DNSKEY],
  ['SVCB', 64],
  ['HTTPS', 65],
  ['ANY', T.ANY],
  ['AXFR', T.AXFR],
  ['IXFR', T.IXFR],
]
export const QTYPE_LABELS: readonly string[] = [...QTYPE_LIST.map(([n]) => n), 'other', '']
const QTYPE_OTHER = QTYPE_LIST.length
const QTYPE_NONE = QTYPE_LIST.length + 1
const NQ = QTYPE_LABELS.length
/** QTYPE number → bucket, one byte per possible type: a lookup with no branches. */
const QTYPE_INDEX = new Uint8Array(65536).fill(QTYPE_OTHER)
for (const [i, [, n]] of QTYPE_LIST.entries()) QTYPE_INDEX[n] = i

export const RCODE_LABELS: readonly string[] = [
  'NOERROR',
  'FORMERR',
  'SERVFAIL',
  'NXDOMAIN',
  'NOTIMP',
  'REFUSED',
  'BADVERS',
  'other',
]
const NR = RCODE_LABELS.length

function rcodeIndex(rcode: number): number {
  return rcode <= RCODE.REFUSED ? rcode : rcode === RCODE.BADVERS ? 6 : 7
}

export const TRANSPORT_LABELS: readonly Transport[] = ['udp', 'tcp']

/** Upper bounds of the response size buckets (bytes); one more bucket holds everything larger. */
export const SIZE_BUCKETS: readonly number[] = [64, 128, 256, 512, 1024, 2048, 4096]
const NB = SIZE_BUCKETS.length + 1

/** Bucket of a response size: bounds are powers of two, so the bit length finds it. */
function sizeBucket(size: number): number {
  if (size <= 64) return 0
  const i = 32 - Math.clz32(size - 1) - 6
  return i < NB - 1 ? i : NB - 1
}

export const OUTCOME_LABELS = ['answer', 'nodata', 'servfail', 'all_down'] as const
const O_ANSWER = 0
const O_NODATA = 1
const O_SERVFAIL = 2
const O_ALL_DOWN = 3

// ---------------------------------------------------------------------------------------------
// Query counting: the only part on the query path

/** Query counts of one zone (zone "" holds REFUSED, unparsed and CHAOS queries). */
interface ZoneCounts {
  readonly zone: string
  /** Index `(qtype bucket * NR + rcode bucket) * 2 + transport`. */
  readonly queries: Float64Array
}

/**
 * What one interned answer decision counts: its service's zone, its pool's outcomes, its endpoints.
 * A query adds one to `pending` only; the pool and endpoint counts get it when they are read
 * (`#fold`), so a query touches one counter however many endpoints it answered with, instead of
 * one scattered counter per endpoint (cache misses on a large zone set).
 */
interface AnswerCounters {
  readonly owner: QueryCounters
  readonly zone: ZoneCounts
  readonly byPool: Float64Array
  readonly outcome: number
  readonly endpoints: readonly EndpointCount[]
  pending: number
}

/** Answers counted but not yet folded into pools and endpoints, at most; past it, fold at once. */
const MAX_PENDING = 65_536
/** Service answers counted per batch (QueryCounters.#drain). */
const RECENT = 1024

/** Decisions of one service, per answering pool ("" when no endpoint answered). */
interface ServiceCounts {
  readonly zone: ZoneCounts
  readonly service: string
  readonly byPool: Map<string, Float64Array>
}

export interface QuerySeries {
  readonly zone: string
  readonly qtype: string
  readonly rcode: string
  readonly transport: Transport
  readonly value: number
}

export interface AnswerSeries {
  readonly zone: string
  readonly service: string
  readonly pool: string
  readonly outcome: (typeof OUTCOME_LABELS)[number]
  readonly value: number
}

export interface SizeSeries {
  readonly transport: Transport
  /** Per bucket of SIZE_BUCKETS plus the overflow bucket, not cumulative. */
  readonly buckets: readonly number[]
  readonly sum: number
  readonly count: number
}

/**
 * Counts every answered query: O(1) work and no allocation in the steady state. Reads what the
 * Answerer left behind (the parsed query, the service outcome) instead of parsing the response.
 */
export class QueryCounters {
  readonly #answerer: Answerer
  readonly #zones = new Map<string, ZoneCounts>()
  readonly #none: ZoneCounts
  readonly #truncated = new Float64Array(2)
  readonly #sizes = new Float64Array(2 * NB)
  readonly #sizeSum = new Float64Array(2)
  /** Per compiled service object (dropped with the zone it belongs to), pointing at stable counts. */
  readonly #services = new WeakMap<CompiledService, ServiceCounts>()
  readonly #serviceCounts = new Map<string, ServiceCounts>()
  /** Answers per member endpoint: by logical name (survives reloads), reached through the object. */
  readonly #endpointByObject = new WeakMap<Endpoint, EndpointCount>()
  readonly #endpointCounts = new Map<string, EndpointCount>()
  /** The same counts in creation order, and the (service, pool) outcome counts likewise: `update()` indexes them. */
  readonly #endpointList: EndpointCount[] = []
  readonly #answerSlots: { readonly sc: ServiceCounts; readonly pool: string; readonly counts: Float64Array }[] = []
  /** How many of each list `update()` has already sent the labels of. */
  #sentEndpoints = 0
  #sentAnswers = 0
  /**
   * The counters an answer decision increments, found by the decision's identity: answer decisions
   * are interned per service, so on a large zone set one lookup replaces one per service, per pool
   * and per endpoint answered (the largest item of the query path's own time with 10k services).
   */
  readonly #byAnswer = new WeakMap<Decision, AnswerCounters>()
  /** Counters with a `pending` count, each once. */
  #pending: AnswerCounters[] = []
  /** The service answers of the last queries, not yet attributed to their counters (#drain). */
  readonly #recentServices: (CompiledService | undefined)[] = new Array(RECENT).fill(undefined)
  readonly #recentDecisions: (Decision | undefined)[] = new Array(RECENT).fill(undefined)
  #recent = 0
  /** Zone resolution for names that are not a node of the table, rebuilt when the table changes. */
  #table: ZoneTable | undefined
  #byZone = new Map<CompiledZone, ZoneCounts>()
  #apexes = new Map<string, ZoneCounts>()
  /** Label counts of the served apexes, deepest first (a child zone wins over its parent). */
  #depths: number[] = []

  constructor(answerer: Answerer) {
    this.#answerer = answerer
    this.#none = this.#zone('')
  }

  /** The QueryObserver body: `query` and `response` as the listener saw them. */
  count(query: Buffer, response: Buffer, transport: Transport): void {
    const t = transport === 'tcp' ? 1 : 0
    const a = this.#answerer
    const q = a.lastQuery
    let rcode = response[3]! & 0x0f
    // BADVERS (16) shows as 0 in the header; it is the only answer to an EDNS version above 0.
    if (rcode === 0 && q.hasEdns && q.ednsVersion !== 0) rcode = RCODE.BADVERS
    const o = a.lastOutcome
    let zone: ZoneCounts
    if (o.query === query && o.service !== undefined && o.decision !== undefined) {
      // Which answer it was is counted later, in a batch (#drain): on a large zone set the
      // decision and its counters are two cache misses that a query would otherwise wait for in
      // turn, and that a loop over a batch overlaps. The zone is known from the service's node.
      const n = this.#recent
      this.#recentServices[n] = o.service
      this.#recentDecisions[n] = o.decision
      this.#recent = n + 1
      if (n + 1 === RECENT) this.#drain()
      zone = this.#zone(o.zoneKey)
    } else if (!q.hasQuestion || rcode === RCODE.REFUSED || q.qclass !== CLASS_IN) {
      zone = this.#none
    } else {
      zone = this.#zoneOf(q, a.table, rcode, a.exactNode(query))
    }
    const qt = q.hasQuestion ? QTYPE_INDEX[q.qtype]! : QTYPE_NONE
    zone.queries[(qt * NR + rcodeIndex(rcode)) * 2 + t]!++
    if ((response[2]! & 0x02) !== 0) this.#truncated[t]!++
    const size = response.length
    this.#sizes[t * NB + sizeBucket(size)]!++
    this.#sizeSum[t]! += size
  }

  #decided(svc: CompiledService, d: Decision): ZoneCounts {
    if (d.kind === 'answer') {
      // The decision's own slot first: no lookup. The WeakMap only for a decision another
      // QueryCounters (a test's, a second answerer's) took the slot of.
      let a = d.meter as AnswerCounters | undefined
      if (a === undefined || a.owner !== this) {
        a = this.#byAnswer.get(d)
        if (a === undefined || a.owner !== this) {
          a = this.#answerCounters(svc, d)
          this.#byAnswer.set(d, a)
          d.meter ??= a
        }
      }
      if (a.pending++ === 0) {
        this.#pending.push(a)
        if (this.#pending.length >= MAX_PENDING) this.#fold()
      }
      return a.zone
    }
    return this.#decidedSlow(svc, d)
  }

  #answerCounters(svc: CompiledService, d: Extract<Decision, { kind: 'answer' }>): AnswerCounters {
    const sc = this.#services.get(svc) ?? this.#newService(svc)
    // The pool of the first endpoint answered: the one a failover or geo step chose.
    const pool = d.endpoints[0]?.pool.name ?? ''
    const endpoints = d.endpoints.map((e) => this.#endpointByObject.get(e) ?? this.#newEndpoint(svc.zoneKey, e))
    return {
      owner: this,
      zone: sc.zone,
      byPool: this.#poolCounts(sc, pool),
      outcome: d.allDown ? O_ALL_DOWN : O_ANSWER,
      endpoints,
      pending: 0,
    }
  }

  /** Attributes the recent answers to their counters (see count). */
  #drain(): void {
    const services = this.#recentServices
    const decisions = this.#recentDecisions
    const n = this.#recent
    this.#recent = 0
    for (let i = 0; i < n; i++) {
      this.#decided(services[i]!, decisions[i]!)
      services[i] = undefined
      decisions[i] = undefined
    }
  }

  /** Adds every pending answer count to its pool and endpoint counts (before they are read). */
  #fold(): void {
    this.#drain()
    const list = this.#pending
    this.#pending = []
    for (const a of list) {
      const n = a.pending
      a.pending = 0
      a.byPool[a.outcome]! += n
      for (const e of a.endpoints) e.value += n
    }
  }

  #poolCounts(sc: ServiceCounts, pool: string): Float64Array {
    let counts = sc.byPool.get(pool)
    if (counts === undefined) {
      counts = new Float64Array(OUTCOME_LABELS.length)
      sc.byPool.set(pool, counts)
      this.#answerSlots.push({ sc, pool, counts })
    }
    return counts
  }

  /** NODATA and SERVFAIL decisions, which are shared by every service, so not cached by identity. */
  #decidedSlow(svc: CompiledService, d: Exclude<Decision, { kind: 'answer' }>): ZoneCounts {
    const sc = this.#services.get(svc) ?? this.#newService(svc)
    const outcome = d.kind === 'servfail' ? O_SERVFAIL : d.allDown ? O_ALL_DOWN : O_NODATA
    this.#poolCounts(sc, '')[outcome]!++
    return sc.zone
  }

  #newEndpoint(zone: string, e: Endpoint): EndpointCount {
    const key = `${zone}\0${e.name}`
    let c = this.#endpointCounts.get(key)
    if (c === undefined) {
      c = { zone, pool: e.pool.name, endpoint: e.name, value: 0 }
      this.#endpointCounts.set(key, c)
      this.#endpointList.push(c)
    }
    this.#endpointByObject.set(e, c)
    return c
  }

  endpointAnswers(): readonly EndpointCount[] {
    this.#fold()
    return [...this.#endpointCounts.values()]
  }

  /** First sight of a compiled service (after a load or reload): find or make its stable counts. */
  #newService(svc: CompiledService): ServiceCounts {
    const name = serviceLabel(svc)
    const key = `${svc.zoneKey}\0${name}`
    let sc = this.#serviceCounts.get(key)
    if (sc === undefined) {
      sc = { zone: this.#zone(svc.zoneKey), service: name, byPool: new Map() }
      this.#serviceCounts.set(key, sc)
    }
    this.#services.set(svc, sc)
    return sc
  }

  #zone(key: string): ZoneCounts {
    let z = this.#zones.get(key)
    if (z === undefined) {
      z = { zone: key, queries: new Float64Array(NQ * NR * 2) }
      this.#zones.set(key, z)
    }
    return z
  }

  /**
   * The zone that answered `q`: the deepest served apex the name lies under, which is also the
   * zone of the name's node when it has one (the table gives names below a served child zone to
   * that child alone).
   */
  #zoneOf(q: Query, table: ZoneTable, rcode: number, exact: AnswerNode | undefined): ZoneCounts {
    if (table !== this.#table) this.#index(table)
    // Fast path for names that exist: the node the answer came from, or a lookup by key.
    // NXDOMAIN names almost never have a node (a dangling CNAME does), so they skip it.
    if (exact !== undefined) return this.#byZone.get(exact.zone) ?? this.#none
    if (rcode !== RCODE.NXDOMAIN) {
      const node = table.nodes.get(q.key)
      if (node !== undefined) return this.#byZone.get(node.zone) ?? this.#none
    }
    // NXDOMAIN, wildcards, names below a cut: one probe per distinct apex depth, usually one.
    for (const d of this.#depths) {
      const skip = q.labelCount - d
      if (skip < 1) continue
      const z = this.#apexes.get(q.suffixKey(skip))
      if (z !== undefined) return z
    }
    return this.#none
  }

  #index(table: ZoneTable): void {
    this.#table = table
    this.#byZone = new Map()
    this.#apexes = new Map()
    const depths = new Set<number>()
    for (const z of table.zones) {
      const c = this.#zone(z.stateKey)
      this.#byZone.set(z, c)
      this.#apexes.set(z.apex.key, c)
      depths.add(z.apex.labels)
    }
    this.#depths = [...depths].sort((a, b) => b - a)
  }

  // Scrape-time reads.

  queries(): QuerySeries[] {
    const out: QuerySeries[] = []
    for (const z of this.#zones.values()) {
      const a = z.queries
      for (let i = 0; i < a.length; i++) {
        const value = a[i]!
        if (value === 0) continue
        const t = i & 1
        const rc = (i >> 1) % NR
        const qt = Math.floor((i >> 1) / NR)
        out.push({
          zone: z.zone,
          qtype: QTYPE_LABELS[qt]!,
          rcode: RCODE_LABELS[rc]!,
          transport: TRANSPORT_LABELS[t]!,
          value,
        })
      }
    }
    return out
  }

  answers(): AnswerSeries[] {
    this.#fold()
    const out: AnswerSeries[] = []
    for (const sc of this.#serviceCounts.values()) {
      for (const [pool, counts] of sc.byPool) {
        for (const [i, outcome] of OUTCOME_LABELS.entries()) {
          const value = counts[i]!
          if (value > 0) out.push({ zone: sc.zone.zone, service: sc.service, pool, outcome, value })
        }
      }
    }
    return out
  }

  truncated(transport: Transport): number {
    return this.#truncated[transport === 'tcp' ? 1 : 0]!
  }

  sizes(): SizeSeries[] {
    return TRANSPORT_LABELS.map((transport, t) => {
      const buckets = Array.from(this.#sizes.subarray(t * NB, (t + 1) * NB))
      return { transport, buckets, sum: this.#sizeSum[t]!, count: buckets.reduce((s, n) => s + n, 0) }
    })
  }

  /**
   * Every count, for a worker thread's regular report to the main thread (a `CountsMirror` there
   * turns the reports back into `data()`). With 10k services and 50k endpoints, `data()` is ~70k
   * objects: built and copied every second it held a worker's answers back 10-30 ms each time.
   * Here a series' labels go once, the first report after it appears; its values go in typed
   * arrays, which cross threads as one copy.
   */
  update(): CountsUpdate {
    this.#fold()
    const slots = this.#answerSlots
    const newAnswerKeys: [string, string, string][] = []
    for (let i = this.#sentAnswers; i < slots.length; i++) {
      const a = slots[i]!
      newAnswerKeys.push([a.sc.zone.zone, a.sc.service, a.pool])
    }
    this.#sentAnswers = slots.length
    const answers = new Float64Array(slots.length * NOUT)
    for (let i = 0; i < slots.length; i++) answers.set(slots[i]!.counts, i * NOUT)
    const eps = this.#endpointList
    const newEndpointKeys: [string, string, string][] = []
    for (let i = this.#sentEndpoints; i < eps.length; i++) {
      const e = eps[i]!
      newEndpointKeys.push([e.zone, e.pool, e.endpoint])
    }
    this.#sentEndpoints = eps.length
    const endpoints = new Float64Array(eps.length)
    for (let i = 0; i < eps.length; i++) endpoints[i] = eps[i]!.value
    return {
      queries: this.queries(),
      truncated: [this.truncated('udp'), this.truncated('tcp')],
      sizes: this.sizes(),
      newAnswerKeys,
      answers,
      newEndpointKeys,
      endpoints,
    }
  }

  /** Every count as plain data (the main thread's own, merged with its workers' at scrape time). */
  data(): QueryCountsData {
    return {
      queries: this.queries(),
      answers: this.answers(),
      endpoints: this.endpointAnswers().map((c) => ({ ...c })),
      truncated: [this.truncated('udp'), this.truncated('tcp')],
      sizes: this.sizes(),
    }
  }
}

const NOUT = OUTCOME_LABELS.length

/** One `QueryCounters.update()`: cumulative values, and the labels of series new since the last one. */
export interface CountsUpdate {
  readonly queries: readonly QuerySeries[]
  readonly truncated: readonly [number, number]
  readonly sizes: readonly SizeSeries[]
  /** [zone, service, pool] of the answer series first reported here, after every earlier one. */
  readonly newAnswerKeys: readonly (readonly [string, string, string])[]
  /** Per answer series in report order, one value per OUTCOME_LABELS entry. */
  readonly answers: Float64Array
  /** [zone, pool, endpoint] of the endpoint series first reported here. */
  readonly newEndpointKeys: readonly (readonly [string, string, string])[]
  readonly endpoints: Float64Array
}

/** What a worker reports before it counts anything. */
export const NO_UPDATE: CountsUpdate = Object.freeze({
  queries: [],
  truncated: [0, 0] as const,
  sizes: [],
  newAnswerKeys: [],
  answers: new Float64Array(0),
  newEndpointKeys: [],
  endpoints: new Float64Array(0),
})

/**
 * The receiving side of one QueryCounters' `update()`s (one per worker incarnation, all of its
 * updates in order): keeps the labels, holds the last values, and gives them back as
 * `QueryCountsData` when read (scrape time), built once per update.
 */
export class CountsMirror {
  readonly #answerKeys: (readonly [string, string, string])[] = []
  readonly #endpointKeys: (readonly [string, string, string])[] = []
  #last: CountsUpdate | undefined
  #data: QueryCountsData | undefined

  apply(u: CountsUpdate): void {
    for (const k of u.newAnswerKeys) this.#answerKeys.push(k)
    for (const k of u.newEndpointKeys) this.#endpointKeys.push(k)
    this.#last = u
    this.#data = undefined
  }

  data(): QueryCountsData {
    const u = this.#last
    if (u === undefined) return NO_COUNTS
    if (this.#data !== undefined) return this.#data
    const answers: AnswerSeries[] = []
    const keys = this.#answerKeys
    for (let i = 0; i < keys.length; i++) {
      const [zone, service, pool] = keys[i]!
      for (let o = 0; o < NOUT; o++) {
        const value = u.answers[i * NOUT + o] ?? 0
        if (value > 0) answers.push({ zone, service, pool, outcome: OUTCOME_LABELS[o]!, value })
      }
    }
    const endpoints: EndpointSeries[] = this.#endpointKeys.map(([zone, pool, endpoint], i) => ({
      zone,
      pool,
      endpoint,
      value: u.endpoints[i] ?? 0,
    }))
    this.#data = { queries: u.queries, answers, endpoints, truncated: u.truncated, sizes: u.sizes }
    return this.#data
  }
}

/** The totals of one QueryCounters as plain, structured-clonable data (see `data()`). */
export interface QueryCountsData {
  readonly queries: readonly QuerySeries[]
  readonly answers: readonly AnswerSeries[]
  readonly endpoints: readonly EndpointSeries[]
  /** Truncated responses: [udp, tcp]. */
  readonly truncated: readonly [number, number]
  readonly sizes: readonly SizeSeries[]
}

export interface EndpointSeries {
  readonly zone: string
  readonly pool: string
  readonly endpoint: string
  readonly value: number
}

export const NO_COUNTS: QueryCountsData = Object.freeze<QueryCountsData>({
  queries: [],
  answers: [],
  endpoints: [],
  truncated: [0, 0],
  sizes: [],
})

/** Sums of a query count over its series (every query is in exactly one `queries` series). */
export function totalQueries(d: QueryCountsData): number {
  let n = 0
  for (const s of d.queries) n += s.value
  return n
}

/** Adds up several threads' counts, series by series (same labels, one series). */
export function mergeCounts(parts: readonly QueryCountsData[]): QueryCountsData {
  const queries = new Map<string, { -readonly [K in keyof QuerySeries]: QuerySeries[K] }>()
  const answers = new Map<string, { -readonly [K in keyof AnswerSeries]: AnswerSeries[K] }>()
  const endpoints = new Map<string, { -readonly [K in keyof EndpointSeries]: EndpointSeries[K] }>()
  const sizes = new Map<Transport, { transport: Transport; buckets: number[]; sum: number; count: number }>()
  const truncated: [number, number] = [0, 0]
  for (const p of parts) {
    for (const s of p.queries) {
      const k = `${s.zone}\0${s.qtype}\0${s.rcode}\0${s.transport}`
      const m = queries.get(k)
      if (m === undefined) queries.set(k, { ...s })
      else m.value += s.value
    }
    for (const s of p.answers) {
      const k = `${s.zone}\0${s.service}\0${s.pool}\0${s.outcome}`
      const m = answers.get(k)
      if (m === undefined) answers.set(k, { ...s })
      else m.value += s.value
    }
    for (const s of p.endpoints) {
      const k = `${s.zone}\0${s.pool}\0${s.endpoint}`
      const m = endpoints.get(k)
      if (m === undefined) endpoints.set(k, { ...s })
      else m.value += s.value
    }
    truncated[0] += p.truncated[0]
    truncated[1] += p.truncated[1]
    for (const s of p.sizes) {
      const m = sizes.get(s.transport)
      if (m === undefined) sizes.set(s.transport, { ...s, buckets: [...s.buckets] })
      else {
        for (let i = 0; i < s.buckets.length; i++) m.buckets[i] = (m.buckets[i] ?? 0) + s.buckets[i]!
        m.sum += s.sum
        m.count += s.count
      }
    }
  }
  return {
    queries: [...queries.values()],
    answers: [...answers.values()],
    endpoints: [...endpoints.values()],
    truncated,
    sizes: [...sizes.values()],
  }
}

/** A service as its zone file names it: `www`, `*.apps`, or `@` at the apex. */
function serviceLabel(svc: CompiledService): string {
  const owner = nameToString(svc.config.owner).toLowerCase().replace(/\.$/, '')
  if (owner === svc.zoneKey) return '@'
  return owner.endsWith(`.${svc.zoneKey}`) ? owner.slice(0, -svc.zoneKey.length - 1) : owner
}

// ---------------------------------------------------------------------------------------------
// Everything else: counted off the query path, or read at scrape time

/** Why an endpoint flipped, in a word (the HealthChangeMessage reason is free text). */
export function reasonKind(reason: string): string {
  if (reason.startsWith('forced')) return 'forced'
  if (reason === 'drained') return 'drained'
  if (reason.startsWith('pushed')) return 'pushed'
  if (reason.startsWith('check')) return 'check'
  if (reason.startsWith('no current report')) return 'no_report'
  return 'other'
}

/** What a zone reload reported for one file; the shape of FileOutcome that metrics need. */
export interface ReloadedFile {
  readonly status: 'loaded' | 'unchanged' | 'rejected' | 'removed'
  readonly zone: string | undefined
}

/** Read when scraped; each source is optional (no prober with Redis, no webhooks unless set). */
export interface ScrapeSources {
  readonly tcp: () => TcpStats
  /** Absent in tests that give no listeners; the series then read 0. */
  readonly udp?: (() => UdpStats) | undefined
  readonly store: { readonly connected: boolean }
  readonly sync: { readonly staleMs: number; readonly generation: number }
  readonly prober?: (() => ProbeSchedulerStats) | undefined
  readonly webhooks?: (() => { delivered: number; failed: number; dropped: number }) | undefined
  /**
   * With worker threads: fetches every worker's query counts (one round trip, bounded in time),
   * summed with this thread's own before the series are rendered.
   */
  readonly remote?: (() => Promise<readonly QueryCountsData[]>) | undefined
  /** With worker threads: per-worker figures, as of the last `remote()` pull. */
  readonly workers?: (() => readonly WorkerFigures[]) | undefined
}

/** One worker thread slot (its restarts keep the slot and its counts). */
export interface WorkerFigures {
  readonly worker: number
  /** Queries answered by this slot, every incarnation of it included. */
  readonly queries: number
  readonly restarts: number
  /** Whether a worker is answering in this slot now. */
  readonly up: boolean
}

interface ProbeCounts {
  readonly labels: { readonly vantage: string; readonly zone: string; readonly endpoint: string }
  ok: number
  fail: number
  timeout: number
  /** Round-trip time of the last successful probe, seconds. */
  latency: number | undefined
}

/** A labelled count kept off the query path (transitions, reloads), keyed by its joined labels. */
interface Tally<L> {
  readonly labels: L
  value: number
}

function tally<L>(map: Map<string, Tally<L>>, key: string, labels: L): void {
  const t = map.get(key)
  if (t === undefined) map.set(key, { labels, value: 1 })
  else t.value++
}

export interface MetricsOptions {
  readonly answerer: Answerer
  readonly health: HealthStore
  /** Add prom-client's process and Node.js runtime metrics (default true). */
  readonly defaultMetrics?: boolean
}

interface EndpointCount {
  readonly zone: string
  readonly pool: string
  readonly endpoint: string
  value: number
}

export class Metrics {
  readonly registry = new Registry()

  /** Exposes RRL's decisions as `gslb_rrl_responses_total{action}` (sent, dropped, slipped). */
  rateLimit(rrl: { stats(): { sent: number; dropped: number; slipped: number } }): void {
    const last = { sent: 0, dropped: 0, slipped: 0 }
    new Counter({
      name: 'gslb_rrl_responses_total',
      help: 'UDP responses seen by response rate limiting, by what it did with them',
      labelNames: ['action'],
      registers: [this.registry],
      collect() {
        const s = rrl.stats()
        for (const k of ['sent', 'dropped', 'slipped'] as const) {
          if (s[k] > last[k]) this.inc({ action: k }, s[k] - last[k])
          last[k] = s[k]
        }
      },
    })
  }
  readonly queries: QueryCounters
  readonly #answerer: Answerer
  readonly #health: HealthStore
  #sources: ScrapeSources | undefined
  readonly #transitions = new Map<
    string,
    Tally<{ zone: string; endpoint: string; direction: 'up' | 'down'; reason_kind: string }>
  >()
  readonly #reloads = new Map<string, Tally<{ zone: string; result: string }>>()
  readonly #probes = new Map<string, ProbeCounts>()
  /** Counts summed over this thread and the workers, pulled by the last scrape; undefined without workers. */
  #pulled: QueryCountsData | undefined
  readonly #onHealthChange = (message: unknown): void => {
    const m = message as HealthChangeMessage
    const direction = m.up ? 'up' : 'down'
    const kind = reasonKind(m.reason)
    tally(this.#transitions, `${m.zone}\0${m.endpoint}\0${direction}\0${kind}`, {
      zone: m.zone,
      endpoint: m.endpoint,
      direction,
      reason_kind: kind,
    })
  }

  /** The QueryObserver to hand the listeners (bound, so it can be passed around as is). */
  readonly observe = (query: Buffer, response: Buffer, transport: Transport): void => {
    this.queries.count(query, response, transport)
  }

  /** The `onReloadOutcome` hook of startServer (`timing` from its third argument). */
  readonly reloaded = (files: readonly ReloadedFile[], timing?: ReloadTiming): void => {
    for (const f of files) {
      if (f.status === 'unchanged') continue
      const zone = f.zone === undefined ? '' : f.zone.toLowerCase().replace(/\.$/, '')
      tally(this.#reloads, `${zone}\0${f.status}`, { zone, result: f.status })
    }
    if (timing === undefined) return
    this.#lastReloadSeconds = timing.ms / 1000
    if (timing.slices !== undefined) {
      this.#lastLongestSliceSeconds = timing.slices.longestSliceMs / 1000
      this.#reloadBackoffs += timing.slices.backoffs
    }
  }
  #lastReloadSeconds: number | undefined
  #lastLongestSliceSeconds: number | undefined
  #reloadBackoffs = 0

  constructor(opts: MetricsOptions) {
    this.#answerer = opts.answerer
    this.#health = opts.health
    this.queries = new QueryCounters(opts.answerer)
    subscribe('gslb:health:change', this.#onHealthChange)
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry })
    this.#register()
  }

  /** Sources read at scrape time, known once the server, sync and prober are running. */
  watch(sources: ScrapeSources): void {
    this.#sources = sources
  }

  /**
   * `run` with every result counted per target: ok, fail, or timeout (the scheduler gave up on
   * it). A probe cut short because the target went away or the prober stopped is not counted.
   */
  countedCheck(run: RunCheck, vantage: string): RunCheck {
    return (target, signal) =>
      run(target, signal).then((r) => {
        this.#probeResult(vantage, target.id, r, signal)
        return r
      })
  }

  #probeResult(vantage: string, id: TargetId, r: CheckResult, signal: AbortSignal): void {
    let result: 'ok' | 'fail' | 'timeout' = r.ok ? 'ok' : 'fail'
    if (signal.aborted) {
      const reason: unknown = signal.reason
      if (!(reason instanceof Error && reason.name === 'TimeoutError')) return
      result = 'timeout'
    }
    const key = `${vantage}\0${id}`
    let p = this.#probes.get(key)
    if (p === undefined) {
      const { zone, endpoint } = splitTargetId(id)
      p = { labels: { vantage, zone, endpoint }, ok: 0, fail: 0, timeout: 0, latency: undefined }
      this.#probes.set(key, p)
    }
    p[result]++
    if (result === 'ok' && r.latencyMs !== undefined) p.latency = r.latencyMs / 1000
  }

  /** The exposition text (Prometheus 0.0.4) and its content type. */
  async scrape(): Promise<{ contentType: string; text: string }> {
    // Left in place after the scrape: a concurrent scrape that pulled a moment earlier renders the
    // newer sums, never a mix of this thread's counts alone and the workers'.
    const remote = this.#sources?.remote
    if (remote !== undefined) this.#pulled = mergeCounts([this.queries.data(), ...(await remote())])
    return { contentType: this.registry.contentType, text: await this.registry.metrics() }
  }

  close(): void {
    unsubscribe('gslb:health:change', this.#onHealthChange)
  }

  // -------------------------------------------------------------------------------------------
  // Registration: every value is copied in by collect() when scraped.

  #register(): void {
    const registers = [this.registry]
    const q = this.queries
    const table = (): ZoneTable => this.#answerer.table
    // Without worker threads the collectors read this thread's counters directly, as they always did.
    const pulled = (): QueryCountsData | undefined => this.#pulled

    const queries: Counter<'zone' | 'qtype' | 'rcode' | 'transport'> = new Counter({
      name: 'gslb_queries_total',
      help: 'DNS queries answered, by zone ("" for REFUSED, unparsed and CHAOS), QTYPE bucket, rcode and transport',
      labelNames: ['zone', 'qtype', 'rcode', 'transport'],
      registers,
      collect: () => {
        queries.reset()
        for (const s of pulled()?.queries ?? q.queries())
          queries.inc({ zone: s.zone, qtype: s.qtype, rcode: s.rcode, transport: s.transport }, s.value)
      },
    })

    const truncated: Counter<'transport'> = new Counter({
      name: 'gslb_responses_truncated_total',
      help: 'Responses sent with TC set (the client should retry over TCP)',
      labelNames: ['transport'],
      registers,
      collect: () => {
        truncated.reset()
        const p = pulled()
        for (const [t, transport] of TRANSPORT_LABELS.entries())
          truncated.inc({ transport }, p === undefined ? q.truncated(transport) : p.truncated[t]!)
      },
    })

    this.registry.registerMetric(
      new PrecountedHistogram(
        'gslb_response_size_bytes',
        'Size of DNS responses sent, bytes',
        SIZE_BUCKETS,
        () => pulled()?.sizes ?? q.sizes(),
      ) as unknown as Metric,
    )

    const answers: Counter<'zone' | 'service' | 'pool' | 'outcome'> = new Counter({
      name: 'gslb_answers_total',
      help:
        'Decisions of load-balanced names: answer, nodata, servfail (all-down mode servfail) or all_down ' +
        '(nothing healthy; the all-down mode answered), by the pool of the first endpoint answered',
      labelNames: ['zone', 'service', 'pool', 'outcome'],
      registers,
      collect: () => {
        answers.reset()
        for (const s of pulled()?.answers ?? q.answers())
          answers.inc({ zone: s.zone, service: s.service, pool: s.pool, outcome: s.outcome }, s.value)
      },
    })

    const endpointAnswers: Counter<'zone' | 'pool' | 'endpoint'> = new Counter({
      name: 'gslb_endpoint_answers_total',
      help: 'Times each endpoint was in the answer of a load-balanced name',
      labelNames: ['zone', 'pool', 'endpoint'],
      registers,
      collect: () => {
        endpointAnswers.reset()
        for (const c of pulled()?.endpoints ?? q.endpointAnswers())
          endpointAnswers.inc({ zone: c.zone, pool: c.pool, endpoint: c.endpoint }, c.value)
      },
    })

    const endpointUp: Gauge<'zone' | 'pool' | 'endpoint'> = new Gauge({
      name: 'gslb_endpoint_up',
      help: 'Whether the endpoint is in rotation in the health view this instance answers from (1 up, 0 down or drained)',
      labelNames: ['zone', 'pool', 'endpoint'],
      registers,
      collect: () => {
        // Read from the current snapshot rather than rebuilt from change messages: it also
        // covers the state at startup and endpoints that never changed.
        endpointUp.reset()
        const snapshot = this.#health.current
        for (const z of table().zones) {
          const view = snapshot.view(z.stateKey)
          for (const p of z.pools)
            for (const e of p.endpoints)
              endpointUp.set({ zone: z.stateKey, pool: p.name, endpoint: e.name }, view.up(e) ? 1 : 0)
        }
      },
    })

    const transitions: Counter<'zone' | 'endpoint' | 'direction' | 'reason_kind'> = new Counter({
      name: 'gslb_endpoint_transitions_total',
      help: "Endpoint state changes in this instance's health view, by direction and cause (check, forced, drained, pushed, no_report)",
      labelNames: ['zone', 'endpoint', 'direction', 'reason_kind'],
      registers,
      collect: () => {
        transitions.reset()
        for (const t of this.#transitions.values()) transitions.inc(t.labels, t.value)
      },
    })

    const probeResults: Counter<'vantage' | 'zone' | 'endpoint' | 'result'> = new Counter({
      name: 'gslb_probe_results_total',
      help: 'Health probes run by the in-process prober (embedded mode), by result: ok, fail or timeout',
      labelNames: ['vantage', 'zone', 'endpoint', 'result'],
      registers,
      collect: () => {
        probeResults.reset()
        for (const p of this.#probes.values()) {
          for (const result of ['ok', 'fail', 'timeout'] as const)
            if (p[result] > 0) probeResults.inc({ ...p.labels, result }, p[result])
        }
      },
    })

    const probeLatency: Gauge<'vantage' | 'zone' | 'endpoint'> = new Gauge({
      name: 'gslb_probe_latency_seconds',
      help: 'Round-trip time of the last successful probe of the endpoint (in-process prober)',
      labelNames: ['vantage', 'zone', 'endpoint'],
      registers,
      collect: () => {
        probeLatency.reset()
        for (const p of this.#probes.values()) if (p.latency !== undefined) probeLatency.set(p.labels, p.latency)
      },
    })

    const proberTargets: Gauge = new Gauge({
      name: 'gslb_prober_targets',
      help: 'Targets the in-process prober probes',
      registers,
      collect: () => {
        const s = this.#sources?.prober?.()
        proberTargets.set(s?.targets ?? 0)
      },
    })

    const proberLate: Gauge<'quantile'> = new Gauge({
      name: 'gslb_prober_lateness_seconds',
      help: 'How late recent probe starts were against their due time (the prober keeps up when this stays small)',
      labelNames: ['quantile'],
      registers,
      collect: () => {
        proberLate.reset()
        const s = this.#sources?.prober?.()
        if (s === undefined) return
        proberLate.set({ quantile: '0.5' }, s.lateMsP50 / 1000)
        proberLate.set({ quantile: '0.99' }, s.lateMsP99 / 1000)
        proberLate.set({ quantile: '1' }, s.lateMsMax / 1000)
      },
    })

    const proberWriteErrors: Counter = new Counter({
      name: 'gslb_prober_write_errors_total',
      help: 'Probe report writes to the state store that failed',
      registers,
      collect: () => {
        proberWriteErrors.reset()
        proberWriteErrors.inc(this.#sources?.prober?.().writeErrors ?? 0)
      },
    })

    const connected: Gauge = new Gauge({
      name: 'gslb_state_store_connected',
      help: 'Whether the state store (Redis, or memory) is reachable',
      registers,
      collect: () => {
        const s = this.#sources
        if (s !== undefined) connected.set(s.store.connected ? 1 : 0)
      },
    })

    const staleness: Gauge = new Gauge({
      name: 'gslb_health_view_staleness_seconds',
      help: 'Time since the health view was last read from the state store (+Inf before the first read)',
      registers,
      collect: () => {
        const s = this.#sources
        if (s !== undefined) staleness.set(s.sync.staleMs / 1000)
      },
    })

    const generation: Gauge = new Gauge({
      name: 'gslb_health_view_generation',
      help: 'Generation of the state this instance answers from; instances that agree show the same number',
      registers,
      collect: () => {
        const s = this.#sources
        if (s !== undefined) generation.set(s.sync.generation)
      },
    })

    const reloads: Counter<'zone' | 'result'> = new Counter({
      name: 'gslb_zone_reloads_total',
      help: 'Zone file loads by result: loaded, rejected (the previous version keeps serving) or removed; zone "" for a file rejected before its zone was known',
      labelNames: ['zone', 'result'],
      registers,
      collect: () => {
        reloads.reset()
        for (const t of this.#reloads.values()) reloads.inc(t.labels, t.value)
      },
    })

    const reloadSeconds = new Gauge({
      name: 'gslb_zone_reload_duration_seconds',
      help: 'How long the last zone reload took (the startup load included), from reading the files to serving them',
      registers,
      collect: () => {
        if (this.#lastReloadSeconds !== undefined) reloadSeconds.set(this.#lastReloadSeconds)
      },
    })
    const longestSlice = new Gauge({
      name: 'gslb_zone_reload_longest_slice_seconds',
      help: 'Longest time the last live in-place reload kept answering waiting (one slice of its work, garbage collection included); 0 before the first',
      registers,
      collect: () => {
        if (this.#lastLongestSliceSeconds !== undefined) longestSlice.set(this.#lastLongestSliceSeconds)
      },
    })
    const backoffs = new Counter({
      name: 'gslb_zone_reload_backoffs_total',
      help: 'Times a live in-place reload waited for the garbage collector to catch up (after a slice it stretched)',
      registers,
      collect: () => {
        backoffs.reset()
        backoffs.inc(this.#reloadBackoffs)
      },
    })

    const serial: Gauge<'zone'> = new Gauge({
      name: 'gslb_zone_serial',
      help: 'SOA serial of each zone served',
      labelNames: ['zone'],
      registers,
      collect: () => {
        serial.reset()
        for (const z of table().zones) serial.set({ zone: z.stateKey }, z.serial)
      },
    })

    const tcpConnections: Gauge = new Gauge({
      name: 'gslb_tcp_connections',
      help: 'DNS-over-TCP connections open now',
      registers,
      collect: () => {
        const s = this.#sources
        if (s !== undefined) tcpConnections.set(s.tcp().connections)
      },
    })

    const tcpRejected: Counter<'reason'> = new Counter({
      name: 'gslb_tcp_connections_rejected_total',
      help: 'TCP connections closed on arrival: max_connections (all sources) or per_source (one source address over its cap)',
      labelNames: ['reason'],
      registers,
      collect: () => {
        tcpRejected.reset()
        const s = this.#sources?.tcp()
        tcpRejected.inc({ reason: 'max_connections' }, s?.rejectedTotal ?? 0)
        tcpRejected.inc({ reason: 'per_source' }, s?.rejectedPerSource ?? 0)
      },
    })

    // Batched UDP I/O: received / reads is the mean batch size (1 with dgram, up to 64 under load),
    // and dropped counts answers the kernel refused to send (a full socket buffer, ENOBUFS).
    const udpFigure = (name: string, help: string, pick: (s: UdpStats) => number): Counter => {
      const c: Counter = new Counter({
        name,
        help,
        registers,
        collect: () => {
          c.reset()
          const s = this.#sources?.udp?.()
          c.inc(s === undefined ? 0 : pick(s))
        },
      })
      return c
    }
    udpFigure('gslb_udp_datagrams_received_total', 'UDP datagrams read from the DNS sockets', (s) => s.received)
    udpFigure(
      'gslb_udp_reads_total',
      'Socket reads the UDP datagrams took (recvmmsg batches; one per datagram with --udp-io dgram)',
      (s) => s.batches,
    )
    udpFigure(
      'gslb_udp_responses_dropped_total',
      'UDP responses the kernel refused to send (batched path), lost as if on the network',
      (s) => s.dropped,
    )

    const shortFrames: Counter = new Counter({
      name: 'gslb_tcp_short_frames_total',
      help: 'TCP messages shorter than a DNS header, dropped unanswered',
      registers,
      collect: () => {
        shortFrames.reset()
        shortFrames.inc(this.#sources?.tcp().shortFrames ?? 0)
      },
    })

    const workerQueries: Counter<'worker'> = new Counter({
      name: 'gslb_worker_queries_total',
      help: 'DNS queries answered by each worker thread (serve --workers N), restarts included: how SO_REUSEPORT spread the flows',
      labelNames: ['worker'],
      registers,
      collect: () => {
        workerQueries.reset()
        for (const w of this.#sources?.workers?.() ?? []) workerQueries.inc({ worker: String(w.worker) }, w.queries)
      },
    })

    const workerRestarts: Counter<'worker'> = new Counter({
      name: 'gslb_worker_restarts_total',
      help: 'Times a worker thread stopped unexpectedly and was started again',
      labelNames: ['worker'],
      registers,
      collect: () => {
        workerRestarts.reset()
        for (const w of this.#sources?.workers?.() ?? []) workerRestarts.inc({ worker: String(w.worker) }, w.restarts)
      },
    })

    const workerUp: Gauge<'worker'> = new Gauge({
      name: 'gslb_worker_up',
      help: 'Whether a worker thread is answering in this slot (1) or waiting to be restarted (0)',
      labelNames: ['worker'],
      registers,
      collect: () => {
        workerUp.reset()
        for (const w of this.#sources?.workers?.() ?? []) workerUp.set({ worker: String(w.worker) }, w.up ? 1 : 0)
      },
    })

    const webhooks: Counter<'result'> = new Counter({
      name: 'gslb_webhook_events_total',
      help: 'Health change events sent to webhooks: delivered, failed (after every retry) or dropped (queue full)',
      labelNames: ['result'],
      registers,
      collect: () => {
        webhooks.reset()
        const s = this.#sources?.webhooks?.()
        if (s === undefined) return
        webhooks.inc({ result: 'delivered' }, s.delivered)
        webhooks.inc({ result: 'failed' }, s.failed)
        webhooks.inc({ result: 'dropped' }, s.dropped)
      },
    })
  }
}

/**
 * A histogram whose buckets are counted elsewhere. prom-client's Histogram takes one observation
 * per call, with a label lookup each time, and has no way to be handed finished counts; so this
 * collector implements what the Registry reads from a metric (name, help, type, aggregator, get,
 * reset) and renders the cumulative buckets itself. prom-client's typings admit only its own
 * classes, hence the one cast where it is registered.
 */
class PrecountedHistogram {
  readonly name: string
  readonly help: string
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  readonly #bounds: readonly number[]
  readonly #read: () => readonly SizeSeries[]

  constructor(name: string, help: string, bounds: readonly number[], read: () => readonly SizeSeries[]) {
    this.name = name
    this.help = help
    this.#bounds = bounds
    this.#read = read
  }

  async get(): Promise<{
    name: string
    help: string
    type: string
    aggregator: string
    values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }>
  }> {
    const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = []
    for (const s of this.#read()) {
      let acc = 0
      for (const [i, le] of this.#bounds.entries()) {
        acc += s.buckets[i]!
        values.push({ labels: { le, transport: s.transport }, value: acc, metricName: `${this.name}_bucket` })
      }
      values.push({ labels: { le: '+Inf', transport: s.transport }, value: s.count, metricName: `${this.name}_bucket` })
      values.push({ labels: { transport: s.transport }, value: s.sum, metricName: `${this.name}_sum` })
      values.push({ labels: { transport: s.transport }, value: s.count, metricName: `${this.name}_count` })
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }

  reset(): void {
    // The counts belong to QueryCounters; a registry reset does not clear them.
  }
}
