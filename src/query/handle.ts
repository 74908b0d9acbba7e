/**
 * @module query/handle
 * The query pipeline: bytes in, bytes (or silence) out. Flat early exits in RFC order, then one
 * table lookup and a template copy. Everything here is synchronous and touches only memory.
 */

import { TemplateBuilder } from '../dns/builder.ts'
import { parseName } from '../dns/name.ts'
import { ParseResult, parseQuery, Query } from '../dns/query.ts'
import { EDNS_UDP_SIZE, type EdnsConfig, errorResponse, optLength, writeOpt } from '../dns/response.ts'
import { FLAG_AA, FLAG_QR, type RenderInput, render, SECTION_ANSWER, type Template } from '../dns/template.ts'
import { RCODE, T } from '../dns/types.ts'
import { HealthStore } from '../health/state.ts'
import { type CompiledService, type Decision, drawIndex, readyFor, type ServiceNode } from '../policy/service.ts'
import type { AnswerNode } from '../zone/node.ts'
import {
  answerAt,
  answersQuestion,
  EMPTY_TABLE,
  exactCandidate,
  lookup,
  lookupBelow,
  type ZoneTable,
} from '../zone/table.ts'
import { CLASS_CH, CLASS_IN } from '../zone/types.ts'
import { type GeoLookup, QueryContext } from './context.ts'
import { type BatchLayout, ReadAhead } from './read-ahead.ts'

export interface ChaosConfig {
  /** Answer for `id.server` / `hostname.bind` CH TXT; undefined leaves them REFUSED. */
  readonly id?: string | undefined
  /** Answer for `version.bind` / `version.server` CH TXT. */
  readonly version?: string | undefined
}

export interface AnswerConfig {
  readonly nsid?: Buffer | undefined
  readonly chaos?: ChaosConfig | undefined
  /** Largest UDP response we send, whatever the client offers (RFC 6891 lets us cap it). */
  readonly maxUdpSize?: number | undefined
  /** Geo database for geo, proximity and latency policies (none: those policies see no geo data). */
  readonly geo?: GeoLookup | undefined
  /** Health state for services; default: everything up. */
  readonly health?: HealthStore | undefined
  /** Random numbers for the policies' draws and shuffles (default Math.random; tests seed it). */
  readonly random?: (() => number) | undefined
  /**
   * Names a zone table needs before batches are read ahead (`readAhead`; default
   * READ_AHEAD_MIN_NAMES). Below it the answers' objects stay in cache and reading ahead would
   * only cost.
   */
  readonly readAheadMinNames?: number | undefined
}

/**
 * About where a zone set's answer objects (a few hundred bytes per name, scattered) outgrow a
 * core's L2 cache: from here on a query's reads miss, and the read-ahead hides more than it costs
 * (on the benchmark's 14-name zones it cost 0-5% CPU per query; on 110k names it saved 1-12%).
 */
export const READ_AHEAD_MIN_NAMES = 4096

export type Transport = 'udp' | 'tcp'

/**
 * What a service decided for the last query a service answered. One record per Answerer,
 * overwritten in place (no allocation per query) and written on the service path only; an observer
 * reads it right after `answer()` returns and checks `query` to know whether it describes the
 * message just answered or an earlier one.
 */
export interface ServiceOutcome {
  /** The message the decision was made for; compare by identity with the message just answered. */
  readonly query: Buffer | undefined
  readonly service: CompiledService | undefined
  /** The service's zone (its health state key). */
  readonly zoneKey: string
  readonly decision: Decision | undefined
}

/** One per process: owns the reusable Query scratch object and the current zone table. */
export class Answerer {
  #table: ZoneTable = EMPTY_TABLE
  /** Set while `#answerByKey` runs. */
  #byKey = false
  /** The node found at the query name by hash, and for which message (see exactNode). */
  #exactQuery: Buffer | undefined
  #exactNode: AnswerNode | undefined
  readonly #q = new Query()
  readonly #ahead = new ReadAhead()
  readonly #readAheadMinNames: number
  #readAheadBatches = 0
  #readAheadReached = 0
  readonly #edns: EdnsConfig
  readonly #maxUdp: number
  readonly #chaos: ReadonlyMap<string, Template>
  readonly #health: HealthStore
  readonly #ctx: QueryContext
  readonly #outcome: { -readonly [K in keyof ServiceOutcome]: ServiceOutcome[K] } = {
    query: undefined,
    service: undefined,
    zoneKey: '',
    decision: undefined,
  }
  readonly #render: { -readonly [K in keyof RenderInput]: RenderInput[K] } = {
    packet: Buffer.alloc(0),
    id: 0,
    queryFlags: 0,
    qnameLen: 0,
    limit: 512,
    optLen: 0,
  }

  constructor(config: AnswerConfig = {}) {
    this.#edns = { nsid: config.nsid }
    this.#maxUdp = Math.max(512, Math.min(config.maxUdpSize ?? EDNS_UDP_SIZE, 65535))
    this.#chaos = chaosTemplates(config.chaos ?? {})
    this.#health = config.health ?? new HealthStore()
    this.#ctx = new QueryContext(config.geo)
    this.#readAheadMinNames = config.readAheadMinNames ?? READ_AHEAD_MIN_NAMES
    if (config.random !== undefined) this.#ctx.random = config.random
  }

  get health(): HealthStore {
    return this.#health
  }

  /** Swaps the geo database (after a live reload of the file). */
  set geo(db: GeoLookup | undefined) {
    this.#ctx.geoDatabase = db
  }

  /** Swaps in a new zone table; queries already running finish on the table they started with. */
  set table(t: ZoneTable) {
    this.#table = t
  }

  get table(): ZoneTable {
    return this.#table
  }

  /** The parsed form of the last query answered (for sampled query logs; valid until the next call). */
  get lastQuery(): Query {
    return this.#q
  }

  /**
   * The node at the query name of `packet` when it was the last message answered and its node was
   * found by hash (for the metrics, which would otherwise look the name up again); else undefined.
   */
  exactNode(packet: Buffer): AnswerNode | undefined {
    return this.#exactQuery === packet ? this.#exactNode : undefined
  }

  /** The last service decision (for metrics; valid until the next call, see ServiceOutcome). */
  get lastOutcome(): ServiceOutcome {
    return this.#outcome
  }

  /**
   * `answer` with the table looked up by key alone: for a name whose hash found a node of another
   * name (1 in ~2^30 per name and node, or a name below a cut, whose templates have a stand-in
   * question).
   */
  #answerByKey(packet: Buffer, transport: Transport, source: string): Buffer | null {
    this.#byKey = true
    try {
      return this.answer(packet, transport, source)
    } finally {
      this.#byKey = false
    }
  }

  /**
   * Reads ahead, for a batch of datagrams about to be answered one by one, the objects their
   * answers come from (query/read-ahead.ts); changes nothing. Returns how many it followed to a
   * template; 0 without reading when the table has fewer names than `readAheadMinNames`.
   */
  readAhead(input: Uint8Array, meta: Int32Array, records: Uint8Array, layout: BatchLayout, count: number): number {
    const table = this.#table
    if (table.byHash.size < this.#readAheadMinNames) return 0
    const reached = this.#ahead.run(table, input, meta, records, layout, count)
    this.#readAheadBatches++
    this.#readAheadReached += reached
    return reached
  }

  /** Batches read ahead so far, and datagrams followed to a template in them (tests, diagnosis). */
  get readAheadStats(): { readonly batches: number; readonly reached: number } {
    return { batches: this.#readAheadBatches, reached: this.#readAheadReached }
  }

  /** Answers one DNS message from `source` (the peer address); `null` means stay silent. */
  answer(packet: Buffer, transport: Transport, source = ''): Buffer | null {
    const q = this.#q
    const edns = this.#edns
    this.#exactQuery = undefined
    switch (parseQuery(packet, q)) {
      case ParseResult.DROP:
        return null
      case ParseResult.FORMERR:
        return errorResponse(packet, q, RCODE.FORMERR, edns, false)
      case ParseResult.NOTIMP:
        return errorResponse(packet, q, RCODE.NOTIMP, edns)
      case ParseResult.BADVERS:
        return errorResponse(packet, q, RCODE.BADVERS, edns)
      case ParseResult.OK:
        break
    }
    let t: Template | ServiceNode | undefined
    let verify = false
    if (q.qclass === CLASS_IN) {
      const qt = q.qtype
      if (qt === T.AXFR || qt === T.IXFR) return errorResponse(packet, q, RCODE.REFUSED, edns)
      if (qt === T.MAILA || qt === T.MAILB) return errorResponse(packet, q, RCODE.NOTIMP, edns)
      // Meta types that only make sense in the additional section (OPT, TKEY, TSIG) are no questions.
      if (qt === T.OPT || qt === 249 || qt === 250) return errorResponse(packet, q, RCODE.FORMERR, edns)
      const table = this.#table
      // By the name's hash first (zone/table byHash): a candidate, checked against the question
      // in the template it answers with, below. No candidate: no node has this name.
      const candidate = this.#byKey ? null : exactCandidate(table, q)
      if (candidate === undefined) t = lookupBelow(table, q)
      else if (candidate === null) t = lookup(table, q)
      else {
        t = answerAt(candidate, qt)
        verify = true
        this.#exactQuery = packet
        this.#exactNode = candidate
      }
    } else if (q.qclass === CLASS_CH && (q.qtype === T.TXT || q.qtype === T.ANY)) {
      t = this.#chaos.get(q.key)
    }
    if (t === undefined) return errorResponse(packet, q, RCODE.REFUSED, edns)
    let ecsScope = 0
    let shuffle = false
    if (t.kind === 'service') {
      const ctx = this.#ctx
      const node = t
      const view = this.#health.current.view(node.zoneKey)
      ctx.reset(q, source, view)
      const qt = q.qtype
      // A and AAAA first try what the node made ahead (policy/service Ready): no service object,
      // chain or cache walked. ANY is answered as A but carries its own question: the full path.
      const ready = readyFor(node, qt, view, ctx)
      let decision: Decision
      let tpl: Template | undefined
      if (ready !== undefined) {
        const i = drawIndex(ready, ctx)
        // The decision object itself is not read here (the metrics read it later, in a batch).
        decision = i === 0 ? ready.decision0! : i === 1 ? ready.decision1! : ready.decisions[i]!
        tpl = i === 0 ? ready.template0! : i === 1 ? ready.template1! : ready.templates[i]!
        shuffle = ready.shuffle
      } else {
        const svc = node.service
        decision = svc.decideCached(qt === T.AAAA ? T.AAAA : T.A, ctx)
        tpl = svc.template(node, qt, decision)
        shuffle = decision.kind === 'answer' && decision.shuffle
        svc.refresh(node, qt, ctx)
      }
      // A candidate's SERVFAIL has no template to check it by: ask by key (rare). Before the
      // outcome is set: the name may turn out static, and its answer must not count as this service's.
      if (verify && (tpl === undefined || !answersQuestion(tpl, packet, q)))
        return this.#answerByKey(packet, transport, source)
      const o = this.#outcome
      o.query = packet
      o.service = node.service
      o.zoneKey = node.zoneKey
      o.decision = decision
      if (tpl === undefined) return errorResponse(packet, q, RCODE.SERVFAIL, edns)
      ecsScope = ctx.ecsScope
      t = tpl
    } else if (verify && !answersQuestion(t, packet, q)) return this.#answerByKey(packet, transport, source)

    const r = this.#render
    r.packet = packet
    r.id = q.id
    r.queryFlags = q.flags
    r.qnameLen = q.qnameLen
    r.optLen = optLength(q, edns)
    r.limit = transport === 'tcp' ? 65535 : q.hasEdns ? Math.min(q.udpSize, this.#maxUdp) : 512
    const out = render(t, r)
    if (r.optLen > 0) writeOpt(out, out.length - r.optLen, q, edns, 0, ecsScope)
    if (shuffle) {
      shuffleAnswers(out, 12 + q.qnameLen + 4, this.#ctx.random)
    }
    return out
  }
}

/**
 * Puts the answer records of `msg` (starting at `start`) in random order, in place (Fisher-Yates).
 * Only for answers whose records all have the same size (an A or AAAA RRset with a compressed
 * owner), which is what shuffled service answers are; anything else is left as built.
 */
export function shuffleAnswers(msg: Buffer, start: number, random: () => number): void {
  const count = msg.readUInt16BE(6)
  if (count < 2 || start + 12 > msg.length) return
  // Owner is a 2-byte pointer (0xC0..), then type, class, TTL, RDLENGTH, RDATA.
  if ((msg[start]! & 0xc0) !== 0xc0) return
  const size = 12 + msg.readUInt16BE(start + 10)
  if (start + count * size > msg.length) return
  for (let i = 1; i < count; i++) {
    const at = start + i * size
    if ((msg[at]! & 0xc0) !== 0xc0 || 12 + msg.readUInt16BE(at + 10) !== size) return
  }
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    if (j === i) continue
    // Byte loops: records are 16 or 28 bytes, less than the fixed cost of a Buffer#copy call.
    const a = start + i * size
    const b = start + j * size
    for (let k = 0; k < size; k++) {
      const x = msg[a + k]!
      msg[a + k] = msg[b + k]!
      msg[b + k] = x
    }
  }
}

function chaosTemplates(chaos: ChaosConfig): ReadonlyMap<string, Template> {
  const out = new Map<string, Template>()
  const add = (names: readonly string[], text: string | undefined): void => {
    if (text === undefined) return
    const bytes = Buffer.from(text, 'utf8').subarray(0, 255)
    const rdata = Buffer.concat([Buffer.from([bytes.length]), bytes])
    for (const n of names) {
      const name = parseName(n)
      const b = new TemplateBuilder({ name, qtype: T.TXT, standIn: false, qclass: CLASS_CH })
      b.add(SECTION_ANSWER, { owner: name, type: T.TXT, ttl: 0, rdatas: [rdata], class: CLASS_CH })
      out.set(name.key, b.finish(FLAG_QR | FLAG_AA))
    }
  }
  add(['id.server.', 'hostname.bind.'], chaos.id)
  add(['version.bind.', 'version.server.'], chaos.version)
  return out
}
