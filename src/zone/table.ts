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
import { COPIES_PER_STEP, runSync, type Steps } from './cooperative.ts'
import type { AnswerNode } from './node.ts'

export interface ZoneTable {
  readonly nodes: ReadonlyMap<string, AnswerNode>
  /**
   * The same nodes by `nameHash` of their key, `null` where several keys share a hash. The query
   * path finds a node here by a number (`Query.hash`): a Map lookup by a string key compares the
   * candidates' key strings, a cache miss each on a large zone set, where a number compares in
   * place. A node found here is a candidate the caller checks (`answersQuestion`).
   */
  readonly byHash: NameIndex
  readonly zones: readonly CompiledZone[]
}

/**
 * Nodes by name hash: open addressing over one Int32Array of (hash, entry + 1) pairs, sized once
 * (at most half full), and the entries in an array. Not a Map: a zone set of 200k names grew a
 * Map's table by doubling during a live reload, each step a large allocation in the old
 * generation and a copy of everything so far, and the reload stall on the scale bench went from
 * ~40 ms to 130-280 ms; the pairs are off the JavaScript heap, so a collection never walks them.
 */
export class NameIndex {
  readonly #pairs: Int32Array
  /** Allocated whole up front too: a growing array would be copied at each doubling. */
  readonly #entries: (AnswerNode | null)[]
  #count = 0
  readonly #mask: number

  private constructor(capacity: number, n: number) {
    this.#pairs = new Int32Array(capacity * 2)
    this.#entries = new Array<AnswerNode | null>(n).fill(null)
    this.#mask = capacity - 1
  }

  /** An index for `n` names (filled with `add`). */
  static sized(n: number): NameIndex {
    let capacity = 8
    while (capacity < n * 2) capacity *= 2
    return new NameIndex(capacity, n)
  }

  /** An index of these (hash, node or null) pairs (tests). */
  static of(pairs: Iterable<readonly [number, AnswerNode | null]>): NameIndex {
    const list = [...pairs]
    const index = NameIndex.sized(list.length)
    for (const [h, node] of list) index.#put(h, node)
    return index
  }

  get size(): number {
    return this.#count
  }

  /** The hashes it holds (tests). */
  hashes(): number[] {
    const out: number[] = []
    for (let i = 0; i <= this.#mask; i++) if (this.#pairs[i * 2 + 1] !== 0) out.push(this.#pairs[i * 2]!)
    return out
  }

  /** Adds `node` under `hash`; a second node under the same hash makes it `null` (ask by key). */
  add(hash: number, node: AnswerNode): void {
    this.#put(hash, node, true)
  }

  #put(hash: number, node: AnswerNode | null, shared = false): void {
    const pairs = this.#pairs
    const mask = this.#mask
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      const entry = pairs[i * 2 + 1]!
      if (entry === 0) {
        this.#entries[this.#count++] = node
        pairs[i * 2] = hash
        pairs[i * 2 + 1] = this.#count
        return
      }
      if (pairs[i * 2] === hash) {
        this.#entries[entry - 1] = shared ? null : node
        return
      }
    }
  }

  /**
   * `get` for the first `count` of `hashes` into `out` (a negative hash finds nothing). The first
   * slot of every hash is read before any entry: those reads do not depend on one another, so
   * their cache misses overlap instead of queueing one after another (query/read-ahead.ts).
   * Returns a value made of what was read, for the caller to keep, so none of it is optimized out.
   */
  getMany(hashes: Int32Array, count: number, out: (AnswerNode | null | undefined)[]): number {
    const pairs = this.#pairs
    const mask = this.#mask
    let seen = 0
    for (let i = 0; i < count; i++) seen ^= pairs[(hashes[i]! & mask) * 2]!
    for (let i = 0; i < count; i++) {
      const h = hashes[i]!
      out[i] = h < 0 ? undefined : this.get(h)
    }
    return seen
  }

  /** The node under `hash`, `null` when several share it, undefined when none has it. */
  get(hash: number): AnswerNode | null | undefined {
    const pairs = this.#pairs
    const mask = this.#mask
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      const entry = pairs[i * 2 + 1]!
      if (entry === 0) return undefined
      if (pairs[i * 2] === hash) return this.#entries[entry - 1]
    }
  }
}

export const EMPTY_TABLE: ZoneTable = Object.freeze({ nodes: new Map(), byHash: NameIndex.sized(0), zones: [] })

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

/** `buildTable` as steps that yield every few dozen names (COPIES_PER_STEP; it runs last in a live reload, with the most new heap for V8 to mark). */
export function* buildTableSteps(zones: readonly CompiledZone[]): Steps<ZoneTable> {
  yield
  const nodes = new Map<string, AnswerNode>()
  let count = 0
  for (const zone of zones) {
    // A name inside a more specific zone we also serve is answered by that zone alone.
    const children = zones.filter(
      (z) => z !== zone && z.apex.labels > zone.apex.labels && keyIsSubdomain(z.apex.key, zone.apex.key),
    )
    for (const [key, node] of zone.nodes) {
      if (++count % COPIES_PER_STEP === 0) yield
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
  const byHash = NameIndex.sized(nodes.size)
  for (const [key, node] of nodes) {
    if (++count % COPIES_PER_STEP === 0) yield
    byHash.add(nameHash(key), node)
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
