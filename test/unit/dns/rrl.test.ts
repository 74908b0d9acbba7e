/**
 * Response rate limiting: accounts per (client prefix, kind, name), debt, slip, refill, the bounded
 * table, and the truncated response a slip sends. Time is always an explicit `now` in ms.
 */

import * as dnsPacket from 'dns-packet'
import { describe, expect, it } from 'vitest'
import { parseAddress } from '../../../src/dns/address.ts'
import {
  ResponseRateLimiter,
  type RrlConfig,
  type RrlKind,
  type RrlVerdict,
  truncatedResponse,
} from '../../../src/dns/rrl.ts'
import { ConfigError } from '../../../src/errors.ts'

const NAME = '\x03www\x07example\x03com\x00'
const ZONE = '\x07example\x03com\x00'

function ip(text: string): Uint8Array {
  const a = parseAddress(text)
  if (a === undefined) throw new Error(`bad address ${text}`)
  return a.bytes
}

function limiter(over: Partial<RrlConfig> = {}): ResponseRateLimiter {
  return new ResponseRateLimiter({
    responsesPerSecond: 10,
    errorsPerSecond: 5,
    nxdomainsPerSecond: 3,
    slip: 2,
    ...over,
  })
}

interface Tally {
  send: number
  drop: number
  slip: number
}

/** Sends `n` responses from `client`, the i-th at `at(i)`, and counts the verdicts. */
function burst(
  rrl: ResponseRateLimiter,
  client: string,
  n: number,
  at: (i: number) => number,
  kind: RrlKind = 'answer',
  name = NAME,
): Tally {
  const bytes = ip(client)
  const family = bytes.length === 4 ? 4 : 6
  const t: Tally = { send: 0, drop: 0, slip: 0 }
  for (let i = 0; i < n; i++) t[rrl.check(bytes, family, kind, name, at(i))]++
  return t
}

describe('ResponseRateLimiter', () => {
  it('limits a burst of 1000 responses from one /24 within one second to the rate', () => {
    const rrl = limiter({ slip: 0 })
    const hosts = ['192.0.2.1', '192.0.2.77', '192.0.2.254']
    let sent = 0
    for (let i = 0; i < 1000; i++) {
      const host = hosts[i % hosts.length]!
      if (rrl.check(ip(host), 4, 'answer', NAME, 5_000 + i) === 'send') sent++
    }
    // The credit earned during the second (10/s) only pays off the debt the flood keeps running up.
    expect(sent).toBe(10)
    expect(rrl.stats()).toEqual({ sent: 10, dropped: 990, slipped: 0, entries: 1 })
  })

  it('keeps a flooding network in debt until it has been quiet for the window', () => {
    const rrl = limiter({ slip: 0, window: 15 })
    burst(rrl, '192.0.2.1', 1000, (i) => i)
    // A plain token bucket would answer again after 100 ms; the debt (-rate * window) lasts longer.
    expect(rrl.check(ip('192.0.2.1'), 4, 'answer', NAME, 999 + 9_000)).toBe('drop')
    // 15 s after the last response, the account starts over with full credit.
    const after = burst(rrl, '192.0.2.1', 11, () => 999 + 9_000 + 15_000)
    expect(after).toEqual({ send: 10, drop: 1, slip: 0 })
  })

  it('does not limit another /24 flooding at the same time', () => {
    const rrl = limiter({ slip: 0 })
    const a = ip('192.0.2.10')
    const b = ip('198.51.100.10')
    let sentA = 0
    let sentB = 0
    for (let i = 0; i < 1000; i++) {
      if (rrl.check(a, 4, 'answer', NAME, i) === 'send') sentA++
      // B asks at its rate: one response every 100 ms, all answered.
      if (i % 100 === 0 && rrl.check(b, 4, 'answer', NAME, i) === 'send') sentB++
    }
    expect(sentA).toBe(10)
    expect(sentB).toBe(10)
  })

  it('keeps separate accounts for different names from the same network', () => {
    const rrl = limiter({ slip: 0 })
    expect(burst(rrl, '192.0.2.1', 20, () => 0, 'answer', NAME).send).toBe(10)
    expect(burst(rrl, '192.0.2.1', 20, () => 0, 'answer', '\x04mail' + ZONE).send).toBe(10)
  })

  it('slips exactly every Nth limited response, starting with the first', () => {
    for (const slip of [1, 2, 3, 7]) {
      const rrl = limiter({ slip })
      const bytes = ip('192.0.2.1')
      const limited: RrlVerdict[] = []
      for (let i = 0; i < 10 + 70; i++) {
        const v = rrl.check(bytes, 4, 'answer', NAME, 0)
        if (i >= 10) limited.push(v)
      }
      const expected = limited.map((_, k) => (k % slip === 0 ? 'slip' : 'drop'))
      expect(limited).toEqual(expected)
      expect(rrl.stats().slipped).toBe(Math.ceil(70 / slip))
    }
  })

  it('never slips with slip 0', () => {
    const t = burst(limiter({ slip: 0 }), '192.0.2.1', 100, () => 0)
    expect(t).toEqual({ send: 10, drop: 90, slip: 0 })
  })

  it('limits NXDOMAIN and errors separately from answers, each at its own rate', () => {
    const rrl = limiter({ slip: 0 })
    expect(burst(rrl, '192.0.2.1', 50, () => 0, 'answer', NAME).send).toBe(10)
    // The same network and name, but other kinds: their accounts are untouched by the answer flood.
    expect(burst(rrl, '192.0.2.1', 50, () => 0, 'nxdomain', ZONE).send).toBe(3)
    expect(burst(rrl, '192.0.2.1', 50, () => 0, 'error', '').send).toBe(5)
    expect(burst(rrl, '192.0.2.1', 50, () => 0, 'nxdomain', NAME).send).toBe(3)
    expect(rrl.stats().entries).toBe(4)
  })

  it('does not limit a kind whose rate is 0', () => {
    const rrl = limiter({ errorsPerSecond: 0, slip: 0 })
    expect(burst(rrl, '192.0.2.1', 500, () => 0, 'error', '').send).toBe(500)
    expect(rrl.stats().entries).toBe(0)
  })

  it('refills credit over time, pro rata and never beyond one second worth', () => {
    const rrl = limiter({ slip: 0 })
    expect(burst(rrl, '192.0.2.1', 10, () => 1_000)).toEqual({ send: 10, drop: 0, slip: 0 })
    // Half a second at 10/s earns 5 credits.
    expect(burst(rrl, '192.0.2.1', 6, () => 1_500)).toEqual({ send: 5, drop: 1, slip: 0 })
    // The one limited response left a debt of 1, paid off by the next 100 ms.
    expect(burst(rrl, '192.0.2.1', 2, () => 1_600)).toEqual({ send: 0, drop: 2, slip: 0 })
    expect(burst(rrl, '192.0.2.1', 1, () => 1_900)).toEqual({ send: 1, drop: 0, slip: 0 })
    // Long quiet (but shorter than the window): credit is capped at the rate.
    expect(burst(rrl, '192.0.2.1', 30, () => 10_000)).toEqual({ send: 10, drop: 20, slip: 0 })
  })

  it('answers a client asking exactly at the rate forever', () => {
    const t = burst(limiter(), '192.0.2.1', 10_000, (i) => i * 100)
    expect(t).toEqual({ send: 10_000, drop: 0, slip: 0 })
  })

  it('groups IPv6 clients by /56', () => {
    const rrl = limiter({ slip: 0 })
    expect(burst(rrl, '2001:db8:0:ab00::1', 6, () => 0).send).toBe(6)
    // Same /56 (2001:db8:0:ab00::/56): shares the account.
    expect(burst(rrl, '2001:db8:0:abff:1234::9', 6, () => 0).send).toBe(4)
    // Neighbouring /56: an account of its own.
    expect(burst(rrl, '2001:db8:0:ac00::1', 20, () => 0).send).toBe(10)
    expect(rrl.stats().entries).toBe(2)
  })

  it('honours configured prefix lengths that do not end on a byte boundary', () => {
    const rrl = limiter({ slip: 0, ipv4Prefix: 20, ipv6Prefix: 60 })
    expect(burst(rrl, '192.0.16.1', 6, () => 0).send).toBe(6)
    expect(burst(rrl, '192.0.31.200', 6, () => 0).send).toBe(4)
    expect(burst(rrl, '192.0.32.1', 20, () => 0).send).toBe(10)
    expect(burst(rrl, '2001:db8::1', 6, () => 0).send).toBe(6)
    expect(burst(rrl, '2001:db8:0:f::1', 6, () => 0).send).toBe(4)
    expect(burst(rrl, '2001:db8:0:10::1', 20, () => 0).send).toBe(10)
  })

  it('accounts IPv4-mapped IPv6 clients by their IPv4 /24', () => {
    const rrl = limiter({ slip: 0 })
    expect(burst(rrl, '::ffff:192.0.2.1', 6, () => 0).send).toBe(6)
    expect(burst(rrl, '192.0.2.99', 6, () => 0).send).toBe(4)
    // Under /56 every mapped address would share one account; as IPv4 another /24 is separate.
    expect(burst(rrl, '::ffff:198.51.100.1', 20, () => 0).send).toBe(10)
  })

  it('keeps the table bounded under 200k distinct clients, forgetting the oldest', () => {
    const rrl = limiter()
    const bytes = new Uint8Array(4)
    for (let i = 0; i < 200_000; i++) {
      // Distinct /24s: the counter goes in the first three bytes.
      bytes[0] = 10 + (i >> 16)
      bytes[1] = (i >> 8) & 0xff
      bytes[2] = i & 0xff
      rrl.check(bytes, 4, 'answer', NAME, 0)
    }
    expect(rrl.stats().entries).toBe(100_000)
    expect(rrl.stats().sent).toBe(200_000)
  })

  it('evicts the least recently used account when full', () => {
    const rrl = limiter({ slip: 0, maxEntries: 3 })
    burst(rrl, '192.0.2.1', 20, () => 0)
    burst(rrl, '192.0.3.1', 20, () => 0)
    burst(rrl, '192.0.2.1', 1, () => 0) // touched again: no longer the oldest
    burst(rrl, '192.0.4.1', 20, () => 0)
    burst(rrl, '192.0.5.1', 1, () => 0) // evicts 192.0.3.0/24
    expect(rrl.stats().entries).toBe(3)
    expect(burst(rrl, '192.0.2.1', 1, () => 0).send).toBe(0)
    expect(burst(rrl, '192.0.3.1', 1, () => 0).send).toBe(1)
  })

  it('sweeps idle accounts as traffic goes on, and prune empties the table', () => {
    const rrl = limiter({ window: 15 })
    const bytes = new Uint8Array([10, 0, 0, 1])
    for (let i = 0; i < 1000; i++) {
      bytes[2] = i & 0xff
      bytes[1] = i >> 8
      rrl.check(bytes, 4, 'answer', NAME, 0)
    }
    expect(rrl.stats().entries).toBe(1000)
    // After the window, each new call removes up to two idle accounts.
    for (let i = 0; i < 600; i++) rrl.check(ip('192.0.2.1'), 4, 'answer', NAME, 15_000 + i * 100)
    expect(rrl.stats().entries).toBe(1)
    expect(rrl.prune(15_000 + 600 * 100 + 15_000)).toBe(1)
    expect(rrl.stats().entries).toBe(0)
  })

  it('gives the same verdicts whether or not idle accounts were evicted', () => {
    const run = (maxEntries: number, prune: boolean): RrlVerdict[] => {
      const rrl = limiter({ maxEntries })
      const out: RrlVerdict[] = []
      for (let round = 0; round < 4; round++) {
        const now = round * 20_000
        if (prune) rrl.prune(now)
        for (let i = 0; i < 40; i++) out.push(rrl.check(ip(`192.0.${i % 4}.1`), 4, 'answer', NAME, now + i))
      }
      return out
    }
    expect(run(100, true)).toEqual(run(100, false))
  })

  it('rejects bad settings, naming every one', () => {
    const make = (): ResponseRateLimiter =>
      new ResponseRateLimiter({
        responsesPerSecond: -1,
        errorsPerSecond: Number.NaN,
        nxdomainsPerSecond: 1,
        slip: 1.5,
        window: 0,
        ipv4Prefix: 33,
        ipv6Prefix: 129,
        maxEntries: 0,
      })
    expect(make).toThrow(ConfigError)
    let message = ''
    try {
      make()
    } catch (err) {
      message = (err as Error).message
    }
    for (const field of [
      'responsesPerSecond',
      'errorsPerSecond',
      'slip',
      'window',
      'ipv4Prefix',
      'ipv6Prefix',
      'maxEntries',
    ]) {
      expect(message).toContain(field)
    }
    expect(message).not.toContain('nxdomainsPerSecond')
  })
})

describe('truncatedResponse', () => {
  const query = (flags: number, withEdns: boolean): Buffer =>
    dnsPacket.encode({
      type: 'query',
      id: 0xbeef,
      flags,
      questions: [{ name: 'wWw.ExAmple.com', type: 'AAAA', class: 'IN' }],
      additionals: withEdns
        ? [
            {
              type: 'OPT',
              name: '.',
              udpPayloadSize: 1232,
              extendedRcode: 0,
              ednsVersion: 0,
              flags: 0,
              flag_do: false,
              options: [],
            },
          ]
        : [],
    })

  it('parses with dns-packet: TC and QR set, same ID and question, no records', () => {
    const q = query(dnsPacket.RECURSION_DESIRED | dnsPacket.CHECKING_DISABLED, true)
    const out = truncatedResponse(q)
    const p = dnsPacket.decode(out)
    expect(p.id).toBe(0xbeef)
    expect(p.type).toBe('response')
    expect(p.flag_tc).toBe(true)
    expect(p.flag_rd).toBe(true)
    expect(p.flag_cd).toBe(true)
    expect(p.flag_aa).toBe(false)
    expect(out.readUInt16BE(2) & 0xf).toBe(0)
    expect(p.questions).toEqual([{ name: 'wWw.ExAmple.com', type: 'AAAA', class: 'IN' }])
    expect(p.answers).toEqual([])
    expect(p.authorities).toEqual([])
    expect(p.additionals).toEqual([])
  })

  it('is never larger than the query, so a slip amplifies nothing', () => {
    for (const edns of [false, true]) {
      const q = query(0, edns)
      const out = truncatedResponse(q)
      expect(out.length).toBeLessThanOrEqual(q.length)
      expect(out.subarray(12)).toEqual(q.subarray(12, out.length))
      expect(dnsPacket.decode(out).flag_rd).toBe(false)
    }
  })

  it('leaves out a question it cannot walk', () => {
    const q = Buffer.from(query(0, false))
    q[12] = 0xc0 // a compression pointer where the question name starts
    const out = truncatedResponse(q)
    expect(out.length).toBe(12)
    expect(dnsPacket.decode(out).questions).toEqual([])
    expect(dnsPacket.decode(out).flag_tc).toBe(true)
  })
})
