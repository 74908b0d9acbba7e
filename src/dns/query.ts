/**
 * @module dns/query
 * Reads a query straight from packet bytes: header, the single question, and the OPT record.
 * Nothing is decoded that the answer does not need, and the result lands in one reusable
 * `Query` object, because this runs for every packet (dns-packet's full decode allocates a tree
 * of objects per message; it stays for tests and slow paths).
 *
 * The parse returns a verdict instead of throwing, so the caller maps it to silence, FORMERR,
 * NOTIMP, ... with a flat switch (NSD `query_process()` style).
 */

export const ParseResult = {
  OK: 0,
  /** Not worth an answer: too short to hold a header, or a response (QR set). */
  DROP: 1,
  FORMERR: 2,
  NOTIMP: 3,
  /** EDNS version we do not speak (RFC 6891 section 6.1.3). */
  BADVERS: 4,
} as const
export type ParseResult = (typeof ParseResult)[keyof typeof ParseResult]

const MAX_LABELS = 128

/** Option codes we act on; every other option is ignored, as RFC 6891 requires. */
export const OPT_NSID = 3
export const OPT_ECS = 8

/** Mutable, reused per query: the hot path allocates only the lookup key string. */
export class Query {
  id = 0
  flags = 0
  opcode = 0
  /** Length of the question name in wire bytes (starts at offset 12). */
  qnameLen = 0
  /** Lowercased wire form of the question name as latin1: the zone lookup key. */
  key = ''
  /** `nameHash(key)`, computed while the name is read (zone/table's index by hash). */
  hash = 0
  /** Offsets into `key` where each label starts; `labelCount` entries are valid. */
  readonly labelOffsets = new Int32Array(MAX_LABELS)
  labelCount = 0
  qtype = 0
  qclass = 0
  /** True once the question was read, so error responses can echo it. */
  hasQuestion = false

  hasEdns = false
  ednsVersion = 0
  /** Requestor's UDP payload size (RFC 6891), raised to 512 when smaller. */
  udpSize = 512
  dnssecOk = false
  nsidRequested = false
  /** ECS (RFC 7871) as sent: family 0 means absent. */
  ecsFamily = 0
  ecsSourcePrefix = 0
  ecsScopePrefix = 0
  /** ECS address bytes (only the first ceil(source/8) are meaningful). */
  readonly ecsAddress = Buffer.alloc(16)

  reset(): void {
    this.qnameLen = 0
    this.key = ''
    this.hash = 0
    this.labelCount = 0
    this.qtype = 0
    this.qclass = 0
    this.hasQuestion = false
    this.hasEdns = false
    this.ednsVersion = 0
    this.udpSize = 512
    this.dnssecOk = false
    this.nsidRequested = false
    this.ecsFamily = 0
    this.ecsSourcePrefix = 0
    this.ecsScopePrefix = 0
  }

  get rd(): boolean {
    return (this.flags & 0x0100) !== 0
  }

  /** Key of the name with the first `skip` labels removed (`skip` < labelCount, or the root key). */
  suffixKey(skip: number): string {
    return skip >= this.labelCount ? '\0' : this.key.slice(this.labelOffsets[skip])
  }
}

/**
 * Skips one possibly-compressed name in an RR section. Returns the offset after it, or -1 when the
 * name runs off the packet, has a bad label type, or compression pointers loop.
 */
function skipName(buf: Buffer, offset: number): number {
  let hops = 0
  let end = -1
  let i = offset
  for (;;) {
    if (i >= buf.length) return -1
    const len = buf[i]!
    if (len === 0) return end === -1 ? i + 1 : end
    const kind = len & 0xc0
    if (kind === 0xc0) {
      if (i + 1 >= buf.length) return -1
      if (end === -1) end = i + 2
      // Only backward pointers are legal; together with the hop cap this stops every loop.
      const target = ((len & 0x3f) << 8) | buf[i + 1]!
      if (target >= i || ++hops > 32) return -1
      i = target
    } else if (kind !== 0) {
      return -1
    } else {
      i += len + 1
    }
  }
}

const HASH_SEED = 0x811c9dc5
const HASH_PRIME = 0x01000193
/** 30 bits: a small integer in V8 on every platform, so a Map keyed by it never boxes. */
const HASH_MASK = 0x3fffffff

/**
 * FNV-1a over a lookup key (the lowercased wire name as latin1, as `Query.key`), the same value
 * `parseQuery` computes into `Query.hash` from the packet's bytes; the closing root label counts
 * as the final step.
 */
export function nameHash(key: string): number {
  let h = HASH_SEED
  // The key ends with the root label's 0, which the parse loop stops at without hashing.
  for (let i = 0; i < key.length - 1; i++) h = Math.imul(h ^ key.charCodeAt(i), HASH_PRIME)
  return Math.imul(h, HASH_PRIME) & HASH_MASK
}

/** Where `questionHash` leaves the end of the name it hashed (reused: no object per call). */
export const questionSpan = { end: 0 }

/**
 * `Query.hash` of the question name of the message at buf[start..end), without parsing the rest
 * (the batch read-ahead, query/read-ahead.ts); -1 for a name parseQuery would not accept. The
 * offset just past the name goes to `questionSpan.end`.
 */
export function questionHash(buf: Uint8Array, start: number, end: number): number {
  let i = start + 12
  let h = HASH_SEED
  for (let labels = 0; ; labels++) {
    if (i >= end) return -1
    const len = buf[i]!
    if (len === 0) break
    if (len > 63 || labels >= MAX_LABELS || i + len + 1 >= end) return -1
    h = Math.imul(h ^ len, HASH_PRIME)
    for (let j = i + 1; j <= i + len; j++) {
      const c = buf[j]!
      h = Math.imul(h ^ (c >= 0x41 && c <= 0x5a ? c | 0x20 : c), HASH_PRIME)
    }
    i += len + 1
  }
  if (i + 1 - (start + 12) > 255) return -1
  questionSpan.end = i + 1
  return Math.imul(h, HASH_PRIME) & HASH_MASK
}

/** Latin1 text of buf[start..end) with only A-Z folded (toLowerCase would also fold latin1 letters). */
function foldAscii(buf: Buffer, start: number, end: number): string {
  let key = ''
  for (let j = start; j < end; j++) {
    const c = buf[j]!
    key += String.fromCharCode(c >= 0x41 && c <= 0x5a ? c | 0x20 : c)
  }
  return key
}

/** Parses `buf` into `q`. Only the verdict says whether the fields past the header are valid. */
export function parseQuery(buf: Buffer, q: Query): ParseResult {
  q.reset()
  if (buf.length < 12) return ParseResult.DROP
  q.id = buf.readUInt16BE(0)
  q.flags = buf.readUInt16BE(2)
  if (q.flags & 0x8000) return ParseResult.DROP
  q.opcode = (q.flags >> 11) & 0xf
  const qd = buf.readUInt16BE(4)
  const an = buf.readUInt16BE(6)
  const ns = buf.readUInt16BE(8)
  const ar = buf.readUInt16BE(10)
  // Other opcodes get NOTIMP, but only after the OPT is read: RFC 6891 6.1.1 wants OPT echoed even then.
  const notImp = q.opcode !== 0
  const bad = notImp ? ParseResult.NOTIMP : ParseResult.FORMERR
  if (qd > 1 || (qd === 0 && !notImp)) return bad

  let i = 12
  if (qd === 1) {
    // Question name: compression is not allowed here (nothing precedes it to point at).
    // The key is the wire name itself read as latin1 (length bytes are < 0x40, so they never
    // look like letters); only ASCII letters fold (RFC 4343), hence the byte scan for case.
    let upper = false
    let high = false
    let h = HASH_SEED
    for (;;) {
      if (i >= buf.length) return bad
      const len = buf[i]!
      if (len === 0) break
      if (len > 63 || q.labelCount >= MAX_LABELS) return bad
      if (i + len + 1 >= buf.length) return bad
      q.labelOffsets[q.labelCount++] = i - 12
      h = Math.imul(h ^ len, HASH_PRIME)
      for (let j = i + 1; j <= i + len; j++) {
        let c = buf[j]!
        if (c >= 0x41 && c <= 0x5a) {
          upper = true
          c |= 0x20
        } else if (c >= 0x80) high = true
        h = Math.imul(h ^ c, HASH_PRIME)
      }
      i += len + 1
    }
    q.hash = Math.imul(h, HASH_PRIME) & HASH_MASK
    i += 1
    q.qnameLen = i - 12
    if (q.qnameLen > 255 || i + 4 > buf.length) return bad
    if (!upper) q.key = buf.toString('latin1', 12, i)
    else if (!high) q.key = buf.toString('latin1', 12, i).toLowerCase()
    else q.key = foldAscii(buf, 12, i)
    q.qtype = buf.readUInt16BE(i)
    q.qclass = buf.readUInt16BE(i + 2)
    q.hasQuestion = true
    i += 4
  }

  // Answer and authority sections are unusual in a query; step over them to reach the OPT.
  let optSeen = false
  for (let r = 0; r < an + ns + ar; r++) {
    const nameStart = i
    i = skipName(buf, i)
    if (i < 0 || i + 10 > buf.length) return bad
    const type = buf.readUInt16BE(i)
    const rdlen = buf.readUInt16BE(i + 8)
    const rdata = i + 10
    if (rdata + rdlen > buf.length) return bad
    if (type === 41 /* OPT */) {
      // RFC 6891 6.1.1: only in the additional section, owner is the root, at most one.
      if (r < an + ns || optSeen || buf[nameStart] !== 0) return bad
      optSeen = true
      const res = parseOpt(buf, i, rdata, rdlen, q)
      if (res !== ParseResult.OK) return notImp ? ParseResult.NOTIMP : res
    }
    i = rdata + rdlen
  }
  if (notImp) return ParseResult.NOTIMP
  if (q.hasEdns && q.ednsVersion !== 0) return ParseResult.BADVERS
  return ParseResult.OK
}

function parseOpt(buf: Buffer, i: number, rdata: number, rdlen: number, q: Query): ParseResult {
  q.hasEdns = true
  const size = buf.readUInt16BE(i + 2)
  q.udpSize = Math.max(size, 512)
  q.ednsVersion = buf[i + 5]!
  q.dnssecOk = (buf[i + 6]! & 0x80) !== 0
  const end = rdata + rdlen
  let o = rdata
  while (o < end) {
    if (o + 4 > end) return ParseResult.FORMERR
    const code = buf.readUInt16BE(o)
    const len = buf.readUInt16BE(o + 2)
    o += 4
    if (o + len > end) return ParseResult.FORMERR
    if (code === OPT_NSID) {
      q.nsidRequested = true
    } else if (code === OPT_ECS) {
      if (q.ecsFamily !== 0 || !parseEcs(buf, o, len, q)) return ParseResult.FORMERR
    }
    o += len
  }
  return ParseResult.OK
}

/** RFC 7871 section 7.1.2: malformed ECS options are answered with FORMERR. */
function parseEcs(buf: Buffer, o: number, len: number, q: Query): boolean {
  if (len < 4) return false
  const family = buf.readUInt16BE(o)
  const source = buf[o + 2]!
  const scope = buf[o + 3]!
  const max = family === 1 ? 32 : family === 2 ? 128 : -1
  if (max < 0 || source > max || scope !== 0) return false
  const addrLen = (source + 7) >> 3
  if (len - 4 !== addrLen) return false
  // Byte loops: Buffer#fill and #copy cost more than the few bytes they would move here.
  const addr = q.ecsAddress
  for (let k = 0; k < 16; k++) addr[k] = k < addrLen ? buf[o + 4 + k]! : 0
  // Bits beyond the source prefix must be zero (section 6), so nobody smuggles extra precision.
  if (source % 8 !== 0 && (q.ecsAddress[addrLen - 1]! & (0xff >> (source % 8))) !== 0) return false
  q.ecsFamily = family
  q.ecsSourcePrefix = source
  q.ecsScopePrefix = scope
  return true
}
