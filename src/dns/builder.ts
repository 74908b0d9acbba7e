/**
 * @module dns/builder
 * Builds response templates at compile time, with RFC 1035 name compression. Speed does not
 * matter here (it runs once per answer shape); getting compression and the fixup list right does.
 */

import type { Name } from './name.ts'
import { ByteSlab, type Placement } from './slab.ts'
import { SECTION_ADDITIONAL, type Template } from './template.ts'
import { T } from './types.ts'

/** The question of a template: the real name, or a stand-in `*.<suffix>` (see dns/template). */
export interface TemplateQuestion {
  readonly name: Name
  readonly qtype: number
  /** True when only the suffix below the first label is known; the full name is then the client's. */
  readonly standIn: boolean
  /** Defaults to IN; CHAOS answers use CH. */
  readonly qclass?: number
}

/** Owner written as a pointer to the question name: whatever the client asked (wildcards, exact names). */
export const QNAME = Symbol('qname')
export type Owner = Name | typeof QNAME

export interface RRsetInput {
  readonly owner: Owner
  readonly type: number
  readonly ttl: number
  readonly rdatas: readonly Buffer[]
  readonly class?: number
}

const COMPRESSIBLE = new Set<number>([T.NS, T.CNAME, T.PTR, T.MX, T.SOA])
const MAX_MESSAGE = 65535
const MAX_POINTER_TARGET = 0x3fff - 255

export class MessageTooLargeError extends Error {}

/**
 * Where a finished template keeps its bytes and per-RRset arrays. A zone compile passes one that
 * packs them into the zone's own slab and shares equal arrays (zone/compile).
 */
export interface TemplateStore {
  /** A long-lived copy of `src[0..end)`, at `into.chunk[into.at ..]` (filled in and returned). */
  place(src: Buffer, end: number, into: Placement): Placement
  u16(values: readonly number[]): Uint16Array
  u8(values: readonly number[]): Uint8Array
}

/**
 * Per-RRset arrays shared by content. Most templates have one of a few shapes (one RRset in the
 * answer section, no fixups...), and a typed array costs ~200 bytes of heap however short it is,
 * so a template's five arrays cost more than its bytes. Templates never write to them.
 */
export class SharedArrays {
  readonly #u16 = new Map<string, Uint16Array>()
  readonly #u8 = new Map<string, Uint8Array>()
  /** Shapes remembered at most (past it, arrays are made per template): bounds a long-running store. */
  readonly #limit: number

  constructor(limit = Number.POSITIVE_INFINITY) {
    this.#limit = limit
  }

  u16(values: readonly number[]): Uint16Array {
    return this.#shared(this.#u16, values, (v) => Uint16Array.from(v))
  }

  u8(values: readonly number[]): Uint8Array {
    return this.#shared(this.#u8, values, (v) => Uint8Array.from(v))
  }

  #shared<A>(known: Map<string, A>, values: readonly number[], make: (v: readonly number[]) => A): A {
    const key = String.fromCharCode(...values)
    let a = known.get(key)
    if (a === undefined) {
      a = make(values)
      if (known.size < this.#limit) known.set(key, a)
    }
    return a
  }
}

/**
 * Templates made one at a time while serving (service decisions, CHAOS): one slab for all of them,
 * and shared arrays. On the 10k-service scale bench these templates' own arrays were ~44 MB of
 * the heap after traffic (sampling heap profile), for a handful of distinct shapes.
 */
const servingSlab = new ByteSlab()
const servingArrays = new SharedArrays(65_536)
export const SERVING_STORE: TemplateStore = {
  place: (src, end, into) => servingSlab.place(src, 0, end, into),
  u16: (values) => servingArrays.u16(values),
  u8: (values) => servingArrays.u8(values),
}

/** Where `finish` has its bytes placed; read at once, so one record serves every builder. */
const placement: Placement = { chunk: Buffer.alloc(0), at: 0 }

/** Largest scratch buffer kept for the next builder; a rare huge template gives its own back to the GC. */
const MAX_SPARE = 8 * 1024
/**
 * The scratch buffer of the last finished builder, reused by the next one: a compile of 150k
 * templates no longer allocates 150k scratch buffers. A builder takes it for itself (an overlapping
 * builder gets a fresh one), so sharing it is safe even where builders nest.
 */
let spare: Buffer | undefined

export class TemplateBuilder {
  // Starts small and grows: most templates are a few hundred bytes, and a zone set builds one per
  // name and type (a fixed 64 KiB buffer each made loading 100k records take 20 s). Not from Node's
  // Buffer pool: a scratch buffer there would share a pool chunk with long-lived bytes and stay.
  #buf = takeSpare()
  #len = 0
  #dict = new Map<string, number>()
  #fixups: number[] = []
  #rrsetEnd: number[] = []
  #rrsetSection: number[] = []
  #rrsetCount: number[] = []
  #rrsetRequired: number[] = []
  #counts = [0, 0, 0]
  #lastSection = 0
  readonly #qnameLen: number

  constructor(q: TemplateQuestion) {
    this.#len = 12
    const start = this.#len
    this.#ensure(q.name.wire.length + 4)
    q.name.wire.copy(this.#buf, start)
    this.#len += q.name.wire.length
    this.#qnameLen = q.name.wire.length
    // Register every suffix of the question name; with a stand-in, the full name is not the client's.
    let off = 0
    const wire = q.name.wire
    let first = true
    while (wire[off] !== 0) {
      if (!(first && q.standIn)) this.#dict.set(keyAt(wire, off), start + off)
      first = false
      off += wire[off]! + 1
    }
    this.#buf.writeUInt16BE(q.qtype, this.#len)
    this.#buf.writeUInt16BE(q.qclass ?? 1, this.#len + 2)
    this.#len += 4
  }

  /** Adds a whole RRset. `required` marks additional data whose loss must set TC (RFC 9471 glue). */
  add(section: number, rrset: RRsetInput, required = false): void {
    if (section < this.#lastSection) throw new Error('sections must be added in order')
    this.#lastSection = section
    for (const rdata of rrset.rdatas) {
      this.#writeOwner(rrset.owner)
      this.#u16(rrset.type)
      this.#u16(rrset.class ?? 1)
      this.#u32(rrset.ttl)
      this.#ensure(2)
      const lenAt = this.#len
      this.#len += 2
      this.#writeRdata(rrset.type, rdata)
      this.#buf.writeUInt16BE(this.#len - lenAt - 2, lenAt)
    }
    if (this.#len > MAX_MESSAGE) throw new MessageTooLargeError('response would exceed 65535 bytes')
    this.#counts[section]! += rrset.rdatas.length
    this.#rrsetEnd.push(this.#len)
    this.#rrsetSection.push(section)
    this.#rrsetCount.push(rrset.rdatas.length)
    this.#rrsetRequired.push(required && section === SECTION_ADDITIONAL ? 1 : 0)
  }

  /** Current size; callers use it to skip additional data that would overflow 64 KiB. */
  get length(): number {
    return this.#len
  }

  /** The template; the builder must not be used after this. */
  finish(flags: number, store: TemplateStore = SERVING_STORE): Template {
    const buf = this.#buf
    buf.writeUInt16BE(0, 0)
    buf.writeUInt16BE(flags, 2)
    buf.writeUInt16BE(1, 4)
    buf.writeUInt16BE(this.#counts[0]!, 6)
    buf.writeUInt16BE(this.#counts[1]!, 8)
    buf.writeUInt16BE(this.#counts[2]!, 10)
    const placed = store.place(buf, this.#len, placement)
    if (buf.length <= MAX_SPARE) spare = buf
    return Object.freeze({
      kind: 'template',
      bytes: placed.chunk,
      at: placed.at,
      size: this.#len,
      qnameLen: this.#qnameLen,
      flags,
      fixups: store.u16(this.#fixups),
      rrsetEnd: store.u16(this.#rrsetEnd),
      rrsetSection: store.u8(this.#rrsetSection),
      rrsetCount: store.u16(this.#rrsetCount),
      rrsetRequired: store.u8(this.#rrsetRequired),
    })
  }

  #writeOwner(owner: Owner): void {
    if (owner === QNAME) {
      this.#u16(0xc000 | 12)
      return
    }
    this.#writeName(owner.wire)
  }

  #writeRdata(type: number, rdata: Buffer): void {
    this.#ensure(rdata.length)
    if (!COMPRESSIBLE.has(type)) {
      rdata.copy(this.#buf, this.#len)
      this.#len += rdata.length
      return
    }
    // RFC 3597 section 4: only the RFC 1035 types may carry compressed names in rdata.
    let o = 0
    if (type === T.MX) {
      rdata.copy(this.#buf, this.#len, 0, 2)
      this.#len += 2
      o = 2
    }
    o = this.#writeName(rdata, o)
    if (type === T.SOA) {
      o = this.#writeName(rdata, o)
      rdata.copy(this.#buf, this.#len, o, o + 20)
      this.#len += 20
    }
  }

  /** Writes the uncompressed name at `wire[start..]` compressed; returns the offset after it in `wire`. */
  #writeName(wire: Buffer, start = 0): number {
    let off = start
    while (wire[off] !== 0) {
      const key = keyAt(wire, off)
      const target = this.#dict.get(key)
      if (target !== undefined) {
        // Pointers to the start of the question name stay put; all others follow the question length.
        if (target !== 12) this.#fixups.push(this.#len)
        this.#u16(0xc000 | target)
        return skipToEnd(wire, off)
      }
      // Pointers hold 14 bits, and stand-in templates shift targets by up to 253 bytes when
      // rendered for a longer name: only register targets that stay addressable after that.
      if (this.#len < MAX_POINTER_TARGET) this.#dict.set(key, this.#len)
      const l = wire[off]!
      this.#ensure(l + 2)
      wire.copy(this.#buf, this.#len, off, off + l + 1)
      this.#len += l + 1
      off += l + 1
    }
    this.#ensure(1)
    this.#buf[this.#len++] = 0
    return off + 1
  }

  #ensure(extra: number): void {
    const need = this.#len + extra
    if (need <= this.#buf.length) return
    const grown = Buffer.allocUnsafeSlow(Math.max(need, this.#buf.length * 2))
    this.#buf.copy(grown, 0, 0, this.#len)
    this.#buf = grown
  }

  #u16(v: number): void {
    this.#ensure(2)
    this.#buf.writeUInt16BE(v, this.#len)
    this.#len += 2
  }

  #u32(v: number): void {
    this.#ensure(4)
    this.#buf.writeUInt32BE(v >>> 0, this.#len)
    this.#len += 4
  }
}

function takeSpare(): Buffer {
  const b = spare
  spare = undefined
  return b ?? Buffer.allocUnsafeSlow(512)
}

/** Lookup key of the name at `wire[off..]`: its wire form as latin1 with A-Z folded (as dns/query). */
function keyAt(wire: Buffer, off: number): string {
  let end = off
  let upper = false
  let high = false
  while (wire[end] !== 0) {
    const l = wire[end]!
    for (let i = end + 1; i <= end + l; i++) {
      const c = wire[i]!
      if (c >= 0x41 && c <= 0x5a) upper = true
      else if (c >= 0x80) high = true
    }
    end += l + 1
  }
  const text = wire.toString('latin1', off, end + 1)
  if (!upper) return text
  if (!high) return text.toLowerCase()
  let s = ''
  for (let i = off; i <= end; i++) {
    const c = wire[i]!
    s += String.fromCharCode(c >= 0x41 && c <= 0x5a ? c | 0x20 : c)
  }
  return s
}

function skipToEnd(wire: Buffer, off: number): number {
  let o = off
  while (wire[o] !== 0) o += wire[o]! + 1
  return o + 1
}
