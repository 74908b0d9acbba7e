/**
 * `dnsCheck` against tiny DNS servers started here on loopback (UDP and TCP, port 0) that answer
 * with dns-packet. Each server is given a responder: what to send back for a decoded query,
 * including several replies (to test that foreign IDs are skipped) or none at all (a silent server).
 */

import { createSocket, type Socket as UdpSocket } from 'node:dgram'
import { type AddressInfo, createServer, type Server } from 'node:net'
import * as dnsPacket from 'dns-packet'
import { afterEach, describe, expect, it } from 'vitest'
import { dnsCheck } from '../../../src/probe/checks/dns.ts'
import type { DnsCheck } from '../../../src/probe/types.ts'

type Responder = (q: dnsPacket.DecodedPacket) => dnsPacket.Packet[]

const udpSockets: UdpSocket[] = []
const tcpServers: Server[] = []

afterEach(async () => {
  for (const s of udpSockets.splice(0)) s.close()
  for (const s of tcpServers.splice(0)) await new Promise<void>((resolve) => s.close(() => resolve()))
})

/** Queries each server received, decoded, for assertions on what the check sent. */
const received: dnsPacket.DecodedPacket[] = []

async function udpServer(respond: Responder, host = '127.0.0.1'): Promise<number> {
  const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4')
  udpSockets.push(socket)
  socket.on('message', (msg, rinfo) => {
    const q = dnsPacket.decode(msg)
    received.push(q)
    for (const reply of respond(q)) socket.send(dnsPacket.encode(reply), rinfo.port, rinfo.address)
  })
  await new Promise<void>((resolve) => socket.bind(0, host, resolve))
  return socket.address().port
}

async function tcpServer(respond: Responder): Promise<number> {
  const server = createServer((conn) => {
    conn.on('error', () => {})
    let buf = Buffer.alloc(0)
    conn.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk])
      if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return
      const q = dnsPacket.decode(buf.subarray(2, 2 + buf.readUInt16BE(0)))
      received.push(q)
      // All replies in one write, so the check has to split frames itself.
      conn.write(Buffer.concat(respond(q).map((r) => dnsPacket.streamEncode(r))))
    })
  })
  tcpServers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as AddressInfo).port
}

function check(port: number, over: Partial<DnsCheck> = {}): DnsCheck {
  return {
    name: 'dns',
    kind: 'dns',
    intervalMs: 1000,
    jitter: 0,
    timeoutMs: 1000,
    rise: 2,
    fall: 3,
    address: undefined,
    port,
    query: 'www.example.test',
    qtype: 'A',
    rcode: 'NOERROR',
    answer: undefined,
    transport: 'udp',
    ...over,
  }
}

/** A reply to `q` with the given rcode and answers; `id` and `question` can be overridden to forge. */
function reply(
  q: dnsPacket.DecodedPacket,
  opts: { rcode?: number; answers?: dnsPacket.Answer[]; id?: number; name?: string } = {},
): dnsPacket.Packet {
  const question = q.questions![0]!
  return {
    type: 'response',
    id: opts.id ?? q.id!,
    flags: dnsPacket.AUTHORITATIVE_ANSWER | (opts.rcode ?? 0),
    questions: [{ ...question, name: opts.name ?? question.name }],
    answers: opts.answers ?? [],
  }
}

const A = (data: string): dnsPacket.Answer => ({ type: 'A', name: 'www.example.test', ttl: 30, data })
const NXDOMAIN = 3
const SERVFAIL = 2

const answering: Responder = (q) => [reply(q, { answers: [A('192.0.2.1'), A('192.0.2.2')] })]
const silent: Responder = () => []

for (const transport of ['udp', 'tcp'] as const) {
  const start = transport === 'udp' ? udpServer : tcpServer

  describe(`dnsCheck over ${transport}`, () => {
    it('passes on the expected rcode and reports the round-trip time', async () => {
      const port = await start(answering)
      const r = await dnsCheck(check(port, { transport }), '127.0.0.1')
      expect(r).toMatchObject({ ok: true, error: undefined, load: undefined })
      expect(r.latencyMs).toBeGreaterThan(0)
      expect(r.latencyMs).toBeLessThan(1000)
    })

    it('fails with the rcode it got when it differs from the expected one', async () => {
      const port = await start((q) => [reply(q, { rcode: NXDOMAIN })])
      expect((await dnsCheck(check(port, { transport }), '127.0.0.1')).error).toBe('rcode NXDOMAIN')
      expect((await dnsCheck(check(port, { transport, rcode: 'nxdomain' }), '127.0.0.1')).ok).toBe(true)
    })

    it('passes when any answer carries the expected data and fails when none does', async () => {
      const port = await start(answering)
      expect((await dnsCheck(check(port, { transport, answer: '192.0.2.2' }), '127.0.0.1')).ok).toBe(true)
      expect((await dnsCheck(check(port, { transport, answer: '192.0.2.9' }), '127.0.0.1')).error).toBe(
        'answer mismatch',
      )
    })

    it('skips a reply with a foreign ID and takes the matching one after it', async () => {
      const port = await start((q) => [reply(q, { id: (q.id! + 1) & 0xffff, rcode: SERVFAIL }), reply(q)])
      expect(await dnsCheck(check(port, { transport }), '127.0.0.1')).toMatchObject({ ok: true })
    })

    it('times out on a server that never answers, within the timeout plus a small slack', async () => {
      const port = await start(silent)
      const started = performance.now()
      const r = await dnsCheck(check(port, { transport, timeoutMs: 300 }), '127.0.0.1')
      const elapsed = performance.now() - started
      expect(r).toMatchObject({ ok: false, error: 'timeout', latencyMs: undefined })
      expect(elapsed).toBeGreaterThanOrEqual(290)
      expect(elapsed).toBeLessThan(300 + 700)
    })

    it('times out when every reply carries a foreign ID', async () => {
      const port = await start((q) => [reply(q, { id: (q.id! + 1) & 0xffff })])
      expect((await dnsCheck(check(port, { transport, timeoutMs: 300 }), '127.0.0.1')).error).toBe('timeout')
    })
  })
}

describe('dnsCheck details', () => {
  it('sends a non-recursive query for the configured name and type with a fresh random ID', async () => {
    received.length = 0
    const port = await udpServer(answering)
    for (let i = 0; i < 4; i++) await dnsCheck(check(port, { qtype: 'aaaa', query: 'Svc.Example.Test.' }), '127.0.0.1')
    expect(received.map((q) => [q.flag_rd, q.questions![0]!.name, q.questions![0]!.type])).toEqual(
      Array(4).fill([false, 'Svc.Example.Test', 'AAAA']),
    )
    expect(new Set(received.map((q) => q.id)).size).toBeGreaterThan(1)
  })

  it('ignores a reply with the right ID for a different question', async () => {
    const port = await udpServer((q) => [reply(q, { name: 'evil.test' })])
    expect((await dnsCheck(check(port, { timeoutMs: 300 }), '127.0.0.1')).error).toBe('timeout')
  })

  it('compares IPv6 answers as addresses and names without case or trailing dot', async () => {
    const port = await udpServer((q) => [
      reply(q, {
        answers: [
          { type: 'CNAME', name: 'www.example.test', ttl: 30, data: 'Edge.CDN.test' },
          { type: 'AAAA', name: 'edge.cdn.test', ttl: 30, data: '2001:db8::1' },
        ],
      }),
    ])
    expect((await dnsCheck(check(port, { qtype: 'AAAA', answer: '2001:db8:0:0:0:0:0:1' }), '127.0.0.1')).ok).toBe(true)
    expect((await dnsCheck(check(port, { qtype: 'AAAA', answer: 'edge.cdn.test.' }), '127.0.0.1')).ok).toBe(true)
    expect((await dnsCheck(check(port, { qtype: 'AAAA', answer: '2001:db8::2' }), '127.0.0.1')).ok).toBe(false)
  })

  it('works against an IPv6 loopback server', async () => {
    const port = await udpServer(answering, '::1')
    expect((await dnsCheck(check(port, { answer: '192.0.2.1' }), '::1')).ok).toBe(true)
  })

  it('reports a refused connection when nothing listens on the UDP port', async () => {
    const probe = createSocket('udp4')
    await new Promise<void>((resolve) => probe.bind(0, '127.0.0.1', resolve))
    const port = probe.address().port
    probe.close()
    expect((await dnsCheck(check(port), '127.0.0.1')).error).toBe('connect refused')
  })

  it('fails without traffic on a query type it does not know', async () => {
    received.length = 0
    const port = await udpServer(answering)
    expect((await dnsCheck(check(port, { qtype: 'BOGUS' }), '127.0.0.1')).error).toBe('bad qtype BOGUS')
    expect(received).toHaveLength(0)
  })
})
