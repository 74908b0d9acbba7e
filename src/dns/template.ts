/**
 * @module dns/template
 * Pre-encoded responses. A template is a whole DNS message built once at zone compile time, with
 * names compressed. Serving it copies the bytes, patches the ID and flags, copies the client's
 * question (so the client's letter case is echoed) and appends OPT.
 *
 * Templates for answers that depend on the query name (wildcards, NXDOMAIN/NODATA, referrals
 * below a cut) are built with a stand-in question `*.<known suffix>`. The real question may be
 * longer or shorter by `delta` bytes; every compression pointer that targets anything after the
 * start of the question name then moves by `delta`, and the template keeps the positions of those
 * pointers (`fixups`). A pointer to offset 12 means "the question name" and never moves.
 *
 * Truncation (RFC 2181 section 9, RFC 1035 4.2.1) happens at RRset boundaries: `rrsetEnd` lists
 * where each RRset ends, so a response that does not fit keeps whole RRsets only.
 */

export const SECTION_ANSWER = 0
export const SECTION_AUTHORITY = 1
export const SECTION_ADDITIONAL = 2

export interface Template {
  readonly kind: 'template'
  /**
   * Memory holding the complete message at `[at, at + size)`: ID 0, counts as built, question
   * name of `qnameLen` bytes at message offset 12. A slab chunk shared with other templates, not a
   * view of its own: a 100k-record zone set has ~170k templates, and a view per template was
   * 170k more objects for every major GC to mark (see templateMessage for the message alone).
   */
  readonly bytes: Buffer
  readonly at: number
  readonly size: number
  readonly qnameLen: number
  /** Header flags without RD/CD (copied from the query) and TC (decided per response). */
  readonly flags: number
  /** Positions of 2-byte compression pointers that move with the question length. */
  readonly fixups: Uint16Array
  /** Per RRset, in message order: end offset, section, RR count, and whether dropping it needs TC. */
  readonly rrsetEnd: Uint16Array
  readonly rrsetSection: Uint8Array
  readonly rrsetCount: Uint16Array
  readonly rrsetRequired: Uint8Array
}

export const FLAG_QR = 0x8000
export const FLAG_AA = 0x0400
export const FLAG_TC = 0x0200
const COPIED_FLAGS = 0x0110 // RD and CD come from the query (RFC 1035, RFC 4035 3.1.6)

/** What the serving side tells `render` about the query and the room available. */
export interface RenderInput {
  readonly packet: Buffer
  readonly id: number
  readonly queryFlags: number
  readonly qnameLen: number
  /** Bytes the whole response may take, OPT included. */
  readonly limit: number
  /** Size of the OPT record that `writeOpt` will append (0 without EDNS). */
  readonly optLen: number
}

/**
 * Renders `t` for one query. Returns the response with `optLen` bytes left free at the end for the
 * caller to fill with the OPT record, and the number of additional RRs so the caller can bump it.
 */
export function render(t: Template, q: RenderInput): Buffer {
  const delta = q.qnameLen - t.qnameLen
  const bodyStart = 12 + t.qnameLen + 4
  const src = t.bytes
  const at = t.at
  let end = t.size
  let flags = t.flags | (q.queryFlags & COPIED_FLAGS)
  let an = (src[at + 6]! << 8) | src[at + 7]!
  let ns = (src[at + 8]! << 8) | src[at + 9]!
  let ar = (src[at + 10]! << 8) | src[at + 11]!
  if (end + delta + q.optLen > q.limit) {
    // Keep the longest prefix of whole RRsets that fits; say TC if what is lost was needed.
    const room = q.limit - q.optLen - delta
    an = ns = ar = 0
    end = bodyStart
    let truncated = false
    for (let k = 0; k < t.rrsetEnd.length; k++) {
      const e = t.rrsetEnd[k]!
      if (truncated || e > room) {
        if (t.rrsetSection[k] !== SECTION_ADDITIONAL || t.rrsetRequired[k] === 1) {
          flags |= FLAG_TC
          break
        }
        truncated = true
        continue
      }
      end = e
      const c = t.rrsetCount[k]!
      const s = t.rrsetSection[k]
      if (s === SECTION_ANSWER) an += c
      else if (s === SECTION_AUTHORITY) ns += c
      else ar += c
    }
    if (end + delta + q.optLen > q.limit) end = bodyStart
  }
  const out = Buffer.allocUnsafe(end + delta + q.optLen)
  // Plain byte stores: writeUInt16BE's range checks cost more than the header they write.
  out[0] = q.id >>> 8
  out[1] = q.id & 0xff
  out[2] = flags >>> 8
  out[3] = flags & 0xff
  out[4] = 0
  out[5] = 1
  out[6] = an >>> 8
  out[7] = an & 0xff
  out[8] = ns >>> 8
  out[9] = ns & 0xff
  out[10] = ar >>> 8
  out[11] = ar & 0xff
  q.packet.copy(out, 12, 12, 12 + q.qnameLen + 4)
  src.copy(out, bodyStart + delta, at + bodyStart, at + end)
  if (delta !== 0) {
    const fx = t.fixups
    for (let k = 0; k < fx.length; k++) {
      const p = fx[k]!
      if (p >= end) break
      out.writeUInt16BE(out.readUInt16BE(p + delta) + delta, p + delta)
    }
  }
  return out
}

/** The message of `t` alone (a view, no copy): for tests and slow paths, not the query path. */
export function templateMessage(t: Template): Buffer {
  return t.bytes.subarray(t.at, t.at + t.size)
}
