/**
 * Building blocks for the wire fuzz test (test/integration/fuzz.test.ts): a corpus of valid
 * queries of many shapes, structure-aware mutators, a response checker, and UDP/TCP clients that
 * keep many exchanges in flight against a local server. Everything random comes from one seeded
 * PRNG, so a failing run is reproduced by its seed.
 */

import { createSocket, type Socket as UdpSocket } from 'node:dgram'
import { connect, type Socket } from 'node:net'
import * as dnsPacket from 'dns-packet'

export type Rng = () => number

export const int = (rng: Rng, n: number): number => Math.floor(rng() * n)
export const pick = <T>(rng: Rng, items: readonly T[]): T => items[int(rng, items.length)]!
const chance = (rng: Rng, p: number): boolean => rng() < p
const randomBytes = (rng: Rng, n: number): Buffer => {
  const b = Buffer.allocUnsafe(n)
  for (let i = 0; i < n; i++) b[i] = int(rng, 256)
  return b
}

// ---------------------------------------------------------------------------------------------
// Corpus

const STATIC_NAMES = [
  'example.org',
  'host.example.org',
  'HoSt.ExAmPlE.oRg',
  'mail.example.org',
  'ns1.example.org',
  'ns2.example.org',
  '_sip._tcp.example.org',
  'sipserver.example.org',
  'ptr.example.org',
  'unknown.example.org',
  'alias.example.org',
  'alias2.example.org',
  'outside.example.org',
  'dangling.example.org',
  'loop1.example.org',
  'towild.example.org',
  'todeleg.example.org',
  'x.wild.example.org',
  'a.b.c.wild.example.org',
  'sub.wild.example.org',
  'deeper.sub.wild.example.org',
  'foo.cwild.example.org',
  'ent.example.org',
  'b.ent.example.org',
  'a.b.ent.example.org',
  'deleg.example.org',
  'host.deleg.example.org',
  'ns.deleg.example.org',
  'big.example.org',
  'bigtxt.example.org',
  'nope.example.org',
  'example.com',
  'www.example.com',
  'ns1.example.com',
  'missing.example.com',
  'example.net',
  'www.example.net',
  'org',
  '',
]

const GSLB_NAMES = [
  'gslb.example',
  'static.gslb.example',
  'info.gslb.example',
  'weighted.gslb.example',
  'geo.gslb.example',
  'failover.gslb.example',
  'latency.gslb.example',
  'nearest.gslb.example',
  'sticky.gslb.example',
  'multi.gslb.example',
  'cdn.gslb.example',
  'x.apps.gslb.example',
  'a.b.apps.gslb.example',
  'down-servfail.gslb.example',
  'down-nodata.gslb.example',
  'down-pool.gslb.example',
  'down-address.gslb.example',
  'down-cname.gslb.example',
  'down-open.gslb.example',
  'nothing.gslb.example',
]

const TYPES = [
  'A',
  'A',
  'A',
  'AAAA',
  'AAAA',
  'MX',
  'TXT',
  'ANY',
  'SRV',
  'DS',
  'NS',
  'SOA',
  'CNAME',
  'PTR',
  'CAA',
  'DNSKEY',
  'RRSIG',
  'NSEC',
  'UNKNOWN_65280',
  'UNKNOWN_1234',
  'UNKNOWN_65535',
  'UNKNOWN_0',
]

/** A name of `labels` one-letter labels under `suffix`, capped at 253 presentation characters. */
function manyLabels(labels: number, suffix: string): string {
  const parts: string[] = []
  let len = suffix.length
  for (let i = 0; i < labels && len + 2 <= 253; i++) {
    parts.push(String.fromCharCode(97 + (i % 26)))
    len += 2
  }
  return [...parts, suffix].join('.')
}

function longLabels(rng: Rng, suffix: string): string {
  const parts: string[] = []
  let len = suffix.length
  for (;;) {
    const n = 1 + int(rng, 63)
    if (len + n + 1 > 253) break
    parts.push('x'.repeat(n))
    len += n + 1
    if (chance(rng, 0.3)) break
  }
  return [...parts, suffix].join('.')
}

/** The ECS option payload (RFC 7871) for a random address, with the bits past the prefix cleared. */
function ecsData(rng: Rng, family: 1 | 2, source: number): Buffer {
  const addrLen = (source + 7) >> 3
  const addr = randomBytes(rng, addrLen)
  if (source % 8 !== 0) addr[addrLen - 1]! &= 0xff << (8 - (source % 8))
  const head = Buffer.from([0, family, source, 0])
  return Buffer.concat([head, addr])
}

const ECS_V4 = ['198.51.100.0', '198.51.100.128', '203.0.113.0', '192.0.2.0', '10.0.0.0', '100.64.0.0']

/** ECS for a subnet the fixture geo database knows (so geo policies take the ECS path). */
function knownEcs(rng: Rng): Buffer {
  const source = pick(rng, [8, 16, 24, 25, 26, 32])
  const octets = pick(rng, ECS_V4).split('.').map(Number)
  const addrLen = (source + 7) >> 3
  const addr = Buffer.from(octets.slice(0, addrLen))
  if (source % 8 !== 0) addr[addrLen - 1]! &= 0xff << (8 - (source % 8))
  return Buffer.concat([Buffer.from([0, 1, source, 0]), addr])
}

type Opt = { code: number; data: Buffer }

function randomOptions(rng: Rng): Opt[] {
  const opts: Opt[] = []
  if (chance(rng, 0.4)) opts.push({ code: 3, data: Buffer.alloc(0) })
  if (chance(rng, 0.5)) {
    const r = rng()
    if (r < 0.4) opts.push({ code: 8, data: knownEcs(rng) })
    else if (r < 0.7) opts.push({ code: 8, data: ecsData(rng, 1, int(rng, 33)) })
    else opts.push({ code: 8, data: ecsData(rng, 2, int(rng, 129)) })
  }
  if (chance(rng, 0.15)) opts.push({ code: 10, data: randomBytes(rng, pick(rng, [8, 16, 24, 40])) })
  if (chance(rng, 0.1)) opts.push({ code: 12, data: Buffer.alloc(int(rng, 200)) })
  if (chance(rng, 0.1))
    opts.push({ code: pick(rng, [0, 5, 11, 15, 65001, 65535]), data: randomBytes(rng, int(rng, 12)) })
  // Option order must not matter.
  for (let i = opts.length - 1; i > 0; i--) {
    const j = int(rng, i + 1)
    ;[opts[i], opts[j]] = [opts[j]!, opts[i]!]
  }
  return opts
}

export interface CorpusEntry {
  readonly bytes: Buffer
  readonly name: string
  readonly type: string
}

/** One valid query of a random shape. */
export function validQuery(rng: Rng, id = int(rng, 0x10000)): CorpusEntry {
  const r = rng()
  let name: string
  if (r < 0.45) name = pick(rng, STATIC_NAMES)
  else if (r < 0.8) name = pick(rng, GSLB_NAMES)
  else if (r < 0.87) name = manyLabels(1 + int(rng, 130), pick(rng, ['wild.example.org', 'apps.gslb.example', 'org']))
  else if (r < 0.94) name = longLabels(rng, pick(rng, ['wild.example.org', 'example.org', 'example.com']))
  else
    name = `${pick(rng, ['zz', 'a-b', '_x', 'UPPER'])}.${pick(rng, ['wild.example.org', 'cwild.example.org', 'apps.gslb.example'])}`
  let type = pick(rng, TYPES)
  let klass = 'IN'
  if (chance(rng, 0.03)) {
    klass = 'CH'
    name = pick(rng, ['version.bind', 'id.server', 'hostname.bind', 'version.server', 'authors.bind'])
    type = pick(rng, ['TXT', 'ANY', 'A'])
  } else if (chance(rng, 0.02)) {
    klass = pick(rng, ['ANY', 'HS', 'CS'])
  }
  let flags = 0
  if (chance(rng, 0.5)) flags |= dnsPacket.RECURSION_DESIRED
  if (chance(rng, 0.1)) flags |= dnsPacket.CHECKING_DISABLED
  if (chance(rng, 0.1)) flags |= dnsPacket.AUTHENTIC_DATA
  const additionals: dnsPacket.Answer[] = []
  if (chance(rng, 0.6)) {
    additionals.push({
      type: 'OPT',
      name: '.',
      udpPayloadSize: pick(rng, [0, 512, 1220, 1232, 1232, 1400, 4096, 65535]),
      flags: chance(rng, 0.3) ? dnsPacket.DNSSEC_OK : 0,
      options: randomOptions(rng),
    } as unknown as dnsPacket.Answer)
  }
  const bytes = dnsPacket.encode({
    type: 'query',
    id,
    flags,
    questions: [{ name, type: type as dnsPacket.RecordType, class: klass as dnsPacket.RecordClass }],
    additionals,
  })
  return { bytes, name, type }
}

// ---------------------------------------------------------------------------------------------
// Wire helpers

/** Offset just past the (uncompressed) question, or -1 when the question is not well formed. */
export function questionEnd(buf: Buffer): number {
  let i = 12
  for (let hops = 0; hops < 130; hops++) {
    if (i >= buf.length) return -1
    const len = buf[i]!
    if (len === 0) return i + 5 <= buf.length ? i + 5 : -1
    if (len > 63) return -1
    i += len + 1
  }
  return -1
}

/** Offsets of the label length bytes of the question name (until the first non-label byte). */
function labelOffsets(buf: Buffer): number[] {
  const out: number[] = []
  let i = 12
  while (i < buf.length && buf[i]! !== 0 && buf[i]! <= 63 && out.length < 130) {
    out.push(i)
    i += buf[i]! + 1
  }
  return out
}

/** An RR with the given raw owner bytes. */
function rr(owner: Buffer, type: number, klass: number, ttl: number, rdata: Buffer): Buffer {
  const fixed = Buffer.alloc(10)
  fixed.writeUInt16BE(type, 0)
  fixed.writeUInt16BE(klass, 2)
  fixed.writeUInt32BE(ttl >>> 0, 4)
  fixed.writeUInt16BE(rdata.length & 0xffff, 8)
  return Buffer.concat([owner, fixed, rdata])
}

/** A raw OPT record: root owner, `size`, extended rcode, version, flags, options. */
function optRecord(size: number, ext: number, version: number, flags: number, options: Buffer): Buffer {
  const b = Buffer.alloc(11)
  b[0] = 0
  b.writeUInt16BE(41, 1)
  b.writeUInt16BE(size, 3)
  b[5] = ext
  b[6] = version
  b.writeUInt16BE(flags, 7)
  b.writeUInt16BE(options.length & 0xffff, 9)
  return Buffer.concat([b, options])
}

function option(code: number, data: Buffer, lenOverride?: number): Buffer {
  const h = Buffer.alloc(4)
  h.writeUInt16BE(code, 0)
  h.writeUInt16BE(lenOverride ?? data.length, 2)
  return Buffer.concat([h, data])
}

const pointer = (target: number): Buffer => Buffer.from([0xc0 | ((target >> 8) & 0x3f), target & 0xff])

function bumpCount(buf: Buffer, at: number, by: number): void {
  if (buf.length >= at + 2) buf.writeUInt16BE((buf.readUInt16BE(at) + by) & 0xffff, at)
}

/** The query with its additional section (and ARCOUNT) removed, when its question is readable. */
function withoutAdditional(buf: Buffer): Buffer {
  const end = questionEnd(buf)
  if (end < 0 || buf.readUInt16BE(6) !== 0 || buf.readUInt16BE(8) !== 0) return Buffer.from(buf)
  const out = Buffer.from(buf.subarray(0, end))
  out.writeUInt16BE(0, 10)
  return out
}

function appendAdditional(base: Buffer, ...rrs: Buffer[]): Buffer {
  const out = Buffer.concat([base, ...rrs])
  if (out.length >= 12) bumpCount(out, 10, rrs.length)
  return out
}

// ---------------------------------------------------------------------------------------------
// Mutators

export type Mutator = (rng: Rng, b: Buffer, ctx: MutationContext) => Buffer

export interface MutationContext {
  /** Another corpus query, for splicing. */
  readonly other: () => Buffer
  /** Largest packet the transport can carry. */
  readonly maxSize: number
}

const INTERESTING = [0, 1, 0x3f, 0x40, 0x7f, 0x80, 0xbf, 0xc0, 0xc1, 0xfe, 0xff]

const bitFlip: Mutator = (rng, b) => {
  const out = Buffer.from(b)
  if (out.length === 0) return out
  const n = 1 + int(rng, 8)
  for (let k = 0; k < n; k++) out[int(rng, out.length)]! ^= 1 << int(rng, 8)
  return out
}

const byteReplace: Mutator = (rng, b) => {
  const out = Buffer.from(b)
  if (out.length === 0) return out
  const n = 1 + int(rng, 6)
  for (let k = 0; k < n; k++) out[int(rng, out.length)] = chance(rng, 0.5) ? pick(rng, INTERESTING) : int(rng, 256)
  return out
}

const truncate: Mutator = (rng, b) => {
  // Bias toward cuts inside the header and question, where the parser's bounds checks live.
  const at = chance(rng, 0.3) ? int(rng, Math.min(b.length, 20)) : int(rng, b.length + 1)
  return Buffer.from(b.subarray(0, at))
}

const insertBytes: Mutator = (rng, b) => {
  const at = int(rng, b.length + 1)
  const ins = chance(rng, 0.5) ? randomBytes(rng, 1 + int(rng, 32)) : Buffer.from([pick(rng, INTERESTING)])
  return Buffer.concat([b.subarray(0, at), ins, b.subarray(at)])
}

const deleteBytes: Mutator = (rng, b) => {
  if (b.length === 0) return Buffer.from(b)
  const at = int(rng, b.length)
  const n = 1 + int(rng, Math.min(16, b.length - at))
  return Buffer.concat([b.subarray(0, at), b.subarray(at + n)])
}

const headerCounts: Mutator = (rng, b) => {
  const out = Buffer.from(b)
  if (out.length < 12) return out
  const n = 1 + int(rng, 3)
  for (let k = 0; k < n; k++) {
    const field = pick(rng, [4, 6, 8, 10])
    out.writeUInt16BE(pick(rng, [0, 1, 2, 3, 0x7fff, 0x8000, 0xfffe, 0xffff, int(rng, 0x10000)]), field)
  }
  return out
}

const headerFlags: Mutator = (rng, b) => {
  const out = Buffer.from(b)
  if (out.length < 4) return out
  const r = rng()
  if (r < 0.4)
    out.writeUInt16BE((out.readUInt16BE(2) & ~0x7800) | (int(rng, 16) << 11), 2) // opcode
  else if (r < 0.6)
    out.writeUInt16BE(out.readUInt16BE(2) | (int(rng, 16) & 0x0f) | 0x0070, 2) // rcode + Z
  else if (r < 0.7)
    out.writeUInt16BE(out.readUInt16BE(2) | 0x8000, 2) // a response: must be dropped
  else out.writeUInt16BE(int(rng, 0x10000) & 0x7fff, 2)
  return out
}

const labelCorrupt: Mutator = (rng, b) => {
  const out = Buffer.from(b)
  const labels = labelOffsets(out)
  if (labels.length === 0) return byteReplace(rng, b, { other: () => b, maxSize: 512 })
  const at = pick(rng, labels)
  const len = out[at]!
  out[at] =
    pick(rng, [0, 1, 63, 64, 0x7f, 0x80, 0xbf, 0xc0, 0xff, len + 1, Math.max(0, len - 1), len + 20, len + 60]) & 0xff
  return out
}

const pointerInQuestion: Mutator = (rng, b) => {
  const labels = labelOffsets(b)
  const at = labels.length > 0 ? pick(rng, labels) : 12
  const target = pick(rng, [12, at, 0, 2, at + 2, at + 4, int(rng, Math.max(1, b.length)), 0x3fff])
  const rest = chance(rng, 0.5) ? b.subarray(at + 2) : b.subarray(questionEnd(b) > 0 ? questionEnd(b) - 4 : at)
  return Buffer.concat([b.subarray(0, at), pointer(target), rest])
}

/** Additional-section RRs whose owner names are compression pointer tricks. */
const pointerInAdditional: Mutator = (rng, b) => {
  const base = chance(rng, 0.7) ? withoutAdditional(b) : Buffer.from(b)
  const p = base.length
  const type = pick(rng, [41, 1, 16, 28, 250])
  const r = rng()
  if (r < 0.2) {
    // Self pointer.
    return appendAdditional(base, rr(pointer(p), type, 1, 0, Buffer.alloc(0)))
  }
  if (r < 0.4) {
    // A two-pointer loop inside the rdata of a first RR, and a second RR pointing into it.
    const loopAt = p + 11 // rdata of the first RR (root owner, 10 fixed bytes)
    const loop = Buffer.concat([pointer(loopAt + 2), pointer(loopAt)])
    return appendAdditional(
      base,
      rr(Buffer.from([0]), 16, 1, 0, loop),
      rr(pointer(loopAt), type, 1, 0, Buffer.alloc(0)),
    )
  }
  if (r < 0.6) {
    // A backward chain of 20..60 pointers: longer than any sane hop limit.
    const hops = 20 + int(rng, 41)
    const start = p + 11
    const chain: Buffer[] = [pointer(12)]
    for (let k = 1; k < hops; k++) chain.push(pointer(start + 2 * (k - 1)))
    const last = start + 2 * (hops - 1)
    return appendAdditional(
      base,
      rr(Buffer.from([0]), 16, 1, 0, Buffer.concat(chain)),
      rr(pointer(last), type, 1, 0, Buffer.alloc(0)),
    )
  }
  if (r < 0.8) {
    // Pointer to the question name, to the header, or forward past the end.
    const target = pick(rng, [12, 0, 4, p + 20, 0x3fff, int(rng, p)])
    const owner = chance(rng, 0.5) ? pointer(target) : Buffer.concat([Buffer.from([1, 0x61]), pointer(target)])
    return appendAdditional(base, rr(owner, type, 1, 0, Buffer.alloc(0)))
  }
  // OPT whose owner is a pointer to the root label of the question (legal compression, illegal OPT).
  const qe = questionEnd(base)
  return appendAdditional(base, rr(pointer(qe > 0 ? qe - 5 : 12), 41, 1232, 0, Buffer.alloc(0)))
}

const OPT_TRICKS: Array<(rng: Rng) => Buffer[]> = [
  // Two OPT records.
  () => [optRecord(1232, 0, 0, 0, Buffer.alloc(0)), optRecord(4096, 0, 0, 0, Buffer.alloc(0))],
  // Unknown EDNS versions.
  (rng) => [optRecord(1232, 0, pick(rng, [1, 2, 255]), 0, Buffer.alloc(0))],
  // Odd payload sizes and flags, extended rcode bits set.
  (rng) => [optRecord(pick(rng, [0, 1, 511, 65535]), int(rng, 256), 0, int(rng, 0x10000), Buffer.alloc(0))],
  // Option length running past RDLENGTH.
  (rng) => [optRecord(1232, 0, 0, 0, option(pick(rng, [3, 8, 10, 12]), randomBytes(rng, 4), 200))],
  // A truncated option header.
  () => [optRecord(1232, 0, 0, 0, Buffer.from([0, 8, 0]))],
  // ECS: bad family, prefix too long, nonzero scope, wrong address length, stray bits, twice.
  (rng) => [optRecord(1232, 0, 0, 0, option(8, Buffer.from([0, pick(rng, [0, 3, 255]), 24, 0, 1, 2, 3])))],
  (rng) => [
    optRecord(
      1232,
      0,
      0,
      0,
      option(8, Buffer.concat([Buffer.from([0, 1, pick(rng, [33, 64, 255]), 0]), randomBytes(rng, 5)])),
    ),
  ],
  (rng) => [optRecord(1232, 0, 0, 0, option(8, Buffer.from([0, 2, 129, 0, ...randomBytes(rng, 17)])))],
  (rng) => [optRecord(1232, 0, 0, 0, option(8, Buffer.from([0, 1, 24, 1 + int(rng, 32), 198, 51, 100])))],
  (rng) => [
    optRecord(1232, 0, 0, 0, option(8, Buffer.from([0, 1, 24, 0, ...randomBytes(rng, pick(rng, [0, 2, 4, 16]))]))),
  ],
  () => [optRecord(1232, 0, 0, 0, option(8, Buffer.from([0, 1, 23, 0, 198, 51, 101])))],
  () => [optRecord(1232, 0, 0, 0, option(8, Buffer.from([0, 1])))],
  (rng) => {
    const ecs = option(8, knownEcs(rng))
    return [optRecord(1232, 0, 0, 0, Buffer.concat([ecs, ecs]))]
  },
  // NSID with a payload, many options, a huge padding option.
  (rng) => [optRecord(1232, 0, 0, 0, option(3, randomBytes(rng, int(rng, 64))))],
  (rng) => [
    optRecord(
      1232,
      0,
      0,
      0,
      Buffer.concat(Array.from({ length: 50 + int(rng, 500) }, () => option(3, Buffer.alloc(0)))),
    ),
  ],
  (rng) => [optRecord(4096, 0, 0, 0x8000, option(12, Buffer.alloc(500 + int(rng, 3000))))],
  // RDLENGTH that lies about the options.
  (rng) => {
    const o = optRecord(1232, 0, 0, 0, option(3, Buffer.alloc(0)))
    o.writeUInt16BE(pick(rng, [0, 1, 3, 5, 100, 0xffff]), 9)
    return [o]
  },
  // OPT with a non-root owner.
  () => [Buffer.concat([Buffer.from([1, 0x61]), optRecord(1232, 0, 0, 0, Buffer.alloc(0))])],
]

const optMutation: Mutator = (rng, b) => {
  const base = withoutAdditional(b)
  const rrs = pick(rng, OPT_TRICKS)(rng)
  if (chance(rng, 0.15) && base.length >= 12) {
    // OPT in the answer or authority section instead.
    const out = Buffer.concat([base, ...rrs])
    bumpCount(out, pick(rng, [6, 8]), rrs.length)
    return out
  }
  return appendAdditional(base, ...rrs)
}

/** Pads to a large size: trailing junk, a huge OPT, or hundreds of RRs with ARCOUNT to match. */
const oversize: Mutator = (rng, b, ctx) => {
  const target = chance(rng, 0.7) ? 512 + int(rng, 4096) : int(rng, ctx.maxSize)
  const room = Math.max(0, target - b.length)
  const r = rng()
  if (r < 0.35) return Buffer.concat([b, chance(rng, 0.5) ? Buffer.alloc(room) : randomBytes(rng, room)])
  const base = withoutAdditional(b)
  if (r < 0.6) {
    const size = Math.max(0, Math.min(0xffff - 15, target - base.length - 15))
    return appendAdditional(base, optRecord(65535, 0, 0, 0x8000, option(12, Buffer.alloc(size))))
  }
  const rrs: Buffer[] = []
  let size = base.length
  const owner = chance(rng, 0.5) ? pointer(12) : Buffer.from([0])
  while (size < target && rrs.length < 0xfffe) {
    const one = rr(owner, pick(rng, [1, 16, 255, 41]), 1, 0, randomBytes(rng, int(rng, 8)))
    rrs.push(one)
    size += one.length
  }
  if (size > ctx.maxSize) rrs.pop()
  return appendAdditional(base, ...rrs)
}

const garbage: Mutator = (rng, _b, ctx) => {
  const n = chance(rng, 0.9) ? int(rng, 600) : int(rng, ctx.maxSize)
  const out = randomBytes(rng, n)
  // Keep QR clear most of the time so the parser gets past the header.
  if (out.length > 2 && chance(rng, 0.8)) out[2]! &= 0x7f
  return out
}

const splice: Mutator = (rng, b, ctx) => {
  const o = ctx.other()
  const at = int(rng, Math.min(b.length, o.length) + 1)
  return chance(rng, 0.5)
    ? Buffer.concat([b.subarray(0, at), o.subarray(at)])
    : Buffer.concat([b, o.subarray(int(rng, o.length + 1))])
}

/** Weighted list: structure-aware mutators get a larger share than blind ones. */
const MUTATORS: ReadonlyArray<readonly [Mutator, number, string]> = [
  [bitFlip, 12, 'bitflip'],
  [byteReplace, 12, 'bytes'],
  [truncate, 8, 'truncate'],
  [insertBytes, 6, 'insert'],
  [deleteBytes, 6, 'delete'],
  [headerCounts, 10, 'counts'],
  [headerFlags, 5, 'flags'],
  [labelCorrupt, 10, 'label'],
  [pointerInQuestion, 7, 'qptr'],
  [pointerInAdditional, 9, 'arptr'],
  [optMutation, 12, 'opt'],
  [oversize, 3, 'oversize'],
  [garbage, 4, 'garbage'],
  [splice, 4, 'splice'],
]
const MUTATOR_TOTAL = MUTATORS.reduce((s, m) => s + m[1], 0)

function pickMutator(rng: Rng): readonly [Mutator, number, string] {
  let r = rng() * MUTATOR_TOTAL
  for (const m of MUTATORS) {
    r -= m[1]
    if (r < 0) return m
  }
  return MUTATORS[0]!
}

export interface FuzzPacket {
  readonly bytes: Buffer
  /** Mutators applied, for the failure report ('valid' when none). */
  readonly how: string
}

/** One fuzz input: 1..3 stacked mutations of a valid query (sometimes none), capped at `maxSize`. */
export function fuzzPacket(rng: Rng, maxSize: number): FuzzPacket {
  const base = validQuery(rng).bytes
  if (chance(rng, 0.05)) return { bytes: base, how: 'valid' }
  const ctx: MutationContext = { other: () => validQuery(rng).bytes, maxSize }
  let b = base
  const names: string[] = []
  const n = 1 + (chance(rng, 0.3) ? int(rng, 3) : 0)
  for (let k = 0; k < n; k++) {
    const [m, , name] = pickMutator(rng)
    b = m(rng, b, ctx)
    names.push(name)
  }
  if (b.length > maxSize) b = Buffer.from(b.subarray(0, maxSize))
  return { bytes: b, how: names.join('+') }
}

/** A query the server must drop silently: shorter than a header, or a response (QR set). */
export function mustDrop(b: Buffer): boolean {
  return b.length < 12 || (b[2]! & 0x80) !== 0
}

// ---------------------------------------------------------------------------------------------
// Response checks

export const RCODE_NAMES: Readonly<Record<number, string>> = {
  0: 'NOERROR',
  1: 'FORMERR',
  2: 'SERVFAIL',
  3: 'NXDOMAIN',
  4: 'NOTIMP',
  5: 'REFUSED',
  16: 'BADVERS',
}

export interface Verdict {
  /** Full 12-bit rcode (header rcode plus the OPT's extended bits), or -1 when undecodable. */
  readonly rcode: number
  readonly message: dnsPacket.Packet | undefined
  /** What is wrong with the response, if anything. */
  readonly problem: string | undefined
}

/**
 * Checks a response to `query`: a well-formed DNS message, QR set, same ID and opcode, a known
 * rcode, and within the UDP size limits (512 without OPT, 1232 with). With `query` null (a TCP
 * stream desynchronised on purpose) the ID and opcode are not compared.
 */
export function checkResponse(query: Buffer | null, resp: Buffer, transport: 'udp' | 'tcp'): Verdict {
  if (resp.length < 12) return { rcode: -1, message: undefined, problem: `response of ${resp.length} bytes` }
  const flags = resp.readUInt16BE(2)
  const fail = (problem: string, rcode = flags & 0xf, message?: dnsPacket.Packet): Verdict => ({
    rcode,
    message,
    problem,
  })
  if ((flags & 0x8000) === 0) return fail('QR not set')
  if (query !== null && query.length >= 2 && resp.readUInt16BE(0) !== query.readUInt16BE(0)) {
    return fail(`ID ${resp.readUInt16BE(0)} for query ID ${query.readUInt16BE(0)}`)
  }
  if (query !== null && query.length >= 4 && ((flags >> 11) & 0xf) !== ((query.readUInt16BE(2) >> 11) & 0xf)) {
    return fail(`opcode ${(flags >> 11) & 0xf} for query opcode ${(query.readUInt16BE(2) >> 11) & 0xf}`)
  }
  let message: dnsPacket.Packet
  try {
    message = dnsPacket.decode(resp)
  } catch (err) {
    return fail(`undecodable response (${(err as Error).message})`)
  }
  const opts = (message.additionals ?? []).filter((a) => a.type === 'OPT') as Array<{ extendedRcode?: number }>
  if (opts.length > 1) return fail('more than one OPT in the response', flags & 0xf, message)
  const rcode = ((opts[0]?.extendedRcode ?? 0) << 4) | (flags & 0xf)
  if (!(rcode in RCODE_NAMES)) return fail(`unexpected rcode ${rcode}`, rcode, message)
  if (transport === 'udp') {
    const limit = opts.length > 0 ? 1232 : 512
    if (resp.length > limit) return fail(`${resp.length}-byte UDP response (limit ${limit})`, rcode, message)
  }
  return { rcode, message, problem: undefined }
}

export const hex = (b: Buffer, max = 300): string =>
  b.length > max ? `${b.subarray(0, max).toString('hex')}...(${b.length} bytes)` : b.toString('hex')

// ---------------------------------------------------------------------------------------------
// Clients

/**
 * A pool of UDP sockets, each with at most one query in flight, so a reply belongs to the query
 * its socket sent. A socket that timed out is replaced, so a late reply cannot be mistaken for the
 * next query's. Replies arriving on an idle socket are counted as strays (duplicate answers).
 */
export class UdpPool {
  strays = 0
  readonly #port: number
  readonly #free: UdpSocket[] = []
  readonly #waiting: Array<(s: UdpSocket) => void> = []
  readonly #pending = new Map<UdpSocket, (reply: Buffer) => void>()
  readonly #all = new Set<UdpSocket>()

  private constructor(port: number) {
    this.#port = port
  }

  static async open(port: number, size: number): Promise<UdpPool> {
    const pool = new UdpPool(port)
    for (let i = 0; i < size; i++) pool.#free.push(await pool.#socket())
    return pool
  }

  #socket(): Promise<UdpSocket> {
    const s = createSocket('udp4')
    this.#all.add(s)
    s.on('error', () => {})
    s.on('message', (reply) => {
      const done = this.#pending.get(s)
      if (done === undefined) this.strays++
      else {
        this.#pending.delete(s)
        done(reply)
      }
    })
    return new Promise((resolve) => s.bind(0, '127.0.0.1', () => resolve(s)))
  }

  #release(s: UdpSocket): void {
    const w = this.#waiting.shift()
    if (w) w(s)
    else this.#free.push(s)
  }

  /** Sends `msg` and resolves with the reply, or null after `timeoutMs` of silence. */
  async exchange(msg: Buffer, timeoutMs: number): Promise<Buffer | null> {
    const s = this.#free.pop() ?? (await new Promise<UdpSocket>((r) => this.#waiting.push(r)))
    const reply = await new Promise<Buffer | null>((resolve) => {
      const timer = setTimeout(() => {
        this.#pending.delete(s)
        resolve(null)
      }, timeoutMs)
      this.#pending.set(s, (r) => {
        clearTimeout(timer)
        resolve(r)
      })
      s.send(msg, this.#port, '127.0.0.1')
    })
    if (reply === null) {
      this.#all.delete(s)
      s.close()
      this.#release(await this.#socket())
    } else {
      this.#release(s)
    }
    return reply
  }

  close(): void {
    for (const s of this.#all) s.close()
    this.#all.clear()
  }
}

/** A TCP connection that collects framed replies in order; `next(n)` waits for n of them. */
export interface FramedConnection {
  readonly socket: Socket
  readonly isClosed: () => boolean
  write(data: Buffer): void
  next(n: number, timeoutMs: number): Promise<Buffer[]>
  /** Waits until no reply arrived for `quietMs` (or `maxMs` passed, or the server closed). */
  drain(quietMs: number, maxMs: number): Promise<Buffer[]>
}

export async function framedConnection(port: number): Promise<FramedConnection> {
  const socket = connect({ port, host: '127.0.0.1', noDelay: true })
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve())
    socket.once('error', reject)
  })
  let buf: Buffer = Buffer.alloc(0)
  let closed = false
  let lastReply = Date.now()
  const replies: Buffer[] = []
  let wake: (() => void) | undefined
  socket.on('data', (d: Buffer) => {
    buf = buf.length === 0 ? d : Buffer.concat([buf, d])
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      const len = buf.readUInt16BE(0)
      replies.push(Buffer.from(buf.subarray(2, 2 + len)))
      buf = buf.subarray(2 + len)
    }
    lastReply = Date.now()
    wake?.()
  })
  socket.on('error', () => {})
  socket.on('close', () => {
    closed = true
    wake?.()
  })
  const tick = (ms: number) =>
    new Promise<void>((r) => {
      const t = setTimeout(r, ms)
      wake = () => {
        clearTimeout(t)
        r()
      }
    })
  return {
    socket,
    isClosed: () => closed,
    write: (data) => {
      if (!closed) socket.write(data)
    },
    async next(n, timeoutMs) {
      const deadline = Date.now() + timeoutMs
      while (replies.length < n && !closed && Date.now() < deadline) await tick(Math.min(50, deadline - Date.now()))
      return replies.splice(0, n)
    },
    async drain(quietMs, maxMs) {
      const deadline = Date.now() + maxMs
      lastReply = Date.now()
      while (!closed && Date.now() < deadline && Date.now() - lastReply < quietMs) await tick(quietMs)
      return replies.splice(0)
    },
  }
}

/** Frames with a 2-byte length prefix; `lie` replaces the prefix with another value. */
export function frameOne(msg: Buffer, lie?: number): Buffer {
  const h = Buffer.alloc(2)
  h.writeUInt16BE(lie ?? msg.length)
  return Buffer.concat([h, msg])
}
