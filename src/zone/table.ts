/**
 * @module zone/table
 * The one structure the query path reads: every served name in one Map, built from the compiled
 * zones and replaced whole on reload (a single reference swap, like gdnsd's RCU pointer), so a
 * query never sees a half-loaded zone set.
 */

import { nameHash, type Query } from '../dns/query.ts'
import type { Template } from '../dns/template.ts'
import { T } from '../dns/types.ts'
import type { ServiceNode } from '../policy/service.ts'
import type { CompiledZone } from './compile.ts'
import { runSync, type Steps } from './cooperative.ts'
import type { AnswerNode } from './node.ts'

export interface ZoneTable {
  readonly nodes: ReadonlyMap<string, AnswerNode>
  /**
   * The same nodes by `nameHash` of their key, `null` where several keys share a hash. The query
   * path finds a node here by a number (`Query.hash`): a Map lookup by a string key compares the
   * candidates' key strings, a cache miss each on a large zone set, where a number compares in
   * place. A node found here is a candidate the caller checks (`answersQuestion`).
   */
  readonly byHash: ReadonlyMap<number, AnswerNode | null>
  readonly zones: readonly CompiledZone[]
}

export const EMPTY_TABLE: ZoneTable = Object.freeze({ nodes: new Map(), byHash: new Map(), zones: [] })

/** True when the name behind `key` equals or lies below the name behind `parentKey` (label-aligned). */
export function keyIsSubdomain(key: string, parentKey: string): boolean {
  if (parentKey === '\0') return true
  for (let i = 0; key.charCodeAt(i) !== 0; i += key.charCodeAt(i) + 1) {
    if (key.length - i === parentKey.length && key.slice(i) === parentKey) return true
  }
  return false
}

export function buildTable(zones: readonly CompiledZone[]): ZoneTable {
  return runSync(buildTableSteps(zones))
}

/** `buildTable` as steps that yield every thousand names (see zone/cooperative). */
export function* buildTableSteps(zones: readonly CompiledZone[]): Steps<ZoneTable> {
  const nodes = new Map<string, AnswerNode>()
  let count = 0
  for (const zone of zones) {
    // A name inside a more specific zone we also serve is answered by that zone alone.
    const children = zones.filter(
      (z) => z !== zone && z.apex.labels > zone.apex.labels && keyIsSubdomain(z.apex.key, zone.apex.key),
    )
    for (const [key, node] of zone.nodes) {
      if (++count % 1024 === 0) yield
      if (children.length > 0 && children.some((c) => keyIsSubdomain(key, c.apex.key))) continue
      nodes.set(key, node)
    }
  }
  // DS belongs to the parent side of a cut (RFC 4035 3.1.4.1): when we serve both sides, the
  // child's apex node answers DS with the parent's template.
  for (const child of zones) {
    const parent = zones
      .filter((z) => z !== child && z.apex.labels < child.apex.labels && keyIsSubdomain(child.apex.key, z.apex.key))
      .sort((a, b) => b.apex.labels - a.apex.labels)[0]
    const ds = parent?.nodes.get(child.apex.key)?.exact(T.DS)
    const apex = nodes.get(child.apex.key)
    if (ds && apex && apex.zone === child) {
      nodes.set(child.apex.key, apex.withExact(T.DS, ds))
    }
  }
  const byHash = new Map<number, AnswerNode | null>()
  for (const [key, node] of nodes) {
    if (++count % 1024 === 0) yield
    const h = nameHash(key)
    byHash.set(h, byHash.has(h) ? null : node)
  }
  return Object.freeze({ nodes, byHash, zones: Object.freeze([...zones]) })
}

/**
 * The response template for a parsed query, the service that decides it (A/AAAA/ANY at a
 * load-balanced name), or undefined when no served zone contains the name (the caller answers
 * REFUSED: we are not a resolver).
 */
export function lookup(table: ZoneTable, q: Query): Template | ServiceNode | undefined {
  const nodes = table.nodes
  const node = nodes.get(q.key)
  if (node !== undefined) return answerAt(node, q.qtype)
  return lookupBelow(table, q)
}

/**
 * The node `table.byHash` has for the query name's hash: a candidate for the node at exactly that
 * name (check what it answers with `answersQuestion`), `undefined` when no node has that hash (so
 * none is at that name: `lookupBelow` answers), `null` when several have it (`lookup` answers).
 */
export function exactCandidate(table: ZoneTable, q: Query): AnswerNode | null | undefined {
  return table.byHash.get(q.hash)
}

/** What `node` answers for `qtype` at its own name. */
export function answerAt(node: AnswerNode, qtype: number): Template | ServiceNode {
  if ((qtype === T.A || qtype === T.AAAA || qtype === T.ANY) && node.service !== undefined) return node.service
  return node.exact(qtype) ?? node.exactOther
}

/**
 * Whether `t`, which an exact node answered, was built for the query's name (case aside): the
 * check of a `byHash` candidate. Its question name is in the template's bytes, which rendering it
 * reads next anyway. A template built for a stand-in question (a name below a cut) never passes;
 * the caller then asks `lookup`, which is always right.
 */
export function answersQuestion(t: Template, packet: Buffer, q: Query): boolean {
  const n = q.qnameLen
  if (t.qnameLen !== n) return false
  const src = t.bytes
  const at = t.at + 12
  for (let k = 0; k < n; k++) {
    let a = src[at + k]!
    let b = packet[12 + k]!
    if (a >= 0x41 && a <= 0x5a) a |= 0x20
    if (b >= 0x41 && b <= 0x5a) b |= 0x20
    if (a !== b) return false
  }
  return true
}

/** `lookup` for a name that is no node of the table: closest encloser, then referral, wildcard or NXDOMAIN. */
export function lookupBelow(table: ZoneTable, q: Query): Template | ServiceNode | undefined {
  const nodes = table.nodes
  const qt = q.qtype
  const addressQuery = qt === T.A || qt === T.AAAA || qt === T.ANY
  // Walk up to the closest encloser; it decides between referral, wildcard and NXDOMAIN.
  for (let skip = 1; skip <= q.labelCount; skip++) {
    const ce = nodes.get(q.suffixKey(skip))
    if (ce === undefined) continue
    const below = ce.below
    if (below === undefined) return ce.zone.nxdomain
    if (addressQuery && below.service !== undefined) return below.service
    return below.byType.get(qt) ?? below.other
  }
  return undefined
}
