/**
 * DNS behaviour of a real listening server, asked by the real `dig`. One `describe` per RFC topic;
 * the fixture zone is test/fixtures/zones/example.org.zone.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ZoneTable } from '../../src/zone/table.ts'
import { dig, rrStrings } from '../helpers/dig.ts'
import { decode, query, udpExchange } from '../helpers/raw.ts'
import { startTestServer, type TestServer } from '../helpers/server.ts'

let s: TestServer
const q = (...args: string[]) => dig('127.0.0.1', s.port, ...args)

beforeAll(async () => {
  s = await startTestServer({
    answer: { nsid: Buffer.from('test-nsid'), chaos: { id: 'instance-7', version: 'gslb-test' } },
  })
})
afterAll(async () => {
  await s.stop()
})

describe('authority', () => {
  it('sets AA and never RA on an authoritative answer, even when recursion is desired', async () => {
    const r = await q('host.example.org', 'A', '+rec')
    expect(r.status).toBe('NOERROR')
    expect(r.flags.has('aa')).toBe(true)
    expect(r.flags.has('ra')).toBe(false)
    expect(r.flags.has('rd')).toBe(true)
    expect(rrStrings(r.answer)).toEqual(['host.example.org. A 192.0.2.70'])
  })

  it('refuses names outside every served zone instead of recursing', async () => {
    const r = await q('www.example.net', 'A', '+rec')
    expect(r.status).toBe('REFUSED')
    expect(r.flags.has('aa')).toBe(false)
    expect(r.answer).toHaveLength(0)
  })

  it('refuses the root and a parent of a served zone', async () => {
    expect((await q('.', 'NS')).status).toBe('REFUSED')
    expect((await q('org', 'SOA')).status).toBe('REFUSED')
  })

  it('answers SOA at the apex', async () => {
    const r = await q('example.org', 'SOA')
    expect(r.answer).toHaveLength(1)
    expect(r.answer[0]!.data).toBe('ns1.example.org. hostmaster.example.org. 2026010101 7200 3600 1209600 120')
    expect(r.answer[0]!.ttl).toBe(3600)
  })

  it('answers NS at the apex with in-zone server addresses in the additional section', async () => {
    const r = await q('example.org', 'NS')
    expect(rrStrings(r.answer)).toEqual(['example.org. NS ns1.example.org.', 'example.org. NS ns2.example.org.'])
    expect(rrStrings(r.additional)).toEqual([
      'ns1.example.org. A 192.0.2.1',
      'ns1.example.org. AAAA 2001:db8::1',
      'ns2.example.org. A 192.0.2.2',
    ])
  })
})

describe('negative answers (RFC 2308)', () => {
  it('gives NXDOMAIN with the SOA in authority at TTL min(SOA TTL, SOA minimum)', async () => {
    const r = await q('nope.example.org', 'A')
    expect(r.status).toBe('NXDOMAIN')
    expect(r.flags.has('aa')).toBe(true)
    expect(r.answer).toHaveLength(0)
    expect(r.authority).toHaveLength(1)
    expect(r.authority[0]!.type).toBe('SOA')
    expect(r.authority[0]!.name).toBe('example.org.')
    expect(r.authority[0]!.ttl).toBe(120)
  })

  it('gives NODATA (NOERROR, empty answer, SOA) for a type the name does not have', async () => {
    const r = await q('ns2.example.org', 'AAAA')
    expect(r.status).toBe('NOERROR')
    expect(r.answer).toHaveLength(0)
    expect(r.authority.map((a) => a.type)).toEqual(['SOA'])
    expect(r.authority[0]!.ttl).toBe(120)
  })

  it('treats an empty non-terminal as existing: NODATA, not NXDOMAIN', async () => {
    const r = await q('b.ent.example.org', 'A')
    expect(r.status).toBe('NOERROR')
    expect(r.answer).toHaveLength(0)
    expect(r.authority.map((a) => a.type)).toEqual(['SOA'])
    expect((await q('ent.example.org', 'TXT')).status).toBe('NOERROR')
    expect((await q('c.b.ent.example.org', 'A')).status).toBe('NXDOMAIN')
  })

  it('gives NXDOMAIN for deep names below a leaf', async () => {
    const r = await q('x.y.host.example.org', 'A')
    expect(r.status).toBe('NXDOMAIN')
  })
})

describe('CNAME', () => {
  it('chases a chain inside the zone and returns every step', async () => {
    const r = await q('alias2.example.org', 'A')
    expect(r.status).toBe('NOERROR')
    expect(r.answer.map((a) => `${a.name} ${a.type} ${a.data}`)).toEqual([
      'alias2.example.org. CNAME alias.example.org.',
      'alias.example.org. CNAME host.example.org.',
      'host.example.org. A 192.0.2.70',
    ])
  })

  it('answers the CNAME itself when CNAME is asked for', async () => {
    const r = await q('alias2.example.org', 'CNAME')
    expect(rrStrings(r.answer)).toEqual(['alias2.example.org. CNAME alias.example.org.'])
  })

  it('stops at a target outside the zone with NOERROR and no authority', async () => {
    const r = await q('outside.example.org', 'A')
    expect(r.status).toBe('NOERROR')
    expect(rrStrings(r.answer)).toEqual(['outside.example.org. CNAME www.example.net.'])
    expect(r.authority).toHaveLength(0)
  })

  it('reports NXDOMAIN for a dangling in-zone target, keeping the CNAME (RFC 6604)', async () => {
    const r = await q('dangling.example.org', 'A')
    expect(r.status).toBe('NXDOMAIN')
    expect(rrStrings(r.answer)).toEqual(['dangling.example.org. CNAME missing.example.org.'])
    expect(r.authority.map((a) => a.type)).toEqual(['SOA'])
  })

  it('reports NODATA after a chain whose end lacks the type', async () => {
    const r = await q('alias.example.org', 'MX')
    expect(r.status).toBe('NOERROR')
    expect(rrStrings(r.answer)).toEqual(['alias.example.org. CNAME host.example.org.'])
    expect(r.authority.map((a) => a.type)).toEqual(['SOA'])
  })

  it('detects a CNAME loop and answers each record once', async () => {
    const r = await q('loop1.example.org', 'A')
    expect(r.status).toBe('NOERROR')
    expect(rrStrings(r.answer)).toEqual([
      'loop1.example.org. CNAME loop2.example.org.',
      'loop2.example.org. CNAME loop1.example.org.',
    ])
  })

  it('chases into a wildcard', async () => {
    const r = await q('towild.example.org', 'A')
    expect(r.answer.map((a) => `${a.name} ${a.type} ${a.data}`)).toEqual([
      'towild.example.org. CNAME x.wild.example.org.',
      'x.wild.example.org. A 192.0.2.80',
    ])
  })

  it('stops at a target below a delegation and adds the referral', async () => {
    const r = await q('todeleg.example.org', 'A')
    expect(rrStrings(r.answer)).toEqual(['todeleg.example.org. CNAME host.deleg.example.org.'])
    expect(r.authority.map((a) => a.type)).toEqual(['NS', 'NS'])
  })
})

describe('wildcards (RFC 4592)', () => {
  it('synthesises the answer with the query name as owner', async () => {
    const r = await q('anything.wild.example.org', 'A')
    expect(r.status).toBe('NOERROR')
    expect(r.flags.has('aa')).toBe(true)
    expect(rrStrings(r.answer)).toEqual(['anything.wild.example.org. A 192.0.2.80'])
  })

  it('synthesises for names several labels below the closest encloser', async () => {
    const r = await q('a.b.c.wild.example.org', 'TXT')
    expect(rrStrings(r.answer)).toEqual(['a.b.c.wild.example.org. TXT "wildcard"'])
  })

  it('does not apply to a name that exists', async () => {
    expect(rrStrings((await q('sub.wild.example.org', 'A')).answer)).toEqual(['sub.wild.example.org. A 192.0.2.81'])
    expect((await q('sub.wild.example.org', 'TXT')).answer).toHaveLength(0)
  })

  it('does not apply below an existing name that has no wildcard of its own', async () => {
    expect((await q('x.sub.wild.example.org', 'A')).status).toBe('NXDOMAIN')
  })

  it('gives NODATA for a type the wildcard lacks', async () => {
    const r = await q('nothing.wild.example.org', 'MX')
    expect(r.status).toBe('NOERROR')
    expect(r.answer).toHaveLength(0)
    expect(r.authority.map((a) => a.type)).toEqual(['SOA'])
  })

  it('synthesises a CNAME and chases it', async () => {
    const r = await q('foo.cwild.example.org', 'A')
    expect(r.answer.map((a) => `${a.name} ${a.type} ${a.data}`)).toEqual([
      'foo.cwild.example.org. CNAME host.example.org.',
      'host.example.org. A 192.0.2.70',
    ])
  })

  it('answers the literal wildcard name like any other', async () => {
    expect(rrStrings((await q('*.wild.example.org', 'A')).answer)).toEqual(['*.wild.example.org. A 192.0.2.80'])
  })
})

describe('delegations', () => {
  it('refers a name below the cut with NS in authority, glue in additional and AA clear', async () => {
    const r = await q('www.deleg.example.org', 'A')
    expect(r.status).toBe('NOERROR')
    expect(r.flags.has('aa')).toBe(false)
    expect(r.answer).toHaveLength(0)
    expect(rrStrings(r.authority)).toEqual([
      'deleg.example.org. NS ns.deleg.example.org.',
      'deleg.example.org. NS ns.example.net.',
    ])
    expect(rrStrings(r.additional)).toEqual([
      'ns.deleg.example.org. A 192.0.2.100',
      'ns.deleg.example.org. AAAA 2001:db8::100',
    ])
  })

  it('refers a query for the cut itself, and for glue names', async () => {
    for (const name of ['deleg.example.org', 'ns.deleg.example.org', 'a.b.deleg.example.org']) {
      const r = await q(name, 'A')
      expect(r.flags.has('aa'), name).toBe(false)
      expect(
        r.authority.map((a) => a.type),
        name,
      ).toEqual(['NS', 'NS'])
    }
  })

  it('answers DS at the cut from the parent side, authoritatively', async () => {
    const r = await q('deleg.example.org', 'DS')
    expect(r.flags.has('aa')).toBe(true)
    expect(r.status).toBe('NOERROR')
    expect(r.authority.map((a) => a.type)).toEqual(['SOA'])
  })
})

describe('additional-section processing', () => {
  it('adds in-zone MX exchange addresses and skips out-of-zone ones', async () => {
    const r = await q('example.org', 'MX')
    expect(rrStrings(r.answer)).toEqual([
      'example.org. MX 10 mail.example.org.',
      'example.org. MX 20 mail2.example.net.',
    ])
    expect(rrStrings(r.additional)).toEqual(['mail.example.org. A 192.0.2.25', 'mail.example.org. AAAA 2001:db8::25'])
  })

  it('adds SRV target addresses', async () => {
    const r = await q('_sip._tcp.example.org', 'SRV')
    expect(rrStrings(r.answer)).toEqual(['_sip._tcp.example.org. SRV 10 60 5060 sipserver.example.org.'])
    expect(rrStrings(r.additional)).toEqual(['sipserver.example.org. A 192.0.2.60'])
  })
})

describe('record types', () => {
  it.each([
    ['example.org', 'TXT', 'example.org. TXT "hello world" "second string"'],
    ['example.org', 'CAA', 'example.org. CAA 0 issue "ca.example.net"'],
    ['ptr.example.org', 'PTR', 'ptr.example.org. PTR host.example.org.'],
    ['unknown.example.org', 'TYPE65280', 'unknown.example.org. TYPE65280 \\# 4 0A000001'],
  ])('serves %s %s', async (name, type, expected) => {
    expect(rrStrings((await q(name, type)).answer)).toEqual([expected])
  })

  it('answers ANY with a small subset (RFC 8482), not every RRset', async () => {
    const r = await q('example.org', 'ANY')
    expect(r.status).toBe('NOERROR')
    const types = new Set(r.answer.map((a) => a.type))
    expect(types.size).toBeGreaterThan(0)
    expect(types.has('MX') && types.has('TXT') && types.has('SOA')).toBe(false)
    expect([...types]).toEqual(['A'])
  })
})

describe('names', () => {
  it('matches case-insensitively and echoes the question in the client case', async () => {
    const r = await q('HoSt.ExAmPlE.OrG', 'A')
    expect(r.status).toBe('NOERROR')
    expect(r.raw).toContain(';HoSt.ExAmPlE.OrG.')
    expect(r.answer[0]!.data).toBe('192.0.2.70')
  })

  it('compresses names in responses', async () => {
    const reply = await udpExchange(s.port, query('example.org', 'MX'))
    expect(reply).not.toBeNull()
    // Uncompressed, the two MX owners and mail.example.org would repeat "example.org" in full.
    const pointers = [...reply!].filter((b, i) => (b & 0xc0) === 0xc0 && i > 12).length
    expect(pointers).toBeGreaterThanOrEqual(3)
    const decoded = decode(reply!)
    expect(decoded.answers).toHaveLength(2)
    // dns-packet never compresses: re-encoding the same message must be larger.
    const { encode } = await import('dns-packet')
    expect(encode({ ...decoded, type: 'response' }).length).toBeGreaterThan(reply!.length)
  })
})

describe('EDNS0 (RFC 6891)', () => {
  it('echoes OPT advertising a 1232-byte UDP payload', async () => {
    const r = await q('host.example.org', 'A', '+edns=0', '+bufsize=4096')
    expect(r.opt.join('\n')).toMatch(/EDNS: version: 0, flags:; udp: 1232/)
  })

  it('omits OPT when the query had none', async () => {
    const r = await q('host.example.org', 'A', '+noedns')
    expect(r.opt).toHaveLength(0)
    expect(r.status).toBe('NOERROR')
  })

  it('answers BADVERS to EDNS version 1', async () => {
    const r = await q('host.example.org', 'A', '+edns=1', '+noednsneg')
    expect(r.status).toBe('BADVERS')
    expect(r.opt.join('\n')).toMatch(/version: 0/)
    expect(r.answer).toHaveLength(0)
  })

  it('ignores unknown options', async () => {
    const r = await q('host.example.org', 'A', '+ednsopt=65001:abcdef')
    expect(r.status).toBe('NOERROR')
    expect(rrStrings(r.answer)).toEqual(['host.example.org. A 192.0.2.70'])
  })

  it('copies the DO bit', async () => {
    const r = await q('host.example.org', 'A', '+dnssec')
    expect(r.opt.join('\n')).toMatch(/flags: do;/)
  })

  it('answers NSID when asked and configured (RFC 5001)', async () => {
    const r = await q('host.example.org', 'A', '+nsid')
    expect(r.opt.join('\n')).toContain('("test-nsid")')
    expect((await q('host.example.org', 'A')).opt.join('\n')).not.toContain('NSID')
  })

  it('returns FORMERR for a query with two OPT records', async () => {
    const base = query('host.example.org', 'A', { edns: true })
    const opt = base.subarray(base.length - 11)
    const twice = Buffer.concat([base, opt])
    twice.writeUInt16BE(2, 10)
    const reply = await udpExchange(s.port, twice)
    expect(reply).not.toBeNull()
    expect(reply![3]! & 0xf).toBe(1)
    expect(reply!.readUInt16BE(0)).toBe(4242)
  })

  it('echoes ECS with scope /0 for answers that do not depend on the client (RFC 7871)', async () => {
    const r = await q('host.example.org', 'A', '+subnet=198.51.100.0/24')
    expect(r.opt.join('\n')).toContain('CLIENT-SUBNET: 198.51.100.0/24/0')
  })

  it('returns FORMERR for a malformed ECS option', async () => {
    // Source prefix /24 but host bits set in the address: RFC 7871 section 6 says FORMERR.
    const r = await q('host.example.org', 'A', '+ednsopt=8:00011800c63364ff')
    expect(r.status).toBe('FORMERR')
  })
})

describe('truncation', () => {
  it('sets TC over UDP without EDNS when the answer exceeds 512 bytes, keeping whole RRsets', async () => {
    const r = await q('big.example.org', 'A', '+noedns', '+ignore')
    expect(r.flags.has('tc')).toBe(true)
    expect(r.size).toBeLessThanOrEqual(512)
    expect(r.answer).toHaveLength(0)
  })

  it('lets dig retry over TCP and get all 40 records', async () => {
    const r = await q('big.example.org', 'A', '+noedns')
    expect(r.transport).toBe('TCP')
    expect(r.flags.has('tc')).toBe(false)
    expect(r.answer).toHaveLength(40)
  })

  it('fits 40 A records into a 1232-byte EDNS response without TC', async () => {
    const r = await q('big.example.org', 'A', '+bufsize=1232', '+ignore')
    expect(r.flags.has('tc')).toBe(false)
    expect(r.answer).toHaveLength(40)
    expect(r.transport).toBe('UDP')
  })

  it('truncates above our 1232-byte cap even when the client offers 4096', async () => {
    const r = await q('bigtxt.example.org', 'TXT', '+bufsize=4096', '+ignore')
    expect(r.flags.has('tc')).toBe(true)
    expect(r.size).toBeLessThanOrEqual(1232)
    const full = await q('bigtxt.example.org', 'TXT', '+tcp')
    expect(full.answer).toHaveLength(6)
  })

  it('drops optional additional records without setting TC', async () => {
    // MX answer plus additional fits 512 easily; force a small limit by using a no-EDNS query on NS with glue.
    const r = await q('example.org', 'NS', '+noedns', '+ignore')
    expect(r.flags.has('tc')).toBe(false)
    expect(r.answer).toHaveLength(2)
  })
})

describe('failure containment', () => {
  it('answers SERVFAIL when answering throws, and recovers once the fault is gone', async () => {
    const good = s.server.answerer.table
    const broken = {
      nodes: {
        get() {
          throw new Error('simulated bug')
        },
      },
      zones: [],
    } as unknown as ZoneTable
    s.server.answerer.table = broken
    try {
      const r = await q('host.example.org', 'A')
      expect(r.status).toBe('SERVFAIL')
      const t = await q('+tcp', 'host.example.org', 'A')
      expect(t.status).toBe('SERVFAIL')
    } finally {
      s.server.answerer.table = good
    }
    expect((await q('host.example.org', 'A')).status).toBe('NOERROR')
  })
})

describe('CHAOS class', () => {
  it('answers id.server and version.bind when configured', async () => {
    const id = await q('id.server', 'TXT', '-c', 'CH')
    expect(id.answer.map((a) => `${a.class} ${a.data}`)).toEqual(['CH "instance-7"'])
    const v = await q('version.bind', 'TXT', '-c', 'CH')
    expect(v.answer[0]!.data).toBe('"gslb-test"')
  })

  it('refuses other CHAOS names', async () => {
    expect((await q('authors.bind', 'TXT', '-c', 'CH')).status).toBe('REFUSED')
  })
})
