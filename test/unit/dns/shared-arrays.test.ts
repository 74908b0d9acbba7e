import { describe, expect, it } from 'vitest'
import { SharedArrays } from '../../../src/dns/builder.ts'

describe('SharedArrays', () => {
  it('hands out one array per content, and distinct arrays for distinct content', () => {
    const s = new SharedArrays()
    const a = s.u16([12, 40, 0x1234])
    expect(s.u16([12, 40, 0x1234])).toBe(a)
    expect([...a]).toEqual([12, 40, 0x1234])
    expect(s.u16([12, 40])).not.toBe(a)
    expect(s.u16([])).toBe(s.u16([]))
    // u8 and u16 of the same numbers are different types, never each other.
    const b = s.u8([1, 2])
    expect(b).toBeInstanceOf(Uint8Array)
    expect(s.u8([1, 2])).toBe(b)
    expect(s.u16([1, 2])).toBeInstanceOf(Uint16Array)
  })

  it('keeps at most `limit` shapes and still returns the right content past it', () => {
    const s = new SharedArrays(2)
    const first = s.u16([1])
    s.u16([2])
    const third = s.u16([3])
    expect([...third]).toEqual([3])
    expect(s.u16([3])).not.toBe(third)
    expect(s.u16([1])).toBe(first)
  })
})
