/**
 * Response rate limiting against a real listening server: a burst from one client network is
 * limited (dropped, with every 2nd limited response slipped as TC), another network answered at
 * the same time is not, and TCP is never limited.
 */

import { createSocket } from 'node:dgram'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ResponseRateLimiter } from '../../src/dns/rrl.ts'
import { dig } from '../helpers/dig.ts'
import { decode, query } from '../helpers/raw.ts'
import { startTestServer, type TestServer } from '../helpers/server.ts'

let s: TestServer
const rrl = new ResponseRateLimiter({ responsesPerSecond: 5, errorsPerSecond: 5, nxdomainsPerSecond: 5, slip: 2 })
beforeAll(async () => {
  s = await startTestServer({ rrl })
})
afterAll(async () => {
  await s.stop()
})

/** Sends `count` queries from a socket bound to `from` (all of 127/8 is loopback) and sorts the replies. */
async function burst(
  from: string,
  count: number,
  gapMs = 0,
): Promise<{ full: number; truncated: number; silent: number }> {
  const sock = createSocket('udp4')
  await new Promise<void>((r) => sock.bind(0, from, r))
  const seen = new Map<number, Buffer>()
  sock.on('message', (m) => seen.set(m.readUInt16BE(0), m))
  for (let i = 0; i < count; i++) {
    sock.send(query('host.example.org', 'A', { id: i + 1 }), s.port, '127.0.0.1')
    if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs))
  }
  await new Promise((r) => setTimeout(r, 300))
  sock.close()
  let full = 0
  let truncated = 0
  for (const m of seen.values()) {
    const d = decode(m)
    if ((d.flags! & 0x200) !== 0) truncated++
    else if ((d.answers?.length ?? 0) > 0) full++
  }
  return { full, truncated, silent: count - seen.size }
}

describe('response rate limiting', () => {
  it('limits a burst from one network while another network is answered in full', async () => {
    const [flood, other] = await Promise.all([burst('127.0.0.1', 200), burst('127.0.1.1', 4, 50)])
    expect(flood.full).toBeGreaterThanOrEqual(5)
    expect(flood.full).toBeLessThanOrEqual(10)
    // Every 2nd limited response slips as a truncated answer, so real clients retry over TCP.
    const limited = 200 - flood.full
    expect(Math.abs(flood.truncated - limited / 2)).toBeLessThanOrEqual(2)
    expect(flood.silent).toBeGreaterThan(80)
    expect(other).toEqual({ full: 4, truncated: 0, silent: 0 })
    expect(rrl.stats().dropped).toBeGreaterThan(80)
  })

  it('never limits TCP, which a spoofed source cannot use', async () => {
    await burst('127.0.0.1', 50)
    for (let i = 0; i < 10; i++) {
      const r = await dig('127.0.0.1', s.port, '+tcp', 'host.example.org', 'A')
      expect(r.answer[0]?.data).toBe('192.0.2.70')
    }
  })
})
