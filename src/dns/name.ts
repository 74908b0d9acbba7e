/**
 * @module dns/name
 * Domain names as the server handles them: uncompressed wire bytes (kept in the case the zone
 * file wrote them) plus a lowercase key used for every comparison and map lookup. The key is the
 * lowercased wire form read as latin1, so a label holding a dot or any other byte stays
 * unambiguous, and the query path can build the same key straight from packet bytes.
 */

import { NameError } from '../errors.ts'

export interface Name {
  /** Uncompressed wire form, terminated by the root label (a single 0 byte). */
  readonly wire: Buffer
  /** Lowercased (ASCII only, RFC 4343) wire form as a latin1 string. */
  readonly key: string
  /** Number of labels, not counting the root. */
  readonly labels: number
}

const MAX_NAME = 255
const MAX_LABEL = 63

export const ROOT: Name = Object.freeze({ wire: Buffer.from([0]), key: '\0', labels: 0 })

/** Lowercases ASCII A-Z only: DNS case-insensitivity does not extend to other bytes. */
export function lowerKey(wire: Buffer, start = 0, end = wire.length): string {
  let upper = false
  let high = false
  for (let i = start; i < end; i++) {
    const c = wire[i]!
    if (c >= 0x41 && c <= 0x5a) upper = true
    else if (c >= 0x80) high = true
  }
  // One string, not one per byte: a zone load makes a key for every name it reads.
  const text = wire.toString('latin1', start, end)
  if (!upper) return text
  // toLowerCase would also fold latin1 letters above 0x7f, which DNS keeps as they are.
  if (!high) return text.toLowerCase()
  let out = ''
  for (let i = start; i < end; i++) {
    const c = wire[i]!
    out += String.fromCharCode(c >= 0x41 && c <= 0x5a ? c | 0x20 : c)
  }
  return out
}

/** Builds a Name from uncompressed wire bytes (validated by the caller or by `fromWire`). */
export function nameFromWire(wire: Buffer): Name {
  let labels = 0
  for (let i = 0; wire[i] !== 0; i += wire[i]! + 1) labels++
  return { wire, key: lowerKey(wire), labels }
}

/** Splits presentation text into raw label byte arrays, honouring `\.`, `\X` and `\DDD` escapes. */
function splitLabels(text: string): number[][] {
  const labels: number[][] = []
  let cur: number[] = []
  const bytes = Buffer.from(text, 'utf8')
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i]!
    if (c === 0x2e /* . */) {
      if (cur.length === 0) throw new NameError(`empty label in "${text}"`)
      labels.push(cur)
      cur = []
    } else if (c === 0x5c /* \ */) {
      const d1 = bytes[i + 1]
      if (d1 === undefined) throw new NameError(`dangling backslash in "${text}"`)
      if (d1 >= 0x30 && d1 <= 0x39) {
        const d2 = bytes[i + 2]
        const d3 = bytes[i + 3]
        const isDigit = (d: number | undefined): d is number => d !== undefined && d >= 0x30 && d <= 0x39
        if (!isDigit(d2) || !isDigit(d3)) throw new NameError(`bad \\DDD escape in "${text}"`)
        const v = (d1 - 0x30) * 100 + (d2 - 0x30) * 10 + (d3 - 0x30)
        if (v > 255) throw new NameError(`\\DDD escape above 255 in "${text}"`)
        cur.push(v)
        i += 3
      } else {
        cur.push(d1)
        i += 1
      }
    } else {
      cur.push(c)
    }
  }
  if (cur.length > 0) labels.push(cur)
  return labels
}

/**
 * Parses a presentation-format name. `@` is the origin; a name without a trailing dot is relative
 * to `origin` (an error when there is none).
 */
export function parseName(text: string, origin?: Name): Name {
  if (text === '@') {
    if (!origin) throw new NameError('"@" used with no origin')
    return origin
  }
  if (text === '.') return ROOT
  const absolute = isAbsoluteEscaped(text)
  const labels = splitLabels(absolute ? text.slice(0, -1) : text)
  if (labels.length === 0) throw new NameError('empty name')
  const parts: Buffer[] = []
  let len = 0
  for (const l of labels) {
    if (l.length > MAX_LABEL) throw new NameError(`label longer than 63 bytes in "${text}"`)
    parts.push(Buffer.from([l.length, ...l]))
    len += l.length + 1
  }
  if (!absolute) {
    if (!origin) throw new NameError(`relative name "${text}" with no origin`)
    parts.push(origin.wire)
    len += origin.wire.length
  } else {
    parts.push(ROOT.wire)
    len += 1
  }
  if (len > MAX_NAME) throw new NameError(`name longer than 255 bytes: "${text}"`)
  return nameFromWire(Buffer.concat(parts, len))
}

/** A trailing dot is absolute unless it is itself escaped; an escaped backslash before it does not count. */
function isAbsoluteEscaped(text: string): boolean {
  if (!text.endsWith('.')) return false
  let slashes = 0
  for (let i = text.length - 2; i >= 0 && text[i] === '\\'; i--) slashes++
  return slashes % 2 === 0
}

/** Presentation form with trailing dot; bytes outside printable ASCII and special characters escaped. */
export function nameToString(name: Name | Buffer): string {
  const wire = Buffer.isBuffer(name) ? name : name.wire
  if (wire[0] === 0) return '.'
  let out = ''
  for (let i = 0; wire[i] !== 0; ) {
    const len = wire[i]!
    for (let j = i + 1; j <= i + len; j++) {
      const c = wire[j]!
      if (
        c === 0x2e ||
        c === 0x5c ||
        c === 0x22 ||
        c === 0x3b ||
        c === 0x28 ||
        c === 0x29 ||
        c === 0x40 ||
        c === 0x24
      ) {
        out += '\\' + String.fromCharCode(c)
      } else if (c <= 0x20 || c >= 0x7f) {
        out += '\\' + String(c).padStart(3, '0')
      } else {
        out += String.fromCharCode(c)
      }
    }
    out += '.'
    i += len + 1
  }
  return out
}

/** Byte offsets where each label starts in a key or wire name (root excluded). */
export function labelOffsets(wire: Buffer | string): number[] {
  const at = (i: number): number => (typeof wire === 'string' ? wire.charCodeAt(i) : wire[i]!)
  const out: number[] = []
  for (let i = 0; at(i) !== 0; i += at(i) + 1) out.push(i)
  return out
}

/** True when `name` equals `parent` or lies below it (compared on label boundaries, case-insensitively). */
export function isSubdomain(name: Name, parent: Name): boolean {
  if (parent.labels > name.labels) return false
  const offs = labelOffsets(name.key)
  const start = parent.labels === 0 ? name.key.length - 1 : offs[name.labels - parent.labels]!
  return name.key.slice(start) === parent.key
}

/** The name with its first label removed. The root has no parent. */
export function parentName(name: Name): Name {
  if (name.labels === 0) throw new NameError('the root has no parent')
  return nameFromWire(name.wire.subarray(name.wire[0]! + 1))
}

/** `label` prepended to `name` (used to form `*.<name>` when looking for wildcards). */
export function childName(label: string, name: Name): Name {
  const l = Buffer.from(label, 'latin1')
  return nameFromWire(Buffer.concat([Buffer.from([l.length]), l, name.wire]))
}

/** Wire-format length of the uncompressed name. */
export function wireLength(name: Name): number {
  return name.wire.length
}

/** The Name behind a lookup key (lowercase, so only for display). */
export function nameFromKey(key: string): Name {
  return nameFromWire(Buffer.from(key, 'latin1'))
}
