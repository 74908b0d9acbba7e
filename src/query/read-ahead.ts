/**
 * @module query/read-ahead
 * Reads, for a whole batch of received datagrams, what answering them will read, one stage at a
 * time over the batch, before any of them is answered.
 *
 * Why: on a large zone set (100k names, 10k services) the answer to a query is a chain of objects
 * scattered over a heap of hundreds of MB (name index slot, node, service node, Ready, template,
 * the template's bytes), and each is a cache and TLB miss the query waits for in turn: about 1 µs
 * per query on our build machines, 15-25% of its CPU time, which a small zone set never pays.
 * Answering one query after another leaves those misses in a row. Read stage by stage over the
 * batch (every query's index slot, then every query's node, then every service node...), the
 * reads of one stage do not depend on one another and the CPU overlaps their misses; the answers
 * that follow find their objects in cache. This is "group prefetching" of hash joins, in plain
 * JavaScript: a read whose value is kept (`seen`) is a prefetch the JIT cannot drop.
 *
 * Read only: it decides nothing and changes nothing, so an answer is the same with or without it.
 * A client's own Ready (geo, latency, sticky) is found by the key the query path uses
 * (clientKey4/6): from an ECS option right after the question (how resolvers send it), else from
 * the datagram's source address in the batch's records.
 */

import { OPT_ECS, questionHash, questionSpan } from '../dns/query.ts'
import type { Template } from '../dns/template.ts'
import { T } from '../dns/types.ts'
import { clientReady, firstClientSlot, type Ready, type ServiceNode } from '../policy/service.ts'
import type { AnswerNode } from '../zone/node.ts'
import { answerAt, type ZoneTable } from '../zone/table.ts'
import { CLASS_IN } from '../zone/types.ts'
import { type ClientKey, clientKey4, clientKey6, KEY_UNKNOWN } from './context.ts'

/** Datagrams shorter than a header and the shortest question (root name, type, class) hold none. */
const MIN_QUERY = 12 + 1 + 4
const TYPE_OPT = 41

/** What `ecsClientKey` found: a key from ECS, no ECS (the source address keys the client), or neither. */
export const ECS_KEY = 1
export const NO_ECS = 0
export const NO_KEY = -1

/**
 * The client key of the ECS option of the query at `input[start, end)` whose question ends at
 * `at`, into `out` (ECS_KEY); NO_ECS when the query has no ECS option (the query path then keys
 * the client by its source address); NO_KEY when its ECS option gives no key (source prefix 0)
 * or the message is not laid out as read here: no answer or authority records and, if anything
 * follows the question, the OPT record first. Address bytes past the source prefix are read but
 * masked off by the key, so a short address is read in place.
 */
export function ecsClientKey(input: Uint8Array, start: number, end: number, at: number, out: ClientKey): number {
  if ((input[start + 6]! | input[start + 7]! | input[start + 8]! | input[start + 9]!) !== 0) return NO_KEY
  if (at === end) return NO_ECS
  if (at + 11 > end || input[at] !== 0 || ((input[at + 1]! << 8) | input[at + 2]!) !== TYPE_OPT) return NO_KEY
  const rdEnd = at + 11 + ((input[at + 9]! << 8) | input[at + 10]!)
  if (rdEnd > end) return NO_KEY
  for (let o = at + 11; o + 4 <= rdEnd; ) {
    const len = (input[o + 2]! << 8) | input[o + 3]!
    if (((input[o]! << 8) | input[o + 1]!) === OPT_ECS) {
      if (len < 4 || o + 4 + len > rdEnd) return NO_KEY
      const family = (input[o + 4]! << 8) | input[o + 5]!
      const source = input[o + 6]!
      const a = o + 8
      if (source === 0) return NO_KEY
      if (family === 1 && source <= 32)
        clientKey4(
          out,
          ((input[a]! << 24) | (input[a + 1]! << 16) | (input[a + 2]! << 8) | input[a + 3]!) >>> 0,
          source,
        )
      else if (family === 2 && source <= 128) clientKey6(out, input, a, source)
      else return NO_KEY
      return ECS_KEY
    }
    o += 4 + len
  }
  return NO_ECS
}

/** Where a batch's datagrams and their records are (the batched UDP addon's layout). */
export interface BatchLayout {
  /** Bytes per datagram slot: datagram i at `input[i * slot]`. */
  readonly slot: number
  /** Int32 words per record: record i at `meta[i * words]`. */
  readonly words: number
  /** Word of a record holding the datagram's length (negative: no datagram). */
  readonly lengthAt: number
  /** Word of a record holding the source's family (4 or 6); -1: records carry no source. */
  readonly familyAt: number
  /** Byte offset in a record of the source address (4 or 16 bytes, network order). */
  readonly addressAt: number
}

/** The key of a datagram's source address, as the query path keys a client without ECS. */
function sourceKey(records: Uint8Array, at: number, family: number, out: ClientKey): boolean {
  const b = records
  if (family === 4) {
    clientKey4(out, ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0, 32)
    return true
  }
  if (family !== 6) return false
  // An IPv4-mapped address reads as the IPv4 client it is (context.ts ipv4Value).
  let mapped = b[at + 10] === 0xff && b[at + 11] === 0xff
  for (let k = 0; mapped && k < 10; k++) mapped = b[at + k] === 0
  if (mapped) clientKey4(out, ((b[at + 12]! << 24) | (b[at + 13]! << 16) | (b[at + 14]! << 8) | b[at + 15]!) >>> 0, 32)
  else clientKey6(out, b, at, 128)
  return true
}

export class ReadAhead {
  #capacity = 0
  #hashes = new Int32Array(0)
  #qtypes = new Int32Array(0)
  /** Where each question ends (past type and class): the OPT record starts there. */
  #ends = new Int32Array(0)
  readonly #key: ClientKey = { keyFamily: 0, keyHi: 0, keyLo: 0 }
  /** Each datagram's client key (stage 5), as ClientKey's three numbers. */
  #families = new Int32Array(0)
  #his = new Int32Array(0)
  #los = new Int32Array(0)
  // One array per stage and type: each stage's loop reads one kind of object (monomorphic).
  #nodes: (AnswerNode | null | undefined)[] = []
  #services: (ServiceNode | undefined)[] = []
  #clients: ((Ready | undefined)[] | undefined)[] = []
  #readys: (Ready | undefined)[] = []
  #templates: (Template | undefined)[] = []
  #seconds: (Template | undefined)[] = []
  /** Made of every value read, and kept: what makes the reads observable to the JIT. */
  seen = 0

  #grow(n: number): void {
    let c = Math.max(16, this.#capacity)
    while (c < n) c *= 2
    this.#capacity = c
    this.#hashes = new Int32Array(c)
    this.#qtypes = new Int32Array(c)
    this.#ends = new Int32Array(c)
    this.#families = new Int32Array(c)
    this.#his = new Int32Array(c)
    this.#los = new Int32Array(c)
    this.#nodes = new Array(c).fill(undefined)
    this.#services = new Array(c).fill(undefined)
    this.#clients = new Array(c).fill(undefined)
    this.#readys = new Array(c).fill(undefined)
    this.#templates = new Array(c).fill(undefined)
    this.#seconds = new Array(c).fill(undefined)
  }

  /**
   * Reads ahead for the first `count` datagrams of a batch laid out as `layout` says (`records`:
   * the same records as bytes, for the source addresses). Returns how many of them it followed
   * down to an answer template (tests; the server ignores it).
   */
  run(
    table: ZoneTable,
    input: Uint8Array,
    meta: Int32Array,
    records: Uint8Array,
    layout: BatchLayout,
    count: number,
  ): number {
    const { slot, words, lengthAt } = layout
    if (count > this.#capacity) this.#grow(count)
    const hashes = this.#hashes
    const qtypes = this.#qtypes
    const ends = this.#ends
    // 1. The question's name hash and type (bytes just received: in cache).
    for (let i = 0; i < count; i++) {
      const start = i * slot
      const len = meta[i * words + lengthAt]!
      const end = start + len
      const h = len < MIN_QUERY || start + len > input.length ? -1 : questionHash(input, start, end)
      const at = questionSpan.end
      if (h < 0 || at + 4 > end || ((input[at + 2]! << 8) | input[at + 3]!) !== CLASS_IN) {
        hashes[i] = -1
        continue
      }
      hashes[i] = h
      qtypes[i] = (input[at]! << 8) | input[at + 1]!
      ends[i] = at + 4
    }
    // 2. Index slots, then index entries.
    const nodes = this.#nodes
    let seen = table.byHash.getMany(hashes, count, nodes)
    // 3. Nodes: what each answers with at its own name (the name check comes with the answer).
    const services = this.#services
    const templates = this.#templates
    for (let i = 0; i < count; i++) {
      const node = nodes[i]
      nodes[i] = undefined
      services[i] = undefined
      templates[i] = undefined
      if (node == null) continue
      const a = answerAt(node, qtypes[i]!)
      if (a.kind === 'service') services[i] = a
      else templates[i] = a
    }
    // 4. Service nodes: the Ready for the query type, or the client table.
    const readys = this.#readys
    const clients = this.#clients
    for (let i = 0; i < count; i++) {
      const s = services[i]
      readys[i] = undefined
      clients[i] = undefined
      if (s === undefined) continue
      services[i] = undefined
      const v6 = qtypes[i] === T.AAAA
      const c = v6 ? s.clients6 : s.clients4
      if (c !== undefined) clients[i] = c
      else readys[i] = v6 ? s.ready6 : s.ready4
    }
    // 5. Client tables: the query's client in its service's table, by its ECS option or source.
    // Table, slot and Ready are three objects, each read needing the one before: one pass each,
    // so that the misses of a pass overlap (in one loop they were three in a row per query).
    // 5a. The client keys (from the datagrams and records: in cache).
    const key = this.#key
    const families = this.#families
    const his = this.#his
    const los = this.#los
    for (let i = 0; i < count; i++) {
      if (clients[i] === undefined) continue
      const start = i * slot
      const m = i * words
      const ecs = ecsClientKey(input, start, start + meta[m + lengthAt]!, ends[i]!, key)
      if (
        (ecs === ECS_KEY ||
          (ecs === NO_ECS &&
            layout.familyAt >= 0 &&
            sourceKey(records, m * 4 + layout.addressAt, meta[m + layout.familyAt]!, key))) &&
        key.keyFamily !== KEY_UNKNOWN
      ) {
        families[i] = key.keyFamily
        his[i] = key.keyHi
        los[i] = key.keyLo
      } else clients[i] = undefined
    }
    // 5b. The tables (their length), 5c. the client's first slot, 5d. the Ready behind it.
    for (let i = 0; i < count; i++) {
      const c = clients[i]
      if (c !== undefined) seen ^= c.length
    }
    for (let i = 0; i < count; i++) {
      const c = clients[i]
      if (c !== undefined && c[firstClientSlot(c, families[i]!, his[i]!, los[i]!)] === undefined) clients[i] = undefined
    }
    for (let i = 0; i < count; i++) {
      const c = clients[i]
      if (c === undefined) continue
      clients[i] = undefined
      readys[i] = clientReady(c, families[i]!, his[i]!, los[i]!)
    }
    // 6. Readys: their first two templates (a draw picks one of them, or one of its array's).
    const seconds = this.#seconds
    for (let i = 0; i < count; i++) {
      seconds[i] = undefined
      const r = readys[i]
      if (r === undefined) continue
      readys[i] = undefined
      templates[i] = r.template0
      seconds[i] = r.template1
    }
    // 7. Templates, and the line of their bytes that holds the question name.
    let reached = 0
    for (let i = 0; i < count; i++) {
      const t = templates[i]
      if (t !== undefined) {
        templates[i] = undefined
        seen ^= t.bytes[t.at + 12]!
        reached++
      }
      const u = seconds[i]
      if (u !== undefined) {
        seconds[i] = undefined
        seen ^= u.bytes[u.at + 12]!
      }
    }
    this.seen = seen
    return reached
  }
}
