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
  out[o++] = 0
  out.writeUInt16BE(41, o)
  out.writeUInt16BE(EDNS_UDP_SIZE, o + 2)
  out[o + 4] = extRcode
  out[o + 5] = 0
  // RFC 3225: the DO bit is copied from the query.
  out.writeUInt16BE(q.dnssecOk ? 0x8000 : 0, o + 6)
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
    out.writeUInt16BE(OPT_ECS, o)
    out.writeUInt16BE(4 + addrLen, o + 2)
    out.writeUInt16BE(q.ecsFamily, o + 4)
    out[o + 6] = q.ecsSourcePrefix
    out[o + 7] = ecsScope
    q.ecsAddress.copy(out, o + 8, 0, addrLen)
    o += 8 + addrLen
  }
  out.writeUInt16BE(o - rdlenAt - 2, rdlenAt)
  out.writeUInt16BE(out.readUInt16BE(10) + 1, 10)
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
