/**
 * @module dns/types
 * RR type and rcode numbers the server reasons about. Plain consts, not enums, so Node can strip
 * the types (erasableSyntaxOnly) and the numbers inline.
 */

export const T = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  HINFO: 13,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  NAPTR: 35,
  DS: 43,
  SSHFP: 44,
  RRSIG: 46,
  NSEC: 47,
  DNSKEY: 48,
  NSEC3: 50,
  TLSA: 52,
  SPF: 99,
  DNAME: 39,
  OPT: 41,
  IXFR: 251,
  AXFR: 252,
  MAILB: 253,
  MAILA: 254,
  ANY: 255,
  CAA: 257,
} as const

export const RCODE = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
  /** Extended rcode 16, carried as 1 in the OPT TTL's upper byte with 0 in the header. */
  BADVERS: 16,
} as const

export const OPCODE_QUERY = 0

const NAMES: Record<number, string> = Object.fromEntries(Object.entries(T).map(([k, v]) => [v, k]))
const NUMBERS: Record<string, number> = { ...T }

/** Mnemonic for a type number, or the RFC 3597 `TYPEnnn` form. */
export function typeName(type: number): string {
  return NAMES[type] ?? `TYPE${type}`
}

/** Type number for a mnemonic or `TYPEnnn` (case-insensitive); undefined when unknown. */
export function typeNumber(text: string): number | undefined {
  const up = text.toUpperCase()
  const known = NUMBERS[up]
  if (known !== undefined) return known
  const m = /^TYPE(\d{1,5})$/.exec(up)
  if (!m) return undefined
  const n = Number(m[1])
  return n <= 0xffff ? n : undefined
}
