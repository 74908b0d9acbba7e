/**
 * @module dns/address
 * IP addresses and CIDR networks as bytes, for zone data, geo rules and ECS.
 */

import { isIPv4, isIPv6 } from 'node:net'

/** Bytes of a dotted-quad already accepted by `isIPv4`. */
export function ipv4Bytes(text: string): Buffer {
  return Buffer.from(text.split('.').map(Number))
}

/** Bytes of an address already accepted by `isIPv6` (no zone id): `::` and a dotted IPv4 tail. */
export function ipv6Bytes(text: string): Buffer {
  const out = Buffer.alloc(16)
  let head = text
  let groups = 8
  const lastColon = text.lastIndexOf(':')
  if (text.includes('.', lastColon)) {
    ipv4Bytes(text.slice(lastColon + 1)).copy(out, 12)
    head = text.slice(0, text.endsWith('::', lastColon + 1) ? lastColon + 1 : lastColon)
    groups = 6
  }
  const gap = head.indexOf('::')
  const left = splitGroups(gap < 0 ? head : head.slice(0, gap))
  const right = gap < 0 ? [] : splitGroups(head.slice(gap + 2))
  left.forEach((g, k) => {
    out.writeUInt16BE(g, 2 * k)
  })
  right.forEach((g, k) => {
    out.writeUInt16BE(g, 2 * (groups - right.length + k))
  })
  return out
}

function splitGroups(text: string): number[] {
  return text === '' ? [] : text.split(':').map((g) => Number.parseInt(g, 16))
}

/** Address text to family and bytes; undefined for anything that is not a plain IPv4/IPv6 address. */
export function parseAddress(text: string): { family: 4 | 6; bytes: Buffer } | undefined {
  if (isIPv4(text)) return { family: 4, bytes: ipv4Bytes(text) }
  if (isIPv6(text) && !text.includes('%')) return { family: 6, bytes: ipv6Bytes(text) }
  return undefined
}

export interface Cidr {
  readonly family: 4 | 6
  readonly network: Uint8Array
  readonly prefix: number
}

/** `198.51.100.0/24`, `2001:db8::/32`; a bare address is a host route. Host bits must be zero. */
export function parseCidr(text: string): Cidr | string {
  const slash = text.indexOf('/')
  const addr = parseAddress(slash < 0 ? text : text.slice(0, slash))
  if (!addr) return `expected an IPv4 or IPv6 network like 198.51.100.0/24, got "${text}"`
  const max = addr.family === 4 ? 32 : 128
  const prefix = slash < 0 ? max : Number(text.slice(slash + 1))
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max || (slash >= 0 && text.slice(slash + 1) === '')) {
    return `prefix length must be 0..${max}, got "${text}"`
  }
  const masked = maskBytes(addr.bytes, prefix)
  if (!masked.equals(addr.bytes)) return `"${text}" has bits set beyond /${prefix}`
  return { family: addr.family, network: masked, prefix }
}

/** A copy of `bytes` with everything past the first `prefix` bits cleared. */
export function maskBytes(bytes: Uint8Array, prefix: number): Buffer {
  const out = Buffer.from(bytes)
  for (let i = 0; i < out.length; i++) {
    const keep = prefix - i * 8
    if (keep >= 8) continue
    out[i] = keep <= 0 ? 0 : out[i]! & (0xff << (8 - keep))
  }
  return out
}

/** True when `bytes` (same family) falls inside `cidr`. */
export function cidrContains(cidr: Cidr, bytes: Uint8Array): boolean {
  const full = cidr.prefix >> 3
  for (let i = 0; i < full; i++) if (bytes[i] !== cidr.network[i]) return false
  const rest = cidr.prefix & 7
  if (rest === 0) return true
  const mask = 0xff << (8 - rest)
  return ((bytes[full]! ^ cidr.network[full]!) & mask) === 0
}

/** Text form of address bytes (4 or 16 bytes). */
export function addressText(bytes: Uint8Array): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`
  const groups: string[] = []
  for (let k = 0; k < 16; k += 2) groups.push(((bytes[k]! << 8) | bytes[k + 1]!).toString(16))
  // Collapse the longest run of zero groups (RFC 5952), enough for logs and geo lookups.
  const joined = `:${groups.join(':')}:`
  const runs = joined.match(/(:0)+:/g)
  if (!runs) return groups.join(':')
  const longest = runs.reduce((a, b) => (b.length > a.length ? b : a))
  return joined.replace(longest, '::').replace(/^:(?!:)|(?<!:):$/g, '')
}
