/**
 * @module server/servfail
 * Last-resort answer when answering itself threw: header only, same ID, SERVFAIL.
 */

/** SERVFAIL echoing the ID, opcode and RD of `msg`; null for input too short to have an ID. */
export function servfail(msg: Buffer): Buffer | null {
  if (msg.length < 12) return null
  const out = Buffer.alloc(12)
  out.writeUInt16BE(msg.readUInt16BE(0), 0)
  out.writeUInt16BE(0x8000 | (msg.readUInt16BE(2) & 0x7900) | 2, 2)
  return out
}
