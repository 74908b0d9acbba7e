/**
 * @module policy/service
 * A load-balanced name at query time: run the policy chain over the endpoints that can answer the
 * query type, apply the all-down mode when nothing healthy is left, pick the TTL, and hand back a
 * response template. Templates are cached per (type, TTL, endpoint set), so once the common
 * decisions have been seen a query costs the chain plus one Map lookup and a byte copy.
 */

import type { AllDownMode, ServiceConfig } from '../config/gslb-file.ts'
import { parseAddress } from '../dns/address.ts'
import { QNAME, TemplateBuilder } from '../dns/builder.ts'
import { type Name, nameToString } from '../dns/name.ts'
import { FLAG_AA, FLAG_QR, SECTION_ANSWER, type Template } from '../dns/template.ts'
import { T } from '../dns/types.ts'
import { makeStep } from './registry.ts'
import type { Endpoint, NamedStep, PolicyContext } from './types.ts'

/** What a service decided for one query; `gslb explain` and golden tests read it directly. */
export type Decision =
  | {
      readonly kind: 'answer'
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
    }
  | { readonly kind: 'nodata'; readonly allDown: boolean }
  | { readonly kind: 'servfail' }

/** The query-path handle of a service at one name (exact owner or wildcard). */
export interface ServiceNode {
  readonly kind: 'service'
  readonly service: CompiledService
  /** Name the response templates are built for: the owner, or the wildcard name as a stand-in. */
  readonly question: Name
  readonly standIn: boolean
  readonly templates: Map<string, Template>
}

const MAX_CACHED_TEMPLATES = 4096

export class CompiledService {
  readonly config: ServiceConfig
  readonly zoneKey: string
  readonly steps: readonly NamedStep[]
  /** Endpoints that can answer A (IPv4 address or CNAME) and AAAA (IPv6 address or CNAME). */
  readonly #forA: readonly Endpoint[]
  readonly #forAAAA: readonly Endpoint[]
  readonly #rdata4: ReadonlyMap<Endpoint, Buffer>
  readonly #rdata6: ReadonlyMap<Endpoint, Buffer>
  readonly #nodata: Template

  constructor(config: ServiceConfig, zoneKey: string, nodata: Template) {
    this.config = config
    this.zoneKey = zoneKey
    this.steps = config.steps.map(makeStep)
    this.#nodata = nodata
    this.#forA = config.endpoints.filter((e) => e.address4 !== undefined || e.cname !== undefined)
    this.#forAAAA = config.endpoints.filter((e) => e.address6 !== undefined || e.cname !== undefined)
    const r4 = new Map<Endpoint, Buffer>()
    const r6 = new Map<Endpoint, Buffer>()
    const fallback = config.allDown.kind === 'pool' ? config.allDown.pool.endpoints : []
    for (const e of [...config.endpoints, ...fallback]) {
      if (e.address4) r4.set(e, parseAddress(e.address4)!.bytes)
      if (e.address6) r6.set(e, parseAddress(e.address6)!.bytes)
    }
    this.#rdata4 = r4
    this.#rdata6 = r6
  }

  node(question: Name, standIn: boolean): ServiceNode {
    return Object.freeze({ kind: 'service', service: this, question, standIn, templates: new Map() })
  }

  /** Runs the chain. `qtype` is A or AAAA (ANY is answered as A). */
  decide(qtype: number, ctx: PolicyContext): Decision {
    const six = qtype === T.AAAA
    const candidates = six ? this.#forAAAA : this.#forA
    const trace = ctx.trace
    if (candidates.length === 0) {
      trace?.note(`no endpoint has an ${six ? 'IPv6' : 'IPv4'} address: NODATA`)
      return { kind: 'nodata', allDown: false }
    }
    let out: readonly Endpoint[] = candidates
    for (const step of this.steps) {
      const before = out
      out = step.run(out, ctx)
      if (trace) trace.note(`${step.name}: ${names(before, ctx)} -> ${names(out, ctx)}`)
    }
    const health = ctx.health
    let anyUp = false
    let anyDown = false
    for (const e of out) {
      if (health.up(e)) anyUp = true
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
        if (members.length === 0) return { kind: 'nodata', allDown: true }
        return this.#answer(up.length > 0 ? up : members, six, ctx, true)
      }
      case 'address': {
        const list = six ? mode.v6 : mode.v4
        if (list.length === 0) return { kind: 'nodata', allDown: true }
        return {
          kind: 'answer',
          type: six ? T.AAAA : T.A,
          endpoints: [],
          rdatas: list.map((a) => parseAddress(a)!.bytes),
          values: list,
          ttl: this.config.degradedTtl,
          allDown: true,
          degraded: true,
        }
      }
      case 'cname':
        return {
          kind: 'answer',
          type: T.CNAME,
          endpoints: [],
          rdatas: [mode.target.wire],
          values: [nameToString(mode.target)],
          ttl: this.config.degradedTtl,
          allDown: true,
          degraded: true,
        }
      case 'nodata':
        return { kind: 'nodata', allDown: true }
      case 'servfail':
        return { kind: 'servfail' }
    }
  }

  #answer(out: readonly Endpoint[], six: boolean, ctx: PolicyContext, allDown: boolean): Decision {
    const health = ctx.health
    // TTL follows health: lower while any member of an answering pool is down or ramping up,
    // so clients come back soon after the pool recovers.
    let ttl = Number.MAX_SAFE_INTEGER
    let degraded = allDown
    let lastPool = undefined as Endpoint['pool'] | undefined
    for (const e of out) {
      if (e.pool === lastPool) continue
      lastPool = e.pool
      const t = e.pool.ttl ?? this.config.ttl
      if (t < ttl) ttl = t
      if (!degraded) {
        for (const m of e.pool.endpoints) {
          if (!health.up(m) || health.recovering(m)) {
            degraded = true
            break
          }
        }
      }
    }
    if (degraded && this.config.degradedTtl < ttl) ttl = this.config.degradedTtl
    const cnameEp = out.find((e) => e.cname !== undefined)
    if (cnameEp) {
      const target = cnameEp.cname!
      return {
        kind: 'answer',
        type: T.CNAME,
        endpoints: [cnameEp],
        rdatas: [target.wire],
        values: [nameToString(target)],
        ttl,
        allDown,
        degraded,
      }
    }
    const rd = six ? this.#rdata6 : this.#rdata4
    return {
      kind: 'answer',
      type: six ? T.AAAA : T.A,
      endpoints: out,
      rdatas: out.map((e) => rd.get(e)!),
      values: out.map((e) => (six ? e.address6! : e.address4!)),
      ttl,
      allDown,
      degraded,
    }
  }

  /** The response template for a decision at `node`: cached, built on first use. */
  template(node: ServiceNode, qtype: number, d: Decision): Template | undefined {
    if (d.kind === 'servfail') return undefined
    if (d.kind === 'nodata') return this.#nodata
    let key = `${qtype}/${d.type}/${d.ttl}/`
    if (d.endpoints.length > 0) for (const e of d.endpoints) key += `${e.index},`
    else key += 'static'
    let t = node.templates.get(key)
    if (t === undefined) {
      const b = new TemplateBuilder({ name: node.question, qtype, standIn: node.standIn })
      b.add(SECTION_ANSWER, { owner: QNAME, type: d.type, ttl: d.ttl, rdatas: d.rdatas })
      t = b.finish(FLAG_QR | FLAG_AA)
      // Bounded: the number of distinct endpoint subsets a chain can produce is normally small.
      if (node.templates.size >= MAX_CACHED_TEMPLATES) node.templates.clear()
      node.templates.set(key, t)
    }
    return t
  }
}

function names(list: readonly Endpoint[], ctx: PolicyContext): string {
  return `[${list.map((e) => (ctx.health.up(e) ? e.name : `${e.name}(down)`)).join(' ')}]`
}
