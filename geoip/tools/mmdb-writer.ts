/**
 * @module geoip/tools/mmdb-writer
 * A small MaxMind DB (format 2.0) writer, enough to build test databases and private overlays.
 * Spec: https://maxmind.github.io/MaxMind-DB/. No MMDB writer exists on npm for us, and the
 * fixtures must be rebuilt without any download, so this is ours.
 *
 * File layout: binary search tree (nodes of two records, 24/28/32 bits each) · 16 zero bytes ·
 * data section · "\xAB\xCD\xEFMaxMind.com" · metadata map.
 *
 * Networks are inserted shortest prefix first, so a longer prefix splits the shorter one and
 * lookups get longest-match semantics regardless of input order. Identical values (whole records,
 * map keys, repeated strings and sub-maps) are written once and referenced by pointers.
 */

import { createHash } from 'node:crypto'
import { isIP } from 'node:net'
import { GslbError } from '../../src/errors.ts'

/** Bad input to the writer: malformed network, duplicate network, value out of range. */
export class MmdbWriteError extends GslbError {
  override readonly code = 'GSLB_ERR_MMDB_WRITE'
}

/** Numeric MMDB types that a plain JS number or bigint cannot select on its own. */
export type MmdbNumericType = 'uint16' | 'uint32' | 'uint64' | 'uint128' | 'int32' | 'double' | 'float'

/** A number (or bigint) with an explicit MMDB type, made with the helpers below. */
export class MmdbTyped {
  readonly type: MmdbNumericType
  readonly value: number | bigint
  constructor(type: MmdbNumericType, value: number | bigint) {
    this.type = type
    this.value = value
  }
}

export const uint16 = (n: number): MmdbTyped => new MmdbTyped('uint16', n)
export const uint32 = (n: number): MmdbTyped => new MmdbTyped('uint32', n)
export const uint64 = (n: number | bigint): MmdbTyped => new MmdbTyped('uint64', n)
export const uint128 = (n: number | bigint): MmdbTyped => new MmdbTyped('uint128', n)
export const int32 = (n: number): MmdbTyped => new MmdbTyped('int32', n)
export const double = (n: number): MmdbTyped => new MmdbTyped('double', n)
export const float = (n: number): MmdbTyped => new MmdbTyped('float', n)

/**
 * A value for the data section. Plain numbers map to uint32 (integers 0..2^32-1), int32
 * (negative integers down to -2^31) or double (anything else); bigints to uint64 or uint128;
 * Uint8Array to bytes. Use the typed helpers to pick another encoding.
 */
export type MmdbValue = string | number | bigint | boolean | Uint8Array | MmdbTyped | readonly MmdbValue[] | MmdbMap

export interface MmdbMap {
  readonly [key: string]: MmdbValue
}

export interface MmdbEntry {
  /** "a.b.c.d/len" or "v6addr/len". IPv4 networks live under ::/96 in an IPv6 tree. */
  readonly network: string
  readonly data: MmdbValue
}

export interface MmdbWriteOptions {
  /** metadata database_type, e.g. "GeoIP2-City"; readers probe on it. */
  readonly databaseType: string
  /** 6 (default) stores IPv4 under ::/96; 4 accepts only IPv4 networks. */
  readonly ipVersion?: 4 | 6
  /** Default: the smallest size that holds every record value. */
  readonly recordSize?: 24 | 28 | 32
  readonly languages?: readonly string[]
  /** Language code -> text. */
  readonly description?: Readonly<Record<string, string>>
  /** Seconds since the epoch; default now. Fix it for reproducible files. */
  readonly buildEpoch?: number
  /**
   * Also reach the IPv4 subtree through ::ffff:0:0/96 (IPv4-mapped addresses), as MaxMind's own
   * databases do. Default true; only for ipVersion 6 and when IPv4 networks are present.
   */
  readonly ipv4Aliases?: boolean
}

// Data section type numbers (spec "Output Data Section").
const T_POINTER = 1
const T_UTF8 = 2
const T_DOUBLE = 3
const T_BYTES = 4
const T_UINT16 = 5
const T_UINT32 = 6
const T_MAP = 7
const T_INT32 = 8
const T_UINT64 = 9
const T_UINT128 = 10
const T_ARRAY = 11
const T_BOOLEAN = 14
const T_FLOAT = 15

const METADATA_MARKER = Buffer.from([0xab, 0xcd, 0xef, ...Buffer.from('MaxMind.com', 'ascii')])
const DATA_SEPARATOR = 16

/** Append-only byte buffer that knows its length, so pointer targets are known as we write. */
class ByteSink {
  #buf = Buffer.alloc(4096)
  #len = 0

  get length(): number {
    return this.#len
  }

  #reserve(n: number): void {
    if (this.#len + n <= this.#buf.length) return
    let size = this.#buf.length * 2
    while (size < this.#len + n) size *= 2
    const next = Buffer.alloc(size)
    this.#buf.copy(next, 0, 0, this.#len)
    this.#buf = next
  }

  byte(b: number): void {
    this.#reserve(1)
    this.#buf[this.#len++] = b & 0xff
  }

  bytes(src: Uint8Array): void {
    this.#reserve(src.length)
    this.#buf.set(src, this.#len)
    this.#len += src.length
  }

  /** Unsigned big-endian integer in exactly `n` bytes. */
  uintBE(value: bigint, n: number): void {
    for (let i = n - 1; i >= 0; i--) this.byte(Number((value >> BigInt(i * 8)) & 0xffn))
  }

  toBuffer(): Buffer {
    return Buffer.from(this.#buf.subarray(0, this.#len))
  }
}

/** Bytes needed for an unsigned value (0 for zero: MMDB integers drop leading zero bytes). */
function byteLength(v: bigint): number {
  let n = 0
  while (v > 0n) {
    v >>= 8n
    n++
  }
  return n
}

function pointerLength(offset: number): number {
  if (offset < 2048) return 2
  if (offset < 526336) return 3
  if (offset < 134744064) return 4
  return 5
}

/**
 * Encodes values into a data section. With `share` on, every value already written is reused
 * through a pointer when the pointer is shorter; the metadata section is written without it.
 */
class DataEncoder {
  readonly sink = new ByteSink()
  readonly #share: boolean
  readonly #seen = new Map<string, { offset: number; length: number }>()
  readonly #keys = new WeakMap<object, string>()

  constructor(share: boolean) {
    this.#share = share
  }

  /** Offset of `value` in the data section: written now unless an identical value exists. */
  record(value: MmdbValue): number {
    const key = this.#key(value)
    const known = this.#seen.get(key)
    if (known !== undefined) return known.offset
    const offset = this.sink.length
    this.#inline(value)
    this.#seen.set(key, { offset, length: this.sink.length - offset })
    return offset
  }

  write(value: MmdbValue): void {
    if (!this.#share) {
      this.#inline(value)
      return
    }
    const key = this.#key(value)
    const known = this.#seen.get(key)
    if (known !== undefined && pointerLength(known.offset) < known.length) {
      this.#pointer(known.offset)
      return
    }
    const offset = this.sink.length
    this.#inline(value)
    // Only first copies are remembered: a pointer must land on inline data, never on a pointer.
    if (known === undefined) this.#seen.set(key, { offset, length: this.sink.length - offset })
  }

  #control(type: number, size: number): void {
    const s = this.sink
    const typeBits = type <= 7 ? type << 5 : 0
    if (size < 29) s.byte(typeBits | size)
    else if (size < 285) s.byte(typeBits | 29)
    else if (size < 65821) s.byte(typeBits | 30)
    else if (size < 65821 + 0x1000000) s.byte(typeBits | 31)
    else throw new MmdbWriteError(`value too large for the MMDB format (${size} bytes or entries)`)
    if (type > 7) s.byte(type - 7)
    if (size >= 65821) s.uintBE(BigInt(size - 65821), 3)
    else if (size >= 285) s.uintBE(BigInt(size - 285), 2)
    else if (size >= 29) s.byte(size - 29)
  }

  #pointer(offset: number): void {
    const s = this.sink
    if (offset < 2048) {
      s.byte((T_POINTER << 5) | ((offset >> 8) & 0x7))
      s.byte(offset)
    } else if (offset < 526336) {
      const v = offset - 2048
      s.byte((T_POINTER << 5) | (1 << 3) | ((v >> 16) & 0x7))
      s.uintBE(BigInt(v & 0xffff), 2)
    } else if (offset < 134744064) {
      const v = offset - 526336
      s.byte((T_POINTER << 5) | (2 << 3) | ((v >> 24) & 0x7))
      s.uintBE(BigInt(v & 0xffffff), 3)
    } else {
      s.byte((T_POINTER << 5) | (3 << 3))
      s.uintBE(BigInt(offset), 4)
    }
  }

  #unsigned(type: number, value: number | bigint, maxBytes: number): void {
    const v = BigInt(value)
    if (v < 0n || byteLength(v) > maxBytes) throw new MmdbWriteError(`${value} does not fit in ${maxBytes * 8} bits`)
    const n = byteLength(v)
    this.#control(type, n)
    this.sink.uintBE(v, n)
  }

  #numeric(t: MmdbTyped): void {
    const { type, value } = t
    switch (type) {
      case 'uint16':
        this.#unsigned(T_UINT16, checkInteger(value), 2)
        break
      case 'uint32':
        this.#unsigned(T_UINT32, checkInteger(value), 4)
        break
      case 'uint64':
        this.#unsigned(T_UINT64, value, 8)
        break
      case 'uint128':
        this.#unsigned(T_UINT128, value, 16)
        break
      case 'int32':
        this.#int32(checkInteger(value))
        break
      case 'double': {
        this.#control(T_DOUBLE, 8)
        const b = Buffer.alloc(8)
        b.writeDoubleBE(Number(value))
        this.sink.bytes(b)
        break
      }
      case 'float': {
        this.#control(T_FLOAT, 4)
        const b = Buffer.alloc(4)
        b.writeFloatBE(Number(value))
        this.sink.bytes(b)
        break
      }
    }
  }

  #int32(n: number): void {
    if (n < -0x80000000 || n > 0x7fffffff) throw new MmdbWriteError(`${n} does not fit in int32`)
    // Readers treat fewer than 4 bytes as unsigned, so negatives always take all 4.
    const u = n < 0 ? BigInt(n) + 0x100000000n : BigInt(n)
    const len = n < 0 ? 4 : byteLength(u)
    this.#control(T_INT32, len)
    this.sink.uintBE(u, len)
  }

  #inline(value: MmdbValue): void {
    switch (typeof value) {
      case 'string': {
        const b = Buffer.from(value, 'utf8')
        this.#control(T_UTF8, b.length)
        this.sink.bytes(b)
        return
      }
      case 'boolean':
        this.#control(T_BOOLEAN, value ? 1 : 0)
        return
      case 'bigint':
        if (value < 0n) throw new MmdbWriteError(`negative bigint ${value}: MMDB has no signed 64-bit type`)
        this.#unsigned(value < 1n << 64n ? T_UINT64 : T_UINT128, value, 16)
        return
      case 'number':
        if (Number.isInteger(value) && value >= 0 && value <= 0xffffffff) this.#unsigned(T_UINT32, value, 4)
        else if (Number.isInteger(value) && value < 0 && value >= -0x80000000) this.#int32(value)
        else this.#numeric(double(value))
        return
      default:
        break
    }
    if (value instanceof MmdbTyped) {
      this.#numeric(value)
      return
    }
    if (value instanceof Uint8Array) {
      this.#control(T_BYTES, value.length)
      this.sink.bytes(value)
      return
    }
    if (isArray(value)) {
      this.#control(T_ARRAY, value.length)
      for (const v of value) this.write(v)
      return
    }
    const keys = Object.keys(value).sort()
    this.#control(T_MAP, keys.length)
    for (const k of keys) {
      this.write(k)
      this.write(value[k]!)
    }
  }

  /** Canonical text of a value, type included (uint32 7 and double 7 differ). Memoised per object. */
  #key(value: MmdbValue): string {
    switch (typeof value) {
      case 'string':
        return 's' + JSON.stringify(value)
      case 'boolean':
        return value ? 'T' : 'F'
      case 'bigint':
        return 'n' + value.toString()
      case 'number':
        return 'd' + String(value)
      default:
        break
    }
    const memo = this.#keys.get(value)
    if (memo !== undefined) return memo
    let key: string
    if (value instanceof MmdbTyped) key = `${value.type}:${value.value}`
    else if (value instanceof Uint8Array) key = `b${value.length}:${createHash('sha256').update(value).digest('hex')}`
    else if (isArray(value)) key = '[' + value.map((v) => this.#key(v)).join(',') + ']'
    else {
      const keys = Object.keys(value).sort()
      key = '{' + keys.map((k) => JSON.stringify(k) + ':' + this.#key(value[k]!)).join(',') + '}'
    }
    this.#keys.set(value, key)
    return key
  }
}

function isArray(v: MmdbValue): v is readonly MmdbValue[] {
  return Array.isArray(v)
}

function checkInteger(v: number | bigint): number {
  const n = Number(v)
  if (!Number.isInteger(n)) throw new MmdbWriteError(`${v} is not an integer`)
  return n
}

// --- search tree -------------------------------------------------------------------------------

interface TreeNode {
  kind: 'node'
  left: Slot
  right: Slot
  id: number
}
interface DataLeaf {
  readonly kind: 'data'
  readonly offset: number
}
type Slot = TreeNode | DataLeaf | undefined

const newNode = (): TreeNode => ({ kind: 'node', left: undefined, right: undefined, id: -1 })

function bitAt(bytes: Uint8Array, i: number): 0 | 1 {
  return ((bytes[i >> 3]! >> (7 - (i & 7))) & 1) as 0 | 1
}

interface ParsedNetwork {
  readonly bytes: Uint8Array
  /** Prefix in the tree's terms (IPv4 in an IPv6 tree gets +96). */
  readonly prefix: number
  readonly text: string
}

function parseNetwork(text: string, ipVersion: 4 | 6): ParsedNetwork {
  const slash = text.indexOf('/')
  const addr = slash < 0 ? text : text.slice(0, slash)
  const lenText = slash < 0 ? undefined : text.slice(slash + 1)
  const family = isIP(addr)
  if (family === 0) throw new MmdbWriteError(`${text}: not an IP network (expected a.b.c.d/len or v6/len)`)
  const max = family === 4 ? 32 : 128
  const len = lenText === undefined ? max : Number(lenText)
  if (lenText !== undefined && !/^\d{1,3}$/.test(lenText)) throw new MmdbWriteError(`${text}: bad prefix length`)
  if (!Number.isInteger(len) || len < 0 || len > max) throw new MmdbWriteError(`${text}: prefix must be 0..${max}`)
  if (family === 6 && ipVersion === 4) throw new MmdbWriteError(`${text}: IPv6 network in an ipVersion 4 database`)
  const raw = family === 4 ? parseIPv4(addr) : parseIPv6(addr)
  for (let i = len; i < max; i++) {
    if (bitAt(raw, i)) throw new MmdbWriteError(`${text}: host bits set beyond /${len}`)
  }
  if (family === 4 && ipVersion === 6) {
    const bytes = new Uint8Array(16)
    bytes.set(raw, 12)
    return { bytes, prefix: len + 96, text }
  }
  return { bytes: raw, prefix: len, text }
}

function parseIPv4(addr: string): Uint8Array {
  return Uint8Array.from(addr.split('.').map(Number))
}

/** `addr` already passed isIP() === 6. */
function parseIPv6(addr: string): Uint8Array {
  const out = new Uint8Array(16)
  let text = addr
  const pct = text.indexOf('%')
  if (pct >= 0) text = text.slice(0, pct)
  // An embedded IPv4 tail becomes two hex groups.
  const lastColon = text.lastIndexOf(':')
  const tail = text.slice(lastColon + 1)
  if (tail.includes('.')) {
    const v4 = parseIPv4(tail)
    text = `${text.slice(0, lastColon + 1)}${((v4[0]! << 8) | v4[1]!).toString(16)}:${((v4[2]! << 8) | v4[3]!).toString(16)}`
  }
  const dbl = text.indexOf('::')
  const head = dbl < 0 ? text : text.slice(0, dbl)
  const rest = dbl < 0 ? '' : text.slice(dbl + 2)
  const headGroups = head === '' ? [] : head.split(':')
  const tailGroups = rest === '' ? [] : rest.split(':')
  const groups = [...headGroups, ...Array(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups]
  groups.forEach((g: string, i: number) => {
    const v = Number.parseInt(g, 16)
    out[i * 2] = v >> 8
    out[i * 2 + 1] = v & 0xff
  })
  return out
}

function insert(root: TreeNode, net: ParsedNetwork, leaf: DataLeaf): void {
  if (net.prefix === 0) {
    root.left = leaf
    root.right = leaf
    return
  }
  let node = root
  for (let depth = 0; depth < net.prefix - 1; depth++) {
    const bit = bitAt(net.bytes, depth)
    let child = bit ? node.right : node.left
    if (child === undefined) child = newNode()
    else if (child.kind === 'data') {
      // A longer prefix inside a shorter one: the shorter one's data covers both halves.
      const split = newNode()
      split.left = child
      split.right = child
      child = split
    }
    if (bit) node.right = child
    else node.left = child
    node = child
  }
  if (bitAt(net.bytes, net.prefix - 1)) node.right = leaf
  else node.left = leaf
}

/** Slot reached by following `bits` zero/one choices from the root, or undefined if absent. */
function slotAt(root: TreeNode, bits: readonly (0 | 1)[]): Slot {
  let slot: Slot = root
  for (const b of bits) {
    if (slot === undefined || slot.kind === 'data') return undefined
    slot = b ? slot.right : slot.left
  }
  return slot
}

function aliasIPv4Mapped(root: TreeNode): void {
  const zeros96 = Array<0 | 1>(96).fill(0)
  const v4 = slotAt(root, zeros96)
  if (v4 === undefined) return
  const path: (0 | 1)[] = [...Array<0 | 1>(80).fill(0), ...Array<0 | 1>(16).fill(1)]
  let node = root
  for (let depth = 0; depth < 95; depth++) {
    const bit = path[depth]!
    let child = bit ? node.right : node.left
    if (child === undefined) {
      child = newNode()
      if (bit) node.right = child
      else node.left = child
    } else if (child.kind === 'data') {
      throw new MmdbWriteError('a network covers ::ffff:0:0/96; turn ipv4Aliases off or drop it')
    }
    node = child
  }
  if (node.right !== undefined) throw new MmdbWriteError('a network overlaps ::ffff:0:0/96; turn ipv4Aliases off')
  node.right = v4
}

/** Numbers nodes breadth-first (root = 0); an aliased subtree is numbered once. */
function numberNodes(root: TreeNode): TreeNode[] {
  const order: TreeNode[] = []
  root.id = 0
  order.push(root)
  for (let i = 0; i < order.length; i++) {
    const n = order[i]!
    for (const c of [n.left, n.right]) {
      if (c !== undefined && c.kind === 'node' && c.id < 0) {
        c.id = order.length
        order.push(c)
      }
    }
  }
  return order
}

function writeRecord(buf: Buffer, recordSize: 24 | 28 | 32, node: number, left: number, right: number): void {
  const off = node * (recordSize / 4)
  switch (recordSize) {
    case 24:
      buf.writeUIntBE(left, off, 3)
      buf.writeUIntBE(right, off + 3, 3)
      return
    case 28:
      buf.writeUIntBE(left & 0xffffff, off, 3)
      buf[off + 3] = (((left >>> 24) & 0xf) << 4) | ((right >>> 24) & 0xf)
      buf.writeUIntBE(right & 0xffffff, off + 4, 3)
      return
    case 32:
      buf.writeUInt32BE(left >>> 0, off)
      buf.writeUInt32BE(right >>> 0, off + 4)
      return
  }
}

/** Builds a complete .mmdb file in memory. */
export function writeMmdb(entries: readonly MmdbEntry[], options: MmdbWriteOptions): Buffer {
  const ipVersion = options.ipVersion ?? 6
  const data = new DataEncoder(true)

  // Data first, in input order, so offsets are stable and callers can reason about layout.
  const parsed = entries.map((e, index) => {
    const net = parseNetwork(e.network, ipVersion)
    const leaf: DataLeaf = { kind: 'data', offset: data.record(e.data) }
    return { net, leaf, index }
  })

  const seen = new Map<string, string>()
  for (const { net } of parsed) {
    const key = `${Buffer.from(net.bytes).toString('hex')}/${net.prefix}`
    const other = seen.get(key)
    if (other !== undefined) throw new MmdbWriteError(`${net.text}: duplicate network (also given as ${other})`)
    seen.set(key, net.text)
  }

  const root = newNode()
  parsed.sort((a, b) => a.net.prefix - b.net.prefix || a.index - b.index)
  for (const p of parsed) insert(root, p.net, p.leaf)
  if (ipVersion === 6 && (options.ipv4Aliases ?? true)) aliasIPv4Mapped(root)

  const nodes = numberNodes(root)
  const nodeCount = nodes.length
  const dataBytes = data.sink.toBuffer()
  const recordValue = (s: Slot): number => {
    if (s === undefined) return nodeCount
    if (s.kind === 'node') return s.id
    return nodeCount + DATA_SEPARATOR + s.offset
  }

  const maxValue = nodeCount + DATA_SEPARATOR + dataBytes.length
  const fitting = ([24, 28, 32] as const).find((size) => maxValue < 2 ** size)
  if (fitting === undefined) throw new MmdbWriteError('database too large for 32-bit records')
  const recordSize = options.recordSize ?? fitting
  if (recordSize < fitting) throw new MmdbWriteError(`record size ${recordSize} cannot address ${maxValue} values`)

  const tree = Buffer.alloc((nodeCount * recordSize) / 4)
  for (const n of nodes) writeRecord(tree, recordSize, n.id, recordValue(n.left), recordValue(n.right))

  const meta = new DataEncoder(false)
  meta.write({
    binary_format_major_version: uint16(2),
    binary_format_minor_version: uint16(0),
    build_epoch: uint64(BigInt(options.buildEpoch ?? Math.floor(Date.now() / 1000))),
    database_type: options.databaseType,
    description: { ...(options.description ?? {}) },
    ip_version: uint16(ipVersion),
    languages: [...(options.languages ?? [])],
    node_count: uint32(nodeCount),
    record_size: uint16(recordSize),
  })

  return Buffer.concat([tree, Buffer.alloc(DATA_SEPARATOR), dataBytes, METADATA_MARKER, meta.sink.toBuffer()])
}
