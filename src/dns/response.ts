/**
 * @module dns/response
 * The per-query parts of a response that no template can hold: the OPT record (RFC 6891) with
 * NSID (RFC 5001) and ECS (RFC 7871) echoes, and bare error responses.
 */

import { OPT_ECS, OPT_NSID, type Query } from './query.ts'
import { FLAG_QR } from './template.ts'

/** Advertised EDNS UDP payload size: the DNS Flag Day 2020 value, safe from IP fragmentation. */
export const EDNS_UDP_SIZE = 1232

export interface EdnsConfig {
  /** NSID payload, or undefined when NSID is not configured. */
  readonly nsid: Buffer | undefined
}

/** Bytes the OPT record will take for this query (0 when the query had no OPT). */
export function optLength(q: Query, edns: EdnsConfig): number {
  if (!q.hasEdns) return 0
  let len = 11
  if (q.nsidRequested && edns.nsid) len += 4 + edns.nsid.length
  if (q.ecsFamily !== 0) len += 8 + ((q.ecsSourcePrefix + 7) >> 3)
  return len
}

/**
 * Writes OPT at `out[offset..]` and bumps ARCOUNT. `extRcode` is the upper 8 bits of a 12-bit
 * rcode (1 for BADVERS). `ecsScope` is the prefix length our answer depended on: 0 for answers
 * that are the same for every client.
 */
export function writeOpt(out: Buffer, offset: number, q: Query, edns: EdnsConfig, extRcode = 0, ecsScope = 0): void {
  let o = offset
  // Plain byte stores on the per-query path (writeUInt16BE range-checks every call).
  out[o++] = 0
  out[o] = 0
  out[o + 1] = 41
  out[o + 2] = EDNS_UDP_SIZE >>> 8
  out[o + 3] = EDNS_UDP_SIZE & 0xff
  out[o + 4] = extRcode
  out[o + 5] = 0
  // RFC 3225: the DO bit is copied from the query.
  out[o + 6] = q.dnssecOk ? 0x80 : 0
  out[o + 7] = 0
  const rdlenAt = o + 8
  o += 10
  if (q.nsidRequested && edns.nsid) {
    out.writeUInt16BE(OPT_NSID, o)
    out.writeUInt16BE(edns.nsid.length, o + 2)
    edns.nsid.copy(out, o + 4)
    o += 4 + edns.nsid.length
  }
  if (q.ecsFamily !== 0) {
    const addrLen = (q.ecsSourcePrefix + 7) >> 3
    out[o] = OPT_ECS >>> 8
    out[o + 1] = OPT_ECS & 0xff
    out[o + 2] = 0
    out[o + 3] = 4 + addrLen
    out[o + 4] = 0
    out[o + 5] = q.ecsFamily
    out[o + 6] = q.ecsSourcePrefix
    out[o + 7] = ecsScope
    const addr = q.ecsAddress
    for (let k = 0; k < addrLen; k++) out[o + 8 + k] = addr[k]!
    o += 8 + addrLen
  }
  const rdlen = o - rdlenAt - 2
  out[rdlenAt] = rdlen >>> 8
  out[rdlenAt + 1] = rdlen & 0xff
  const arcount = ((out[10]! << 8) | out[11]!) + 1
  out[10] = arcount >>> 8
  out[11] = arcount & 0xff
}

/**
 * A response carrying only a header, the question when it was readable, and OPT when the query had
 * one. Used for FORMERR, NOTIMP, REFUSED, SERVFAIL and BADVERS.
 */
export function errorResponse(packet: Buffer, q: Query, rcode: number, edns: EdnsConfig, withOpt = true): Buffer {
  const qLen = q.hasQuestion ? q.qnameLen + 4 : 0
  const opt = withOpt ? optLength(q, edns) : 0
  const out = Buffer.allocUnsafe(12 + qLen + opt)
  out.writeUInt16BE(packet.length >= 2 ? packet.readUInt16BE(0) : 0, 0)
  // RD and CD are echoed (RFC 1035, RFC 4035), except for an opcode we do not implement: its flag
  // bits may mean something else, so only the opcode comes back (as Knot and genreport expect).
  const copied = rcode === 4 /* NOTIMP */ ? 0x7800 : 0x7910
  const opcodeAndRd = packet.length >= 4 ? packet.readUInt16BE(2) & copied : 0
  out.writeUInt16BE(FLAG_QR | opcodeAndRd | (rcode & 0xf), 2)
  out.writeUInt16BE(qLen > 0 ? 1 : 0, 4)
  out.writeUInt32BE(0, 6)
  out.writeUInt16BE(0, 10)
  if (qLen > 0) packet.copy(out, 12, 12, 12 + qLen)
  if (opt > 0) writeOpt(out, 12 + qLen, q, edns, rcode >> 4)
  return out
}
