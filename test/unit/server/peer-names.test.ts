import { describe, expect, it } from 'vitest'
import { PeerNames } from '../../../src/server/peer-names.ts'

/** The address bytes as the batched listener holds them: a byte view and an int32 view of one buffer. */
function slot(bytes: readonly number[]): { u8: Uint8Array; i32: Int32Array } {
  const buf = new ArrayBuffer(16)
  new Uint8Array(buf).set(bytes)
  return { u8: new Uint8Array(buf, 0, bytes.length), i32: new Int32Array(buf) }
}

describe('PeerNames', () => {
  it('gives the dotted quad of IPv4 bytes, and the same string object for a repeat', () => {
    const names = new PeerNames()
    const a = slot([192, 0, 2, 1])
    const first = names.v4(a.i32[0]!, a.u8)
    expect(first).toBe('192.0.2.1')
    expect(names.v4(a.i32[0]!, a.u8)).toBe(first)
    const b = slot([0, 0, 0, 0])
    expect(names.v4(b.i32[0]!, b.u8)).toBe('0.0.0.0')
  })

  it('never returns another address text when two addresses share a cache slot', () => {
    const names = new PeerNames()
    // Thousands of addresses through 256 slots: collisions are certain; every answer must be exact.
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 5000; i++) {
        const bytes = [10, (i >> 8) & 0xff, i & 0xff, (i * 7) & 0xff]
        const s = slot(bytes)
        expect(names.v4(s.i32[0]!, s.u8)).toBe(bytes.join('.'))
      }
    }
  })

  it('gives RFC 5952 text for IPv6 bytes and tells apart addresses that differ in any word', () => {
    const names = new PeerNames()
    const loop = slot([...new Array(15).fill(0), 1])
    expect(names.v6(loop.i32, 0, loop.u8)).toBe('::1')
    const doc = slot([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10])
    expect(names.v6(doc.i32, 0, doc.u8)).toBe('2001:db8::10')
    for (let w = 0; w < 4; w++) {
      const bytes = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10]
      bytes[w * 4 + 1] = bytes[w * 4 + 1]! ^ 0x40
      const s = slot(bytes)
      const text = names.v6(s.i32, 0, s.u8)
      expect(text).not.toBe('2001:db8::10')
      expect(names.v6(doc.i32, 0, doc.u8)).toBe('2001:db8::10')
    }
  })
})
