/**
 * The two UDP I/O paths (batched recvmmsg/sendmmsg addon, Node's dgram) over real sockets: the
 * same bytes out for the same bytes in, bursts larger than a batch, responses larger than the
 * batch's output space, oversized datagrams, IPv6, and the socket released on close.
 */

import { createSocket, type Socket } from 'node:dgram'
import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ZoneSet } from '../../src/config/zone-set.ts'
import { ResponseRateLimiter } from '../../src/dns/rrl.ts'
import { createLogger } from '../../src/log.ts'
import { loadUdpBatch } from '../../src/native/udp-batch.ts'
import { Answerer } from '../../src/query/handle.ts'
import type { QueryObserver } from '../../src/server/observer.ts'
import { listenUdp, type UdpListener } from '../../src/server/udp.ts'
import { dig } from '../helpers/dig.ts'
import { decode, query, udpExchange } from '../helpers/raw.ts'

const log = createLogger('silent')
const TXT = 'x'.repeat(200)
// 100 TXT records of ~200 bytes: a ~21 KB answer when the client offers a large buffer.
const ZONE = [
  '$ORIGIN io.test.',
  '$TTL 300',
  '@ SOA ns1 hostmaster 1 7200 3600 1209600 300',
  '@ NS ns1',
  'ns1 A 192.0.2.1',
  'www A 192.0.2.10',
  'www AAAA 2001:db8::10',
  'alias CNAME www',
  '* A 192.0.2.99',
  'cdn A 192.0.2.20',
  'cdn A 192.0.2.21',
  ...Array.from({ length: 100 }, (_, i) => `big TXT "${i} ${TXT}"`),
].join('\n')

// A service whose answers are kept per client /24: the read-ahead keys it by the source address.
const SERVICE_ZONE = [
  'zone: svc.test',
  'records: |',
  '  @ 3600 SOA ns1 hostmaster 1 7200 3600 1209600 300',
  '  @ 3600 NS ns1',
  '  ns1 A 192.0.2.1',
  'pools:',
  '  p:',
  '    endpoints:',
  '      e1: { address: 192.0.2.11 }',
  '      e2: { address: 192.0.2.12 }',
  'services:',
  '  stick: { pools: [p], chain: [sticky] }',
].join('\n')

let dir: string
let answerer: Answerer
let observed: string[]
const observe: QueryObserver = (_q, _r, _t, client) => {
  observed.push(client)
}
const listeners: UdpListener[] = []

async function open(io: 'batched' | 'dgram', host = '127.0.0.1', outputBytes?: number): Promise<UdpListener> {
  const l = await listenUdp(host, 0, answerer, log, observe, undefined, { io, outputBytes })
  listeners.push(l)
  return l
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'gslb-udp-io-'))
  writeFileSync(join(dir, 'io.test.zone'), `${ZONE}\n`)
  writeFileSync(join(dir, 'svc.test.yaml'), `${SERVICE_ZONE}\n`)
  const zones = new ZoneSet(dir)
  zones.reload()
  answerer = new Answerer({ maxUdpSize: 65535 })
  answerer.table = zones.table
  observed = []
})
afterAll(async () => {
  await Promise.all(listeners.map((l) => l.close()))
  rmSync(dir, { recursive: true, force: true })
})

/** A query with EDNS offering `bufsize` bytes (dns-packet's helper offers 1232). */
function ednsQuery(name: string, type: string, id: number, bufsize: number): Buffer {
  const q = query(name, type, { id, edns: true })
  // The OPT record is last; its CLASS (the offered size) sits 8 bytes from the end of an empty OPT.
  q.writeUInt16BE(bufsize, q.length - 8)
  return q
}

/** Sends every message from one socket in one synchronous loop; collects replies by DNS ID. */
async function burst(
  port: number,
  msgs: readonly Buffer[],
  host = '127.0.0.1',
  waitMs = 2000,
): Promise<Map<number, Buffer>> {
  const sock: Socket = createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', recvBufferSize: 4 << 20 })
  const replies = new Map<number, Buffer>()
  await new Promise<void>((resolve) => sock.bind(0, host, resolve))
  const done = new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, waitMs)
    sock.on('message', (m) => {
      replies.set(m.readUInt16BE(0), m)
      if (replies.size === msgs.length) {
        clearTimeout(timer)
        resolve()
      }
    })
  })
  for (const m of msgs) sock.send(m, port, host)
  await done
  sock.close()
  return replies
}

describe.runIf(process.platform === 'linux')('batched UDP I/O', () => {
  it('is built and loads on Linux (npm ci builds it; CI relies on it)', () => {
    const addon = loadUdpBatch()
    expect(typeof addon === 'string' ? addon : 'loaded').toBe('loaded')
  })

  it('answers byte for byte what the dgram path answers, malformed input included', async () => {
    const batched = await open('batched')
    const dgram = await open('dgram')
    expect(batched.io).toBe('batched')
    expect(dgram.io).toBe('dgram')
    const notimp = query('www.io.test', 'A', { id: 7 })
    notimp[2] = 0x28 // opcode UPDATE
    const cases: [string, Buffer][] = [
      ['A', query('www.io.test', 'A', { id: 1 })],
      ['AAAA with EDNS', query('www.io.test', 'AAAA', { id: 2, edns: true })],
      ['CNAME chase', query('alias.io.test', 'A', { id: 3 })],
      ['wildcard', query('anything.io.test', 'A', { id: 4 })],
      ['NXDOMAIN under a wildcard-free name', query('a.b.ns1.io.test', 'A', { id: 5 })],
      ['REFUSED outside our zones', query('example.net', 'A', { id: 6 })],
      ['NOTIMP', notimp],
      ['truncated at 512 without EDNS', query('big.io.test', 'TXT', { id: 8 })],
      ['truncated at the offered 1232', ednsQuery('big.io.test', 'TXT', 9, 1232)],
      ['FORMERR for a question that runs off the packet', query('www.io.test', 'A', { id: 10 }).subarray(0, 20)],
      ['20 KB answer for a client that offers 65000', ednsQuery('big.io.test', 'TXT', 11, 65000)],
    ]
    for (const [what, msg] of cases) {
      const a = await udpExchange(batched.port, msg)
      const b = await udpExchange(dgram.port, msg)
      expect(b, what).not.toBeNull()
      expect(a?.toString('hex'), what).toBe(b!.toString('hex'))
    }
    // Too short to have a header: silence on both paths.
    expect(await udpExchange(batched.port, Buffer.from([1, 2, 3]), 300)).toBeNull()
    expect(await udpExchange(dgram.port, Buffer.from([1, 2, 3]), 300)).toBeNull()
  })

  it('reads a batch ahead on the batched path (every zone set here) and answers as without it', async () => {
    const ahead = new Answerer({ maxUdpSize: 65535, readAheadMinNames: 0 })
    ahead.table = answerer.table
    const l = await listenUdp('127.0.0.1', 0, ahead, log, observe, undefined, { io: 'batched' })
    listeners.push(l)
    const plain = await open('dgram')
    const names = ['www', 'alias', 'cdn', 'anything', 'nothere.ns1', 'big']
    const msgs = Array.from({ length: 120 }, (_, i) =>
      query(`${names[i % names.length]}.io.test`, i % 4 === 1 ? 'AAAA' : 'A', { id: i + 1, edns: i % 2 === 0 }),
    )
    // Generous waits: other test files load both cores meanwhile.
    const replies = await burst(l.port, msgs, '127.0.0.1', 10_000)
    expect(replies.size).toBe(msgs.length)
    const stats = ahead.readAheadStats
    // Sent in one loop, they arrive in batches of several: each batch read ahead, the names with a
    // node (www, alias, cdn, big; not the wildcard's or the missing one's) followed to a template.
    expect(stats.batches).toBeGreaterThan(0)
    expect(stats.batches).toBeLessThan(msgs.length)
    expect(stats.reached).toBeGreaterThan(0)
    expect(stats.reached).toBeLessThanOrEqual((msgs.length * 4) / names.length)
    for (const m of msgs.slice(0, 12)) {
      const b = await udpExchange(plain.port, m, 5000)
      expect(replies.get(m.readUInt16BE(0))?.toString('hex')).toBe(b!.toString('hex'))
    }
    // A sticky service without ECS: once this client has answers of its own, every batch of them
    // is followed to its template by the source address the addon put in the batch's records.
    const stick = (id: number): Buffer => query('stick.svc.test', 'A', { id })
    expect(await udpExchange(l.port, stick(1000), 5000)).not.toBeNull()
    const before = ahead.readAheadStats
    const sticky = Array.from({ length: 120 }, (_, i) => stick(2000 + i))
    const answered = await burst(l.port, sticky, '127.0.0.1', 10_000)
    expect(answered.size).toBe(sticky.length)
    const after = ahead.readAheadStats
    const batches = after.batches - before.batches
    expect(batches).toBeGreaterThan(0)
    // Every datagram of every batch read ahead (batches of one are not) reached its template.
    expect(after.reached - before.reached).toBeGreaterThanOrEqual(batches * 2)
    expect(after.reached - before.reached).toBeLessThanOrEqual(sticky.length)
  })

  it('rate-limits alike on both paths: the peer address reaches RRL from bytes and from text', async () => {
    const verdicts: Record<string, string[]> = {}
    for (const io of ['batched', 'dgram'] as const) {
      // One answer per second per /24, every limited response slipped: answer, then TC, TC.
      const rrl = new ResponseRateLimiter({ responsesPerSecond: 1, errorsPerSecond: 1, nxdomainsPerSecond: 1, slip: 1 })
      const l = await listenUdp('127.0.0.1', 0, answerer, log, observe, rrl, { io })
      listeners.push(l)
      verdicts[io] = []
      for (let id = 1; id <= 3; id++) {
        const m = decode((await udpExchange(l.port, query('www.io.test', 'A', { id })))!)
        verdicts[io].push(`${m.id}:${(m.flags! & 0x0200) !== 0 ? 'TC' : `${m.answers?.length ?? 0} answers`}`)
      }
    }
    expect(verdicts['batched']).toEqual(['1:1 answers', '2:TC', '3:TC'])
    expect(verdicts['dgram']).toEqual(verdicts['batched'])
  })

  it('answers a burst far larger than one batch, in batches', async () => {
    const l = await open('batched')
    const before = l.stats()
    const msgs = Array.from({ length: 600 }, (_, i) => query(i % 2 ? 'www.io.test' : 'cdn.io.test', 'A', { id: i }))
    const replies = await burst(l.port, msgs)
    expect(replies.size).toBe(600)
    for (const [id, r] of replies) {
      const m = decode(r)
      expect(m.id).toBe(id)
      expect(m.answers).toHaveLength(id % 2 ? 1 : 2)
    }
    const after = l.stats()
    expect(after.received - before.received).toBe(600)
    // Sent in one synchronous loop, the queries queue up and are read many per recvmmsg.
    expect(after.batches - before.batches).toBeLessThan(100)
    expect(after.dropped).toBe(0)
    // Closed, it keeps its totals (a lazy handover's main thread reports them next to the worker's).
    await l.close()
    expect(l.stats()).toEqual(after)
  })

  it('sends a batch in parts when its responses outgrow the output space', async () => {
    // 64 KiB of output space and 4 answers of ~21 KB: the fourth forces a flush mid-batch.
    const l = await open('batched', '127.0.0.1', 64 * 1024)
    const reference = await udpExchange(l.port, ednsQuery('big.io.test', 'TXT', 0, 65000))
    expect(reference!.length).toBeGreaterThan(20_000)
    const msgs = [1, 2, 3, 4, 5].map((id) => ednsQuery('big.io.test', 'TXT', id, 65000))
    msgs.push(query('www.io.test', 'A', { id: 6 }))
    const replies = await burst(l.port, msgs)
    expect([...replies.keys()].sort()).toEqual([1, 2, 3, 4, 5, 6])
    for (const id of [1, 2, 3, 4, 5]) {
      expect(replies.get(id)!.subarray(2).equals(reference!.subarray(2))).toBe(true)
    }
    expect(decode(replies.get(6)!).answers?.[0]).toMatchObject({ type: 'A', data: '192.0.2.10' })
  })

  it('answers the largest datagrams as dgram does, and keeps answering', async () => {
    const batched = await open('batched')
    const dgram = await open('dgram')
    for (const size of [5000, 40_000, 65_507]) {
      const q = query('www.io.test', 'A', { id: 77 })
      const huge = Buffer.concat([q, Buffer.alloc(size - q.length)])
      const a = await udpExchange(batched.port, huge)
      const b = await udpExchange(dgram.port, huge)
      expect(a?.toString('hex'), `${size} bytes`).toBe(b?.toString('hex'))
    }
    const r = await udpExchange(batched.port, query('www.io.test', 'A', { id: 78 }))
    expect(decode(r!).id).toBe(78)
  })

  it('answers over IPv6 and hands the client address on as text', async () => {
    const l = await open('batched', '::1')
    observed = []
    const r = await dig('::1', l.port, 'www.io.test', 'AAAA')
    expect(r.status).toBe('NOERROR')
    expect(r.answer.map((a) => a.data)).toEqual(['2001:db8::10'])
    expect(observed).toEqual(['::1'])
    const v4 = await open('batched')
    observed = []
    await dig('127.0.0.1', v4.port, 'www.io.test', 'A')
    expect(observed).toEqual(['127.0.0.1'])
  })

  it('steers a SO_REUSEPORT group to one socket, and falls back to the flow hash once it moved', async () => {
    const first = await listenUdp('127.0.0.1', 0, answerer, log, observe, undefined, { io: 'batched', reusePort: true })
    const second = await listenUdp('127.0.0.1', first.port, answerer, log, observe, undefined, {
      io: 'batched',
      reusePort: true,
    })
    listeners.push(first, second)
    // Each query from its own socket: its own source port, so its own flow hash.
    const fromPorts = async (n: number, id0: number): Promise<number> => {
      const replies = await Promise.all(
        Array.from({ length: n }, (_, i) => udpExchange(first.port, query('www.io.test', 'A', { id: id0 + i }), 2000)),
      )
      return replies.filter((r) => r !== null).length
    }
    const received = () => [first.stats().received, second.stats().received] as const
    const [a0, b0] = received()
    expect(await fromPorts(32, 1)).toBe(32)
    const [a1, b1] = received()
    // The hash spreads 32 flows over both (each gets none with probability 2^-32).
    expect(a1 - a0).toBeGreaterThan(0)
    expect(b1 - b0).toBeGreaterThan(0)
    // Sockets are numbered in joining order: 1 is the second one.
    expect(second.steer(1)).toBe(true)
    expect(await fromPorts(32, 100)).toBe(32)
    const [a2, b2] = received()
    expect(a2 - a1).toBe(0)
    expect(b2 - b1).toBe(32)
    // The first one leaves; the second becomes number 0, past which the program points: hash again.
    await first.close()
    expect(await fromPorts(16, 200)).toBe(16)
    expect(second.stats().received - b2).toBe(16)
  })

  it('releases the port on close', async () => {
    const l = await open('batched')
    const port = l.port
    await l.close()
    const s = createSocket('udp4')
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject)
      s.bind(port, '127.0.0.1', resolve)
    })
    s.close()
    expect(l.stats()).toEqual({ received: 0, batches: 0, dropped: 0 })
  })

  it('closes the socket of a worker thread that is terminated without closing it', async () => {
    // A crashed data-plane worker must not leave its socket in the SO_REUSEPORT group: the kernel
    // would keep handing it a share of the queries, which nobody reads any more.
    const loader = new URL('../../src/native/udp-batch.ts', import.meta.url).href
    const worker = new Worker(
      `
      const { parentPort } = require('node:worker_threads')
      import(${JSON.stringify(loader)}).then(({ loadUdpBatch }) => {
        const a = loadUdpBatch()
        const [, port] = a.open(4, '127.0.0.1', 0, true, 0, Buffer.alloc(a.BATCH * a.IN_SLOT),
          Buffer.alloc(a.BATCH * a.META), Buffer.alloc(a.MIN_OUT), () => {})
        parentPort.postMessage(port)
      })`,
      { eval: true },
    )
    const [port] = (await once(worker, 'message')) as [number]
    // Taken while the worker holds it (no SO_REUSEPORT here, so any open socket on it refuses us).
    const probe = (): Promise<boolean> =>
      new Promise((resolve) => {
        const s = createSocket('udp4')
        s.once('error', () => {
          s.close()
          resolve(false)
        })
        s.bind(port, '127.0.0.1', () => {
          s.close()
          resolve(true)
        })
      })
    expect(await probe()).toBe(false)
    await worker.terminate()
    expect(await probe()).toBe(true)
  })

  it('says why it cannot bind, with the errno code', async () => {
    const l = await open('batched')
    await expect(listenUdp('127.0.0.1', l.port, answerer, log, observe, undefined, { io: 'batched' })).rejects.toThrow(
      expect.objectContaining({ code: 'EADDRINUSE' }),
    )
  })
})
