/**
 * lowerKey: the lookup key every name and query is compared by. It must fold ASCII A-Z and
 * nothing else (RFC 4343): latin1 capitals such as 0xC0 stay as they are, in every range.
 */

import { describe, expect, it } from 'vitest'
import { lowerKey, nameFromWire, parseName } from '../../../src/dns/name.ts'
import { seededRandom } from '../../../src/policy/random.ts'

/** The definition, one byte at a time. */
function reference(wire: Buffer, start: number, end: number): string {
  let out = ''
  for (let i = start; i < end; i++) {
    const c = wire[i]!
    out += String.fromCharCode(c >= 0x41 && c <= 0x5a ? c | 0x20 : c)
  }
  return out
}

describe('lowerKey', () => {
  it('folds ASCII capitals only', () => {
    expect(lowerKey(Buffer.from('\x03WwW\x07Example\x03COM\x00', 'latin1'))).toBe('\x03www\x07example\x03com\x00')
    expect(lowerKey(Buffer.from([0x02, 0xc0, 0x41, 0x00]))).toBe('\x02\xc0a\x00')
    expect(lowerKey(Buffer.from([0x02, 0xc0, 0xde, 0x00]))).toBe('\x02\xc0\xde\x00')
    expect(lowerKey(Buffer.from('\x01@\x01[\x01`\x01{\x00', 'latin1'))).toBe('\x01@\x01[\x01`\x01{\x00')
  })

  it('agrees with the byte-by-byte definition on random bytes and ranges', () => {
    const rnd = seededRandom(7)
    for (let n = 0; n < 2000; n++) {
      const len = Math.floor(rnd() * 40)
      // Bias towards the interesting bytes: ASCII letters, latin1 capitals, and everything else.
      const bytes = Array.from({ length: len }, () => {
        const r = rnd()
        if (r < 0.3) return 0x41 + Math.floor(rnd() * 26)
        if (r < 0.5) return 0x61 + Math.floor(rnd() * 26)
        if (r < 0.6) return 0xc0 + Math.floor(rnd() * 31)
        return Math.floor(rnd() * 256)
      })
      const wire = Buffer.from(bytes)
      const start = Math.floor(rnd() * (len + 1))
      const end = start + Math.floor(rnd() * (len - start + 1))
      expect(lowerKey(wire, start, end)).toBe(reference(wire, start, end))
      expect(lowerKey(wire)).toBe(reference(wire, 0, len))
    }
  })

  it('gives parsed and wire-built names the same key whatever their case', () => {
    const a = parseName('Mixed.CASE.example.')
    const b = nameFromWire(Buffer.from('\x05mIXED\x04case\x07EXAMPLE\x00', 'latin1'))
    expect(a.key).toBe(b.key)
    expect(a.key).toBe('\x05mixed\x04case\x07example\x00')
  })
})
