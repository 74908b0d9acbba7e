/**
 * RFC 7766 TCP behaviour and robustness against malformed input, over real sockets.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { dig } from '../helpers/dig.ts'
import { decode, frame, query, tcpClient, udpExchange } from '../helpers/raw.ts'
import { startTestServer, type TestServer } from '../helpers/server.ts'

let s: TestServer
beforeAll(async () => {
  s = await startTestServer({ tcp: { idleTimeoutMs: 400, messageTimeoutMs: 300, maxConnections: 4 } })
})
afterAll(async () => {
  await s.stop()
})

describe('DNS over TCP (RFC 7766)', () => {
  it('answers several queries sent one after another on one connection', async () => {
    const c = await tcpClient(s.port)
    for (let id = 1; id <= 3; id++) {
      c.send(frame(query('host.example.org', 'A', { id })))
      const [reply] = await c.next(1)
      expect(decode(reply!).id).toBe(id)
      expect(decode(reply!).answers?.[0]).toMatchObject({ type: 'A', data: '192.0.2.70' })
    }
    c.socket.destroy()
  })

  it('answers pipelined queries sent in one write, and a message split across writes', async () => {
    const c = await tcpClient(s.port)
    const names = ['host.example.org', 'mail.example.org', 'nope.example.org', 'big.example.org']
    const batch = frame(...names.map((n, i) => query(n, 'A', { id: 100 + i })))
    c.send(batch.subarray(0, 7))
    await new Promise((r) => setTimeout(r, 50))
    c.send(batch.subarray(7))
    const replies = await c.next(names.length)
    expect(replies.map((r) => decode(r).id).sort()).toEqual([100, 101, 102, 103])
    const big = replies.map(decode).find((m) => m.id === 103)!
    expect(big.answers).toHaveLength(40)
    expect(replies.map(decode).find((m) => m.id === 102)!.flags! & 0xf).toBe(3)
    c.socket.destroy()
  })

  it('closes an idle connection after the idle timeout', async () => {
    const c = await tcpClient(s.port)
    const t0 = Date.now()
    await c.closed()
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300)
    expect(Date.now() - t0).toBeLessThan(3000)
  })

  it('closes a connection whose message trickles in too slowly', async () => {
    const c = await tcpClient(s.port)
    const msg = frame(query('host.example.org', 'A'))
    let closed = false
    void c.closed().then(() => {
      closed = true
    })
    // One byte every 150 ms keeps the idle timer happy but never completes the message in time.
    for (let i = 0; i < 8 && !closed; i++) {
      c.send(msg.subarray(i, i + 1))
      await new Promise((r) => setTimeout(r, 150))
    }
    expect(closed).toBe(true)
  })

  it('refuses connections beyond the configured cap and serves again once they close', async () => {
    const held = await Promise.all([1, 2, 3, 4].map(() => tcpClient(s.port)))
    const extra = await tcpClient(s.port)
    extra.send(frame(query('host.example.org', 'A')))
    expect(await extra.next(1, 500)).toHaveLength(0)
    await extra.closed()
    for (const h of held) h.socket.destroy()
    await new Promise((r) => setTimeout(r, 100))
    const r = await dig('127.0.0.1', s.port, '+tcp', 'host.example.org', 'A')
    expect(r.status).toBe('NOERROR')
  })
})

describe('malformed input', () => {
  const valid = query('host.example.org', 'A', { id: 7 })
  const withHeader = (patch: (b: Buffer) => void, base = valid): Buffer => {
    const b = Buffer.from(base)
    patch(b)
    return b
  }
  const rcodeOf = (b: Buffer | null): number | null => (b === null ? null : b[3]! & 0xf)

  it.each([
    ['a truncated header', valid.subarray(0, 7), null],
    ['a response (QR set)', withHeader((b) => b.writeUInt16BE(0x8000, 2)), null],
    ['QDCOUNT 0', withHeader((b) => b.writeUInt16BE(0, 4)), 1],
    ['QDCOUNT 2', withHeader((b) => b.writeUInt16BE(2, 4)), 1],
    ['a label length past the end', withHeader((b) => (b[12] = 60)), 1],
    ['a bad label type (0x40)', withHeader((b) => (b[12] = 0x41)), 1],
    ['a compression pointer in the question', withHeader((b) => b.writeUInt16BE(0xc00c, 12)), 1],
    ['a question cut before QTYPE', valid.subarray(0, valid.length - 3), 1],
    ['opcode NOTIFY', withHeader((b) => b.writeUInt16BE(4 << 11, 2)), 4],
    ['opcode 15', withHeader((b) => b.writeUInt16BE(15 << 11, 2)), 4],
  ] as const)('answers %s with the right rcode or silence', async (_what, packet, expected) => {
    const reply = await udpExchange(s.port, packet, 300)
    expect(rcodeOf(reply)).toBe(expected)
    if (reply) expect(reply.readUInt16BE(0)).toBe(7)
  })

  it('gives FORMERR for a pointer loop in the additional section and stays up', async () => {
    const loop = Buffer.concat([valid, Buffer.from([0xc0, valid.length, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0])])
    loop.writeUInt16BE(1, 10)
    expect(rcodeOf(await udpExchange(s.port, loop))).toBe(1)
  })

  it('refuses an unknown class and class ANY', async () => {
    const ch = (klass: number) => withHeader((b) => b.writeUInt16BE(klass, b.length - 2))
    expect(rcodeOf(await udpExchange(s.port, ch(254)))).toBe(5)
    expect(rcodeOf(await udpExchange(s.port, ch(255)))).toBe(5)
    expect(rcodeOf(await udpExchange(s.port, ch(3)))).toBe(5)
  })

  it('refuses zone transfers and rejects meta types as questions', async () => {
    expect((await dig('127.0.0.1', s.port, '+tcp', 'example.org', 'AXFR')).raw).toMatch(/Transfer failed|REFUSED/)
    expect(rcodeOf(await udpExchange(s.port, query('example.org', 'OPT')))).toBe(1)
  })

  it('keeps answering valid queries while being sent garbage over UDP and TCP', async () => {
    let seed = 12345
    const rnd = () => {
      seed ^= seed << 13
      seed ^= seed >>> 17
      seed ^= seed << 5
      return (seed >>> 0) / 0x100000000
    }
    const garbage: Buffer[] = []
    for (let i = 0; i < 300; i++) {
      const b = Buffer.from(valid)
      for (let k = 0; k < 4; k++) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256)
      garbage.push(rnd() < 0.3 ? b.subarray(0, Math.floor(rnd() * b.length)) : b)
    }
    await Promise.all(garbage.map((g) => udpExchange(s.port, g, 200)))
    const c = await tcpClient(s.port)
    c.send(frame(...garbage.slice(0, 50), query('host.example.org', 'A', { id: 999 })))
    const replies = await c.next(60, 1500)
    expect(replies.map((r) => r.readUInt16BE(0))).toContain(999)
    c.socket.destroy()
    const r = await dig('127.0.0.1', s.port, 'host.example.org', 'A')
    expect(r.answer[0]!.data).toBe('192.0.2.70')
  })
})
