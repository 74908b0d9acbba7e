/**
 * @module zone/rdata
 * Presentation-format rdata (the fields after the type on a master-file line) to canonical
 * uncompressed wire rdata, and back again for logs and tests. Every known type has its own small
 * parser; any type, known or not, may also be written in the RFC 3597 generic form
 * `\# <length> <hex...>`. Names inside rdata go through our own name parser (escapes, `@`,
 * relative names); dns-packet encodes the types whose fields are plain numbers and byte strings.
 */

import { isIPv4, isIPv6 } from 'node:net'
import dnsPacket from 'dns-packet'
import { ipv4Bytes, ipv6Bytes } from '../dns/address.ts'
import type { Name } from '../dns/name.ts'
import { nameToString, parseName } from '../dns/name.ts'
import { T, typeName } from '../dns/types.ts'
import type { SourcePos } from '../errors.ts'
import { NameError, ZoneError } from '../errors.ts'
import type { Token } from './masterfile.ts'

/** dns-packet's per-type encoders are not in its type definitions; these are the ones we call. */
interface Codec<D> {
  encode(data: D): Buffer
}
interface DnsPacketCodecs {
  readonly txt: Codec<Buffer[]>
  readonly ds: Codec<{ keyTag: number; algorithm: number; digestType: number; digest: Buffer }>
  readonly sshfp: Codec<{ algorithm: number; hash: number; fingerprint: string }>
  readonly tlsa: Codec<{ usage: number; selector: number; matchingType: number; certificate: Buffer }>
}
const codecs = dnsPacket as unknown as DnsPacketCodecs

/** dns-packet's encoders prefix the rdata with its 2-byte length; we store rdata without it. */
const stripLength = (withLength: Buffer): Buffer => withLength.subarray(2)

const MAX_RDATA = 0xffff
const MAX_U32 = 0xffffffff
const GENERIC = '\\#'

/** Everything a field parser needs to read one field and to blame it precisely. */
interface Ctx {
  readonly type: number
  readonly mnemonic: string
  readonly fields: readonly Token[]
  readonly origin: Name | undefined
  readonly pos: SourcePos
}

/**
 * Parses the rdata fields of one record of `type` into wire rdata (no length prefix).
 * Relative names are completed with `origin`; without one they are an error.
 * @throws ZoneError naming the field at fault (`A address`, `MX preference`, `rdata`, ...).
 */
export function parseRdata(type: number, fields: readonly Token[], origin: Name | undefined, pos: SourcePos): Buffer {
  const ctx: Ctx = { type, mnemonic: typeName(type), fields, origin, pos }
  const first = fields[0]
  const rdata =
    first !== undefined && !first.quoted && first.text === GENERIC ? parseGeneric(ctx) : parsePresentation(ctx)
  ensureFits(ctx, rdata.length)
  return rdata
}

/** dns-packet writes the rdata length as 16 bits, so sizes are checked before encoding too. */
function ensureFits(ctx: Ctx, size: number): void {
  if (size > MAX_RDATA) {
    throw new ZoneError(ctx.pos, 'rdata', `${ctx.mnemonic} rdata is ${size} bytes, more than ${MAX_RDATA}`)
  }
}

function parsePresentation(ctx: Ctx): Buffer {
  switch (ctx.type) {
    case T.A:
      expectFields(ctx, ['address'])
      return ipv4(ctx, 0)
    case T.AAAA:
      expectFields(ctx, ['address'])
      return ipv6(ctx, 0)
    case T.NS:
    case T.CNAME:
    case T.PTR:
    case T.DNAME:
      expectFields(ctx, ['target'])
      return name(ctx, 0, 'target')
    case T.SOA:
      return soa(ctx)
    case T.MX:
      expectFields(ctx, ['preference', 'exchange'])
      return Buffer.concat([u16(ctx, 0, 'preference'), name(ctx, 1, 'exchange')])
    case T.TXT:
    case T.SPF:
      return txt(ctx)
    case T.SRV:
      expectFields(ctx, ['priority', 'weight', 'port', 'target'])
      return Buffer.concat([
        u16(ctx, 0, 'priority'),
        u16(ctx, 1, 'weight'),
        u16(ctx, 2, 'port'),
        name(ctx, 3, 'target'),
      ])
    case T.CAA:
      return caa(ctx)
    case T.HINFO:
      expectFields(ctx, ['cpu', 'os'])
      return Buffer.concat([characterString(ctx, 0, 'cpu'), characterString(ctx, 1, 'os')])
    case T.NAPTR:
      expectFields(ctx, ['order', 'preference', 'flags', 'services', 'regexp', 'replacement'])
      return Buffer.concat([
        u16(ctx, 0, 'order'),
        u16(ctx, 1, 'preference'),
        characterString(ctx, 2, 'flags'),
        characterString(ctx, 3, 'services'),
        characterString(ctx, 4, 'regexp'),
        name(ctx, 5, 'replacement'),
      ])
    case T.DS:
      return ds(ctx)
    case T.SSHFP:
      return sshfp(ctx)
    case T.TLSA:
      return tlsa(ctx)
    default:
      throw new ZoneError(
        ctx.pos,
        'rdata',
        `no presentation format is known for ${ctx.mnemonic}; use RFC 3597 syntax: \\# <length> <hex>`,
      )
  }
}

// ---------------------------------------------------------------------------------------------
// Per-type parsers that need more than a fixed list of fields

function soa(ctx: Ctx): Buffer {
  expectFields(ctx, ['mname', 'rname', 'serial', 'refresh', 'retry', 'expire', 'minimum'])
  const numbers = Buffer.alloc(20)
  numbers.writeUInt32BE(integer(ctx, 2, 'serial', MAX_U32), 0)
  const timers = ['refresh', 'retry', 'expire', 'minimum']
  for (let k = 0; k < timers.length; k++) {
    numbers.writeUInt32BE(duration(ctx, 3 + k, timers[k]!), 4 + 4 * k)
  }
  return Buffer.concat([name(ctx, 0, 'mname'), name(ctx, 1, 'rname'), numbers])
}

function txt(ctx: Ctx): Buffer {
  if (ctx.fields.length === 0) {
    throw new ZoneError(ctx.pos, 'rdata', `${ctx.mnemonic} needs at least one character-string, got none`)
  }
  const strings: Buffer[] = []
  let size = 0
  for (let i = 0; i < ctx.fields.length; i++) {
    const bytes = stringBytes(ctx, i, 'string')
    strings.push(bytes)
    size += 1 + bytes.length
  }
  ensureFits(ctx, size)
  return stripLength(codecs.txt.encode(strings))
}

const CAA_TAG = /^[A-Za-z0-9]+$/

function caa(ctx: Ctx): Buffer {
  expectFields(ctx, ['flags', 'tag', 'value'])
  const flags = integer(ctx, 0, 'flags', 0xff)
  const tagToken = ctx.fields[1]!
  if (!CAA_TAG.test(tagToken.text) || tagToken.text.length > 255) {
    throw fieldError(ctx, 'tag', `expected 1 to 255 ASCII letters and digits, got ${quote(tagToken.text)}`)
  }
  const tag = Buffer.from(tagToken.text, 'latin1')
  const value = unescapeField(ctx, 2, 'value')
  return Buffer.concat([Buffer.of(flags, tag.length), tag, value])
}

/** Digest lengths fixed by the DS digest type registry (RFC 4034, 4509, 5933, 6605). */
const DS_DIGEST_LENGTHS: Readonly<Record<number, number>> = { 1: 20, 2: 32, 3: 32, 4: 48 }

function ds(ctx: Ctx): Buffer {
  expectAtLeast(ctx, ['key-tag', 'algorithm', 'digest-type', 'digest'])
  const keyTag = integer(ctx, 0, 'key tag', 0xffff)
  const algorithm = integer(ctx, 1, 'algorithm', 0xff)
  const digestType = integer(ctx, 2, 'digest type', 0xff)
  const digest = hexFields(ctx, 3, 'digest')
  checkDigestLength(ctx, 'digest', digest, DS_DIGEST_LENGTHS[digestType], `digest type ${digestType}`)
  ensureFits(ctx, 4 + digest.length)
  return stripLength(codecs.ds.encode({ keyTag, algorithm, digestType, digest }))
}

/** SSHFP fingerprint types (RFC 4255, 6594): dns-packet knows exactly these two. */
const SSHFP_LENGTHS: Readonly<Record<number, number>> = { 1: 20, 2: 32 }

function sshfp(ctx: Ctx): Buffer {
  expectAtLeast(ctx, ['algorithm', 'fingerprint-type', 'fingerprint'])
  const algorithm = integer(ctx, 0, 'algorithm', 0xff)
  const hash = integer(ctx, 1, 'fingerprint type', 0xff)
  const fingerprint = hexFields(ctx, 2, 'fingerprint')
  const want = SSHFP_LENGTHS[hash]
  if (want === undefined) {
    throw fieldError(
      ctx,
      'fingerprint type',
      `expected 1 (SHA-1) or 2 (SHA-256), got ${hash}; write other types in RFC 3597 syntax: \\# <length> <hex>`,
    )
  }
  checkDigestLength(ctx, 'fingerprint', fingerprint, want, `fingerprint type ${hash}`)
  return stripLength(codecs.sshfp.encode({ algorithm, hash, fingerprint: fingerprint.toString('hex') }))
}

/** TLSA matching types with a fixed digest length (RFC 6698: 1 = SHA-256, 2 = SHA-512). */
const TLSA_LENGTHS: Readonly<Record<number, number>> = { 1: 32, 2: 64 }

function tlsa(ctx: Ctx): Buffer {
  expectAtLeast(ctx, ['usage', 'selector', 'matching-type', 'data'])
  const usage = integer(ctx, 0, 'usage', 0xff)
  const selector = integer(ctx, 1, 'selector', 0xff)
  const matchingType = integer(ctx, 2, 'matching type', 0xff)
  const certificate = hexFields(ctx, 3, 'data')
  checkDigestLength(ctx, 'data', certificate, TLSA_LENGTHS[matchingType], `matching type ${matchingType}`)
  ensureFits(ctx, 3 + certificate.length)
  return stripLength(codecs.tlsa.encode({ usage, selector, matchingType, certificate }))
}

function checkDigestLength(ctx: Ctx, field: string, data: Buffer, want: number | undefined, what: string): void {
  if (want !== undefined && data.length !== want) {
    throw fieldError(ctx, field, `${what} needs ${want} bytes (${want * 2} hex digits), got ${data.length}`)
  }
}

// ---------------------------------------------------------------------------------------------
// RFC 3597 generic rdata

function parseGeneric(ctx: Ctx): Buffer {
  const lenToken = ctx.fields[1]
  if (lenToken === undefined) {
    throw new ZoneError(ctx.pos, 'rdata', 'RFC 3597 rdata needs a length after \\#, then the hex data')
  }
  if (!/^\d{1,5}$/.test(lenToken.text) || Number(lenToken.text) > MAX_RDATA) {
    throw new ZoneError(ctx.pos, 'rdata', `expected an RFC 3597 length 0..65535 after \\#, got ${quote(lenToken.text)}`)
  }
  const length = Number(lenToken.text)
  const data = ctx.fields.length > 2 ? hexFields(ctx, 2, 'rdata') : Buffer.alloc(0)
  if (data.length !== length) {
    throw new ZoneError(ctx.pos, 'rdata', `\\# says ${length} bytes but the hex holds ${data.length}`)
  }
  const problem = wireProblem(ctx.type, data)
  if (problem !== undefined) throw new ZoneError(ctx.pos, 'rdata', `bad ${ctx.mnemonic} rdata in \\# form: ${problem}`)
  return data
}

/** Structural check of wire rdata for the types we know; undefined when it is well formed. */
function wireProblem(type: number, rd: Buffer): string | undefined {
  const exact = (end: number, what: string): string | undefined =>
    end === rd.length ? undefined : end < 0 ? `malformed ${what}` : `${rd.length - end} bytes after the ${what}`
  switch (type) {
    case T.A:
      return rd.length === 4 ? undefined : `expected 4 bytes, got ${rd.length}`
    case T.AAAA:
      return rd.length === 16 ? undefined : `expected 16 bytes, got ${rd.length}`
    case T.NS:
    case T.CNAME:
    case T.PTR:
    case T.DNAME:
      return exact(skipName(rd, 0), 'name')
    case T.MX:
      return exact(rd.length < 2 ? -1 : skipName(rd, 2), 'preference and exchange')
    case T.SRV:
      return exact(rd.length < 6 ? -1 : skipName(rd, 6), 'priority, weight, port and target')
    case T.SOA: {
      const names = skipName(rd, skipName(rd, 0))
      return exact(names < 0 ? -1 : names + 20, 'names and 5 numbers')
    }
    case T.TXT:
    case T.SPF: {
      if (rd.length === 0) return 'no character-string'
      let off = 0
      while (off >= 0 && off < rd.length) off = skipString(rd, off)
      return exact(off, 'character-strings')
    }
    case T.HINFO:
      return exact(skipString(rd, skipString(rd, 0)), 'cpu and os strings')
    case T.NAPTR: {
      const strings = rd.length < 4 ? -1 : skipString(rd, skipString(rd, skipString(rd, 4)))
      return exact(skipName(rd, strings), 'order, preference, 3 strings and replacement')
    }
    case T.CAA: {
      const tagLen = rd[1] ?? 0
      if (rd.length < 2 || tagLen === 0 || 2 + tagLen > rd.length) return 'malformed flags and tag'
      return CAA_TAG.test(rd.toString('latin1', 2, 2 + tagLen)) ? undefined : 'tag is not letters and digits'
    }
    case T.DS:
      return rd.length >= 5 ? undefined : 'shorter than key tag, algorithm, digest type and a digest'
    case T.SSHFP:
      return rd.length >= 3 ? undefined : 'shorter than algorithm, fingerprint type and a fingerprint'
    case T.TLSA:
      return rd.length >= 4 ? undefined : 'shorter than usage, selector, matching type and data'
    default:
      return undefined
  }
}

/** Offset just past an uncompressed wire name starting at `off`, or -1 when malformed. */
function skipName(buf: Buffer, off: number): number {
  if (off < 0) return -1
  const start = off
  for (;;) {
    const len = buf[off]
    if (len === undefined || len > 63) return -1
    off += len + 1
    if (off - start > 255 || off > buf.length) return -1
    if (len === 0) return off
  }
}

/** Offset just past a character-string starting at `off`, or -1 when malformed. */
function skipString(buf: Buffer, off: number): number {
  if (off < 0 || off >= buf.length) return -1
  const end = off + 1 + buf[off]!
  return end > buf.length ? -1 : end
}

// ---------------------------------------------------------------------------------------------
// Field readers

function fieldError(ctx: Ctx, field: string, detail: string): ZoneError {
  return new ZoneError(ctx.pos, `${ctx.mnemonic} ${field}`, detail)
}

function quote(text: string): string {
  return JSON.stringify(text)
}

function expectFields(ctx: Ctx, names: readonly string[]): void {
  if (ctx.fields.length !== names.length) {
    const what = names.length === 1 ? '1 field' : `${names.length} fields`
    throw new ZoneError(
      ctx.pos,
      'rdata',
      `${ctx.mnemonic} needs ${what} (${names.join(' ')}), got ${ctx.fields.length}`,
    )
  }
}

function expectAtLeast(ctx: Ctx, names: readonly string[]): void {
  if (ctx.fields.length < names.length) {
    throw new ZoneError(
      ctx.pos,
      'rdata',
      `${ctx.mnemonic} needs at least ${names.length} fields (${names.join(' ')}), got ${ctx.fields.length}`,
    )
  }
}

function integer(ctx: Ctx, i: number, field: string, max: number): number {
  const text = ctx.fields[i]!.text
  const value = /^\d{1,10}$/.test(text) ? Number(text) : Number.NaN
  if (!(value <= max)) throw fieldError(ctx, field, `expected an integer 0..${max}, got ${quote(text)}`)
  return value
}

function u16(ctx: Ctx, i: number, field: string): Buffer {
  const out = Buffer.alloc(2)
  out.writeUInt16BE(integer(ctx, i, field, 0xffff))
  return out
}

function duration(ctx: Ctx, i: number, field: string): number {
  const text = ctx.fields[i]!.text
  const value = parseTtl(text, MAX_U32)
  if (value === undefined) {
    throw fieldError(ctx, field, `expected seconds 0..${MAX_U32} or BIND units like 1h30m, got ${quote(text)}`)
  }
  return value
}

function name(ctx: Ctx, i: number, field: string): Buffer {
  const token = ctx.fields[i]!
  // A quoted "@" is a label holding the character @, not the origin.
  const text = token.quoted && token.text === '@' ? '\\@' : token.text
  try {
    return parseName(text, ctx.origin).wire
  } catch (e) {
    if (e instanceof NameError) throw fieldError(ctx, field, e.message)
    throw e
  }
}

function ipv4(ctx: Ctx, i: number): Buffer {
  const text = ctx.fields[i]!.text
  if (!isIPv4(text)) throw fieldError(ctx, 'address', `expected an IPv4 address, got ${quote(text)}`)
  return ipv4Bytes(text)
}

function ipv6(ctx: Ctx, i: number): Buffer {
  const text = ctx.fields[i]!.text
  if (!isIPv6(text) || text.includes('%')) {
    throw fieldError(ctx, 'address', `expected an IPv6 address, got ${quote(text)}`)
  }
  return ipv6Bytes(text)
}

/** Raw bytes of a field with `\X` and `\DDD` escapes resolved. */
function unescapeField(ctx: Ctx, i: number, field: string): Buffer {
  const bytes = unescapeText(ctx.fields[i]!.text)
  if (typeof bytes === 'string') throw fieldError(ctx, field, bytes)
  return bytes
}

/** Bytes of one character-string (at most 255 after unescaping). */
function stringBytes(ctx: Ctx, i: number, field: string): Buffer {
  const bytes = unescapeField(ctx, i, field)
  if (bytes.length > 255) {
    throw fieldError(ctx, field, `character-string is ${bytes.length} bytes after unescaping, more than 255`)
  }
  return bytes
}

/** A character-string with its length byte. */
function characterString(ctx: Ctx, i: number, field: string): Buffer {
  const bytes = stringBytes(ctx, i, field)
  return Buffer.concat([Buffer.of(bytes.length), bytes])
}

/**
 * Resolves `\X` (the byte of X) and `\DDD` (a decimal byte) escapes. Text outside escapes is
 * taken as UTF-8. Returns the problem as a string when an escape is malformed.
 */
export function unescapeText(text: string): Buffer | string {
  const raw = Buffer.from(text, 'utf8')
  if (!raw.includes(0x5c)) return raw
  const out = Buffer.alloc(raw.length)
  let n = 0
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!
    if (c !== 0x5c) {
      out[n++] = c
      continue
    }
    const d1 = raw[i + 1]
    if (d1 === undefined) return `dangling backslash at the end of ${quote(text)}`
    if (isDigit(d1)) {
      const d2 = raw[i + 2]
      const d3 = raw[i + 3]
      if (!isDigit(d2) || !isDigit(d3)) return `bad \\DDD escape (three decimal digits) in ${quote(text)}`
      const v = (d1 - 0x30) * 100 + (d2 - 0x30) * 10 + (d3 - 0x30)
      if (v > 255) return `\\DDD escape above 255 in ${quote(text)}`
      out[n++] = v
      i += 3
    } else {
      out[n++] = d1
      i += 1
    }
  }
  return out.subarray(0, n)
}

function isDigit(c: number | undefined): c is number {
  return c !== undefined && c >= 0x30 && c <= 0x39
}

/** Hex data that may be split over several whitespace-separated fields, from field `from` on. */
function hexFields(ctx: Ctx, from: number, field: string): Buffer {
  let hex = ''
  for (let i = from; i < ctx.fields.length; i++) hex += ctx.fields[i]!.text
  if (!/^[0-9A-Fa-f]*$/.test(hex) || hex.length % 2 !== 0) {
    const shown = hex.length > 40 ? hex.slice(0, 40) + '...' : hex
    const label = field === 'rdata' ? 'rdata' : `${ctx.mnemonic} ${field}`
    throw new ZoneError(ctx.pos, label, `expected an even number of hex digits, got ${quote(shown)}`)
  }
  return Buffer.from(hex, 'hex')
}

const TTL_PLAIN = /^\d+$/
const TTL_UNITS = /^(?:\d+[WwDdHhMmSs])+$/
const UNIT_SECONDS: Readonly<Record<string, number>> = { w: 604800, d: 86400, h: 3600, m: 60, s: 1 }

/**
 * A TTL or SOA timer: plain seconds, or BIND units like `1w2d3h4m5s` (case-insensitive; a
 * trailing number without a unit after units is rejected, as BIND does). Undefined when the text
 * is not a duration or exceeds `max`.
 */
export function parseTtl(text: string, max: number): number | undefined {
  let total: number
  if (TTL_PLAIN.test(text)) {
    total = Number(text)
  } else if (TTL_UNITS.test(text)) {
    total = 0
    for (const m of text.matchAll(/(\d+)([A-Za-z])/g)) {
      total += Number(m[1]) * UNIT_SECONDS[m[2]!.toLowerCase()]!
    }
  } else {
    return undefined
  }
  return total <= max ? total : undefined
}

// ---------------------------------------------------------------------------------------------
// Wire rdata back to presentation format

/**
 * Presentation format of wire rdata (for logs and tests). Types without a renderer here, and any
 * rdata that does not parse as its type, come out in RFC 3597 form `\# <length> <hex>`.
 */
export function rdataToString(type: number, rdata: Buffer): string {
  if (wireProblem(type, rdata) === undefined) {
    const text = renderKnown(type, rdata)
    if (text !== undefined) return text
  }
  return genericToString(rdata)
}

function genericToString(rdata: Buffer): string {
  return rdata.length === 0 ? '\\# 0' : `\\# ${rdata.length} ${rdata.toString('hex').toUpperCase()}`
}

/** Renders well-formed rdata (already checked by `wireProblem`). */
function renderKnown(type: number, rd: Buffer): string | undefined {
  const nameAt = (off: number): string => nameToString(rd.subarray(off, skipName(rd, off)))
  const stringAt = (off: number): string => quotedString(rd.subarray(off + 1, skipString(rd, off)))
  const hex = (off: number): string => rd.toString('hex', off).toUpperCase()
  switch (type) {
    case T.A:
      return rd.join('.')
    case T.AAAA:
      return ipv6ToString(rd)
    case T.NS:
    case T.CNAME:
    case T.PTR:
    case T.DNAME:
      return nameAt(0)
    case T.MX:
      return `${rd.readUInt16BE(0)} ${nameAt(2)}`
    case T.SRV:
      return `${rd.readUInt16BE(0)} ${rd.readUInt16BE(2)} ${rd.readUInt16BE(4)} ${nameAt(6)}`
    case T.SOA: {
      const rname = skipName(rd, 0)
      const nums = skipName(rd, rname)
      const n = [0, 1, 2, 3, 4].map((k) => rd.readUInt32BE(nums + 4 * k))
      return `${nameAt(0)} ${nameAt(rname)} ${n.join(' ')}`
    }
    case T.TXT:
    case T.SPF:
    case T.HINFO: {
      const parts: string[] = []
      for (let off = 0; off < rd.length; off = skipString(rd, off)) parts.push(stringAt(off))
      return parts.join(' ')
    }
    case T.NAPTR: {
      const services = skipString(rd, 4)
      const regexp = skipString(rd, services)
      const replacement = skipString(rd, regexp)
      const head = `${rd.readUInt16BE(0)} ${rd.readUInt16BE(2)}`
      return `${head} ${stringAt(4)} ${stringAt(services)} ${stringAt(regexp)} ${nameAt(replacement)}`
    }
    case T.CAA: {
      const tagEnd = 2 + rd[1]!
      return `${rd[0]} ${rd.toString('latin1', 2, tagEnd)} ${quotedString(rd.subarray(tagEnd))}`
    }
    case T.DS:
      return `${rd.readUInt16BE(0)} ${rd[2]} ${rd[3]} ${hex(4)}`
    case T.SSHFP:
      return `${rd[0]} ${rd[1]} ${hex(2)}`
    case T.TLSA:
      return `${rd[0]} ${rd[1]} ${rd[2]} ${hex(3)}`
    default:
      return undefined
  }
}

/** A quoted character-string: `"` and `\` backslash-escaped, other unprintable bytes as `\DDD`. */
function quotedString(bytes: Buffer): string {
  let out = '"'
  for (const c of bytes) {
    if (c === 0x22 || c === 0x5c) out += '\\' + String.fromCharCode(c)
    else if (c < 0x20 || c >= 0x7f) out += '\\' + String(c).padStart(3, '0')
    else out += String.fromCharCode(c)
  }
  return out + '"'
}

/** RFC 5952 text: lowercase, longest run of two or more zero groups as `::`, mapped IPv4 dotted. */
function ipv6ToString(rd: Buffer): string {
  const groups: number[] = []
  for (let k = 0; k < 8; k++) groups.push(rd.readUInt16BE(2 * k))
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${rd.subarray(12).join('.')}`
  }
  let bestStart = -1
  let bestLen = 1
  for (let k = 0; k < 8; ) {
    if (groups[k] !== 0) {
      k++
      continue
    }
    let end = k
    while (end < 8 && groups[end] === 0) end++
    if (end - k > bestLen) {
      bestStart = k
      bestLen = end - k
    }
    k = end
  }
  const hex = (gs: number[]): string => gs.map((g) => g.toString(16)).join(':')
  if (bestStart < 0) return hex(groups)
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`
}
