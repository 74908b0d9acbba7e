/**
 * ByteSlab: copies must hold exactly their bytes, never overlap, and share memory only with other
 * copies from the same slab (never Node's Buffer pool); TemplateBuilder must not leak one
 * template's scratch bytes into the next when it reuses its scratch buffer.
 */

import { describe, expect, it } from 'vitest'
import { QNAME, TemplateBuilder, type TemplateStore } from '../../../src/dns/builder.ts'
import { parseName } from '../../../src/dns/name.ts'
import { ByteSlab, MAX_CHUNK } from '../../../src/dns/slab.ts'
import { SECTION_ANSWER, templateMessage } from '../../../src/dns/template.ts'
import { T } from '../../../src/dns/types.ts'

const bytes = (n: number, seed: number): Buffer =>
  Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff))

describe('ByteSlab', () => {
  it('copies the requested range exactly, as a view of its own length', () => {
    const slab = new ByteSlab()
    const src = bytes(100, 3)
    const c = slab.copy(src, 10, 30)
    expect(c.length).toBe(20)
    expect(c.equals(src.subarray(10, 30))).toBe(true)
    src.fill(0)
    expect(c.equals(bytes(100, 3).subarray(10, 30))).toBe(true)
  })

  it('packs many small copies into few chunks without overlapping them', () => {
    const slab = new ByteSlab()
    const copies = Array.from({ length: 5000 }, (_, i) => ({ c: slab.copy(bytes(1 + (i % 97), i)), i }))
    for (const { c, i } of copies) expect(c.equals(bytes(1 + (i % 97), i))).toBe(true)
    const chunks = new Set(copies.map(({ c }) => c.buffer))
    const total = copies.reduce((n, { c }) => n + c.length, 0)
    // Chunks double from 1 KiB to 64 KiB: the few small early ones plus full 64 KiB ones.
    expect(chunks.size).toBeLessThanOrEqual(Math.ceil(total / MAX_CHUNK) + 7)
    for (const chunk of chunks) expect(chunk.byteLength).toBeLessThanOrEqual(MAX_CHUNK)
    for (const chunk of chunks) expect(chunk).not.toBe(Buffer.allocUnsafe(1).buffer)
  })

  it('gives a large copy its own memory', () => {
    const slab = new ByteSlab()
    const small = slab.copy(bytes(10, 1))
    const big = slab.copy(bytes(MAX_CHUNK, 2))
    expect(big.equals(bytes(MAX_CHUNK, 2))).toBe(true)
    expect(big.buffer).not.toBe(small.buffer)
    expect(big.byteLength).toBe(big.buffer.byteLength)
    // The chunk in use stays in use after a large copy.
    expect(slab.copy(bytes(10, 3)).buffer).toBe(small.buffer)
  })

  it('gives an empty range an empty buffer', () => {
    expect(new ByteSlab().copy(bytes(10, 1), 4, 4).length).toBe(0)
  })
})

describe('TemplateBuilder with a store', () => {
  const name = parseName('www.example.com.')
  const a = (...ips: string[]): Buffer[] => ips.map((ip) => Buffer.from(ip.split('.').map(Number)))

  it('hands bytes and arrays to the store, and reused scratch does not leak into the next template', () => {
    const slab = new ByteSlab()
    const calls: string[] = []
    const store: TemplateStore = {
      place: (src, end, into) => {
        calls.push('place')
        return slab.place(src, 0, end, into)
      },
      u16: (v) => {
        calls.push('u16')
        return Uint16Array.from(v)
      },
      u8: (v) => {
        calls.push('u8')
        return Uint8Array.from(v)
      },
    }
    const big = new TemplateBuilder({ name, qtype: T.A, standIn: false })
    big.add(SECTION_ANSWER, { owner: QNAME, type: T.A, ttl: 60, rdatas: a('192.0.2.1', '192.0.2.2', '192.0.2.3') })
    const t1 = big.finish(0x8400, store)
    const small = new TemplateBuilder({ name, qtype: T.A, standIn: false })
    small.add(SECTION_ANSWER, { owner: QNAME, type: T.A, ttl: 30, rdatas: a('198.51.100.9') })
    const t2 = small.finish(0x8400, store)
    expect(calls.filter((c) => c === 'place')).toHaveLength(2)
    expect(calls.filter((c) => c === 'u16')).toHaveLength(6)
    expect(calls.filter((c) => c === 'u8')).toHaveLength(4)
    // 12 header + 17 question + one 16-byte A record per address.
    const m1 = templateMessage(t1)
    const m2 = templateMessage(t2)
    expect(m1.length).toBe(12 + name.wire.length + 4 + 3 * 16)
    expect(m2.length).toBe(12 + name.wire.length + 4 + 16)
    expect(m1.readUInt16BE(6)).toBe(3)
    expect(m2.readUInt16BE(6)).toBe(1)
    expect([...m1.subarray(-4)]).toEqual([192, 0, 2, 3])
    expect([...m2.subarray(-4)]).toEqual([198, 51, 100, 9])
    // Both messages in one chunk, held by both templates as the same object, back to back.
    expect(t2.bytes).toBe(t1.bytes)
    expect(t2.at).toBe(t1.at + t1.size)
    expect(t1.rrsetEnd[0]).toBe(t1.size)
  })
})
