/**
 * `parseQuery` verdicts on well-formed and malformed queries. Valid queries come from dns-packet;
 * malformed ones are built byte by byte, because no encoder will write them.
 */

import * as dnsPacket from 'dns-packet'
import { describe, expect, it } from 'vitest'
import { lowerKey, parseName } from '../../../src/dns/name.ts'
import { OPT_ECS, OPT_NSID, ParseResult, parseQuery, Query } from '../../../src/dns/query.ts'
import { T } from '../../../src/dns/types.ts'

type Verdict = keyof typeof ParseResult
const VERDICT = Object.fromEntries(Object.entries(ParseResult).map(([k, v]) => [v, k])) as Record<number, Verdict>

function parse(buf: Buffer, q = new Query()): { verdict: Verdict; q: Query } {
  return { verdict: VERDICT[parseQuery(buf, q)]!, q }
}

// ---------------------------------------------------------------------------------------------
// Hand-made wire pieces

const u16 = (n: number): Buffer => {
  const b = Buffer.alloc(2)
  b.writeUInt16BE(n)
  return b
}

/** A wire name from raw labels, terminated by the root label. */
function wire(...labels: Array<string | Buffer>): Buffer {
  const parts = labels.map((l) => (typeof l === 'string' ? Buffer.from(l, 'latin1') : l))
  return Buffer.concat([...parts.flatMap((p) => [Buffer.from([p.length]), p]), Buffer.from([0])])
}

const question = (name: Buffer, qtype: number = T.A, qclass = 1): Buffer =>
  Buffer.concat([name, u16(qtype), u16(qclass)])

/** One RR: owner bytes as given (may be compressed), then type, class, TTL and rdata. */
const rr = (owner: Buffer, type: number, rdata: Buffer, klass = 1, ttl = 0): Buffer => {
  const fixed = Buffer.alloc(10)
  fixed.writeUInt16BE(type, 0)
  fixed.writeUInt16BE(klass, 2)
  fixed.writeUInt32BE(ttl, 4)
  fixed.writeUInt16BE(rdata.length, 8)
  return Buffer.concat([owner, fixed, rdata])
}

const option = (code: number, data: Buffer): Buffer => Buffer.concat([u16(code), u16(data.length), data])

/** ECS option exactly as given (family, source, scope, address bytes), valid or not. */
const ecs = (family: number, source: number, scope: number, addr: number[]): Buffer =>
  option(OPT_ECS, Buffer.concat([u16(family), Buffer.from([source, scope, ...addr])]))

interface OptSpec {
  udp?: number
  version?: number
  dnssecOk?: boolean
  owner?: Buffer
  options?: Buffer[]
  /** Raw rdata, instead of `options`. */
  rdata?: Buffer
}

function opt(o: OptSpec = {}): Buffer {
  const rdata = o.rdata ?? Buffer.concat(o.options ?? [])
  const ttl = ((o.version ?? 0) << 16) | (o.dnssecOk ? 0x8000 : 0)
  return rr(o.owner ?? Buffer.from([0]), T.OPT, rdata, o.udp ?? 1232, ttl >>> 0)
}

interface MsgSpec {
  id?: number
  flags?: number
  /** Overrides the counts derived from the sections. */
  counts?: Partial<Record<'qd' | 'an' | 'ns' | 'ar', number>>
  question?: Buffer | undefined
  an?: Buffer[]
  ns?: Buffer[]
  ar?: Buffer[]
}

const WWW = wire('www', 'example', 'com')

function msg(m: MsgSpec = {}): Buffer {
  const q = 'question' in m ? m.question : question(WWW)
  const an = m.an ?? []
  const ns = m.ns ?? []
  const ar = m.ar ?? []
  const h = Buffer.alloc(12)
  h.writeUInt16BE(m.id ?? 0x1234, 0)
  h.writeUInt16BE(m.flags ?? 0, 2)
  h.writeUInt16BE(m.counts?.qd ?? (q ? 1 : 0), 4)
  h.writeUInt16BE(m.counts?.an ?? an.length, 6)
  h.writeUInt16BE(m.counts?.ns ?? ns.length, 8)
  h.writeUInt16BE(m.counts?.ar ?? ar.length, 10)
  return Buffer.concat([h, q ?? Buffer.alloc(0), ...an, ...ns, ...ar])
}

const opcode = (n: number): number => n << 11

// ---------------------------------------------------------------------------------------------
// Queries as a real client (dns-packet) writes them

type Ecs = { family: number; sourcePrefixLength: number; ip: string }

function dnsQuery(
  name: string,
  type: dnsPacket.RecordType,
  o: { id?: number; flags?: number; edns?: { udp?: number; dnssecOk?: boolean; ecs?: Ecs; nsid?: boolean } } = {},
): Buffer {
  const additionals: dnsPacket.Answer[] = []
  if (o.edns) {
    const options: dnsPacket.PacketOpt[] = []
    if (o.edns.ecs) options.push({ code: 8, scopePrefixLength: 0, ...o.edns.ecs })
    // dns-packet has no NSID encoder; an empty `data` writes the bare option.
    if (o.edns.nsid) options.push({ code: OPT_NSID, data: Buffer.alloc(0) } as unknown as dnsPacket.PacketOpt)
    additionals.push({
      type: 'OPT',
      name: '.',
      udpPayloadSize: o.edns.udp ?? 1232,
      extendedRcode: 0,
      ednsVersion: 0,
      flags: o.edns.dnssecOk ? dnsPacket.DNSSEC_OK : 0,
      flag_do: o.edns.dnssecOk ?? false,
      options,
    })
  }
  return dnsPacket.encode({
    type: 'query',
    id: o.id ?? 4242,
    flags: o.flags ?? 0,
    questions: [{ name, type, class: 'IN' }],
    additionals,
  })
}

describe('parseQuery on valid queries', () => {
  const cases: Array<{
    name: string
    packet: Buffer
    expect: Partial<Record<keyof Query, unknown>>
    ecsAddress?: number[]
  }> = [
    {
      name: 'a plain A query without EDNS',
      packet: dnsQuery('www.example.com', 'A', { id: 0xbeef, flags: dnsPacket.RECURSION_DESIRED }),
      expect: {
        id: 0xbeef,
        rd: true,
        opcode: 0,
        qtype: T.A,
        qclass: 1,
        hasQuestion: true,
        hasEdns: false,
        udpSize: 512,
      },
    },
    {
      name: 'an MX query with RD clear',
      packet: dnsQuery('example.com', 'MX'),
      expect: { rd: false, qtype: T.MX, qnameLen: 13, labelCount: 2 },
    },
    {
      name: 'a query with OPT, a 4096-byte payload and DO',
      packet: dnsQuery('www.example.com', 'AAAA', { edns: { udp: 4096, dnssecOk: true } }),
      expect: { hasEdns: true, ednsVersion: 0, udpSize: 4096, dnssecOk: true, nsidRequested: false, ecsFamily: 0 },
    },
    {
      name: 'an OPT offering less than 512 bytes (raised to 512)',
      packet: dnsQuery('www.example.com', 'A', { edns: { udp: 100 } }),
      expect: { hasEdns: true, udpSize: 512, dnssecOk: false },
    },
    {
      name: 'an NSID request',
      packet: dnsQuery('www.example.com', 'A', { edns: { nsid: true } }),
      expect: { hasEdns: true, nsidRequested: true, ecsFamily: 0 },
    },
    {
      name: 'ECS IPv4 /24',
      packet: dnsQuery('www.example.com', 'A', {
        edns: { ecs: { family: 1, sourcePrefixLength: 24, ip: '192.0.2.0' } },
      }),
      expect: { ecsFamily: 1, ecsSourcePrefix: 24, ecsScopePrefix: 0 },
      ecsAddress: [192, 0, 2],
    },
    {
      name: 'ECS IPv4 /20 (odd length, host bits zero)',
      packet: dnsQuery('www.example.com', 'A', {
        edns: { ecs: { family: 1, sourcePrefixLength: 20, ip: '198.51.96.0' } },
      }),
      expect: { ecsFamily: 1, ecsSourcePrefix: 20 },
      ecsAddress: [198, 51, 96],
    },
    {
      name: 'ECS IPv4 /32',
      packet: dnsQuery('www.example.com', 'A', {
        edns: { ecs: { family: 1, sourcePrefixLength: 32, ip: '203.0.113.7' } },
      }),
      expect: { ecsFamily: 1, ecsSourcePrefix: 32 },
      ecsAddress: [203, 0, 113, 7],
    },
    {
      name: 'ECS IPv4 /0 (no address bytes)',
      packet: dnsQuery('www.example.com', 'A', { edns: { ecs: { family: 1, sourcePrefixLength: 0, ip: '0.0.0.0' } } }),
      expect: { ecsFamily: 1, ecsSourcePrefix: 0 },
      ecsAddress: [],
    },
    {
      name: 'ECS IPv6 /56',
      packet: dnsQuery('www.example.com', 'AAAA', {
        edns: { ecs: { family: 2, sourcePrefixLength: 56, ip: '2001:db8:1:ff00::' } },
      }),
      expect: { ecsFamily: 2, ecsSourcePrefix: 56 },
      ecsAddress: [0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0xff],
    },
    {
      name: 'ECS IPv6 /63 (odd length, last bit clear)',
      packet: dnsQuery('www.example.com', 'AAAA', {
        edns: { ecs: { family: 2, sourcePrefixLength: 63, ip: '2001:db8:0:fffe::' } },
      }),
      expect: { ecsFamily: 2, ecsSourcePrefix: 63 },
      ecsAddress: [0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0xff, 0xfe],
    },
    {
      name: 'ECS IPv6 /128',
      packet: dnsQuery('www.example.com', 'AAAA', {
        edns: { ecs: { family: 2, sourcePrefixLength: 128, ip: '2001:db8::1' } },
      }),
      expect: { ecsFamily: 2, ecsSourcePrefix: 128 },
      ecsAddress: [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
    },
    {
      name: 'NSID and ECS together with an unknown option (COOKIE) in between',
      packet: msg({
        ar: [
          opt({ options: [option(OPT_NSID, Buffer.alloc(0)), option(10, Buffer.alloc(8, 7)), ecs(1, 16, 0, [10, 1])] }),
        ],
      }),
      expect: { hasEdns: true, nsidRequested: true, ecsFamily: 1, ecsSourcePrefix: 16 },
      ecsAddress: [10, 1],
    },
    {
      name: 'OPT after another additional RR whose owner is a pointer to the question',
      packet: msg({ ar: [rr(Buffer.from([0xc0, 12]), T.TXT, Buffer.from([1, 0x78])), opt({ udp: 1400 })] }),
      expect: { hasEdns: true, udpSize: 1400, qtype: T.A },
    },
    {
      name: 'an answer and an authority RR in the query (known-answer style), then OPT',
      packet: msg({
        an: [rr(Buffer.from([0xc0, 12]), T.A, Buffer.from([192, 0, 2, 1]))],
        ns: [rr(wire('example', 'com'), T.NS, wire('ns1', 'example', 'com'))],
        ar: [opt()],
      }),
      expect: { hasEdns: true, qtype: T.A },
    },
    {
      name: 'the root name',
      packet: dnsQuery('.', 'NS'),
      expect: { key: '\0', labelCount: 0, qnameLen: 1, qtype: T.NS },
    },
  ]

  it.each(cases)('accepts $name', ({ packet, expect: fields, ecsAddress }) => {
    const { verdict, q } = parse(packet)
    expect(verdict).toBe('OK')
    expect(q).toMatchObject(fields)
    if (ecsAddress) expect([...q.ecsAddress.subarray(0, ecsAddress.length)]).toEqual(ecsAddress)
    // Address bytes beyond the prefix are zeroed, never stale.
    if (ecsAddress) expect(q.ecsAddress.subarray(ecsAddress.length).every((b) => b === 0)).toBe(true)
  })

  it('reads the question the same way dns-packet encodes it: key, qnameLen, qtype and qclass', () => {
    const { verdict, q } = parse(dnsQuery('Mail.Example.COM', 'TXT'))
    expect(verdict).toBe('OK')
    expect(q.key).toBe(parseName('mail.example.com.').key)
    expect(q.qnameLen).toBe(parseName('mail.example.com.').wire.length)
    expect([q.qtype, q.qclass]).toEqual([T.TXT, 1])
  })

  it('accepts a name of exactly 255 bytes and 127 labels', () => {
    const name = wire(...Array.from({ length: 127 }, () => 'a'))
    expect(name.length).toBe(255)
    const { verdict, q } = parse(msg({ question: question(name) }))
    expect(verdict).toBe('OK')
    expect(q.labelCount).toBe(127)
    expect(q.qnameLen).toBe(255)
  })

  it('accepts four labels adding up to 255 bytes', () => {
    const name = wire('a'.repeat(63), 'b'.repeat(63), 'c'.repeat(63), 'd'.repeat(61))
    expect(name.length).toBe(255)
    expect(parse(msg({ question: question(name) })).verdict).toBe('OK')
  })

  it('forgets EDNS, ECS and NSID from the previous query when the Query object is reused', () => {
    const q = new Query()
    const first = dnsQuery('www.example.com', 'A', {
      edns: { udp: 4096, dnssecOk: true, nsid: true, ecs: { family: 1, sourcePrefixLength: 24, ip: '192.0.2.0' } },
    })
    expect(parse(first, q).verdict).toBe('OK')
    expect(q.ecsFamily).toBe(1)
    expect(parse(dnsQuery('example.com', 'NS'), q).verdict).toBe('OK')
    expect(q).toMatchObject({
      hasEdns: false,
      udpSize: 512,
      dnssecOk: false,
      nsidRequested: false,
      ecsFamily: 0,
      ecsSourcePrefix: 0,
      labelCount: 2,
      key: parseName('example.com.').key,
    })
  })
})

describe('parseQuery on malformed or unsupported input', () => {
  const withQ = (q: Buffer): Buffer => msg({ question: q })
  const name64 = Buffer.concat([Buffer.from([64]), Buffer.alloc(64, 0x61), Buffer.from([0])])
  const cases: Array<{ name: string; packet: Buffer; verdict: Verdict }> = [
    { name: 'an empty datagram', packet: Buffer.alloc(0), verdict: 'DROP' },
    { name: 'an 11-byte datagram', packet: msg().subarray(0, 11), verdict: 'DROP' },
    { name: 'a response (QR set)', packet: msg({ flags: 0x8000 }), verdict: 'DROP' },
    { name: 'a response with a NOTIFY opcode', packet: msg({ flags: 0x8000 | opcode(4) }), verdict: 'DROP' },
    { name: 'a header alone (QDCOUNT 0)', packet: msg({ question: undefined }), verdict: 'FORMERR' },
    {
      name: 'two questions (QDCOUNT 2)',
      packet: Buffer.concat([msg({ counts: { qd: 2 } }), question(WWW, T.AAAA)]),
      verdict: 'FORMERR',
    },
    {
      name: 'QDCOUNT 1 with no question bytes',
      packet: msg({ question: undefined, counts: { qd: 1 } }),
      verdict: 'FORMERR',
    },
    { name: 'opcode IQUERY (1)', packet: msg({ flags: opcode(1) }), verdict: 'NOTIMP' },
    { name: 'opcode NOTIFY (4)', packet: msg({ flags: opcode(4) }), verdict: 'NOTIMP' },
    { name: 'opcode UPDATE (5)', packet: msg({ flags: opcode(5) }), verdict: 'NOTIMP' },
    { name: 'opcode 15', packet: msg({ flags: opcode(15) }), verdict: 'NOTIMP' },
    { name: 'NOTIFY with QDCOUNT 0', packet: msg({ flags: opcode(4), question: undefined }), verdict: 'NOTIMP' },
    { name: 'a 64-byte label', packet: withQ(question(name64)), verdict: 'FORMERR' },
    {
      name: 'a label with the reserved 0x40 type',
      packet: withQ(Buffer.from([0x41, 0x61, 0, 0, 1, 0, 1])),
      verdict: 'FORMERR',
    },
    {
      name: 'a compression pointer in the question',
      packet: withQ(Buffer.from([0xc0, 12, 0, 1, 0, 1])),
      verdict: 'FORMERR',
    },
    {
      name: 'a label, then a pointer in the question',
      packet: withQ(Buffer.from([3, 0x77, 0x77, 0x77, 0xc0, 12, 0, 1, 0, 1])),
      verdict: 'FORMERR',
    },
    { name: 'a name running past the end', packet: withQ(Buffer.from([3, 0x77, 0x77])), verdict: 'FORMERR' },
    { name: 'a name with no root label', packet: withQ(Buffer.from([3, 0x77, 0x77, 0x77])), verdict: 'FORMERR' },
    {
      name: 'a name of 256 bytes (four labels)',
      packet: withQ(question(wire('a'.repeat(63), 'b'.repeat(63), 'c'.repeat(63), 'd'.repeat(62)))),
      verdict: 'FORMERR',
    },
    {
      name: 'a name of 128 one-byte labels (257 bytes)',
      packet: withQ(question(wire(...Array.from({ length: 128 }, () => 'a')))),
      verdict: 'FORMERR',
    },
    {
      name: 'a name of 200 one-byte labels',
      packet: withQ(question(wire(...Array.from({ length: 200 }, () => 'a')))),
      verdict: 'FORMERR',
    },
    { name: 'a question without qtype and qclass', packet: withQ(WWW), verdict: 'FORMERR' },
    { name: 'a question with qtype but no qclass', packet: withQ(Buffer.concat([WWW, u16(1)])), verdict: 'FORMERR' },
    {
      name: 'a question one byte short of qclass',
      packet: withQ(Buffer.concat([WWW, u16(1), Buffer.from([0])])),
      verdict: 'FORMERR',
    },
    { name: 'ARCOUNT 1 with nothing after the question', packet: msg({ counts: { ar: 1 } }), verdict: 'FORMERR' },
    {
      name: 'an additional RR cut inside its fixed fields',
      packet: msg({ ar: [opt().subarray(0, 8)] }),
      verdict: 'FORMERR',
    },
    {
      name: 'OPT whose rdata runs past the end',
      packet: msg({ ar: [opt({ rdata: Buffer.alloc(4) }).subarray(0, 13)] }),
      verdict: 'FORMERR',
    },
    { name: 'OPT in the answer section', packet: msg({ an: [opt()] }), verdict: 'FORMERR' },
    { name: 'OPT in the authority section', packet: msg({ ns: [opt()] }), verdict: 'FORMERR' },
    { name: 'two OPT records', packet: msg({ ar: [opt(), opt()] }), verdict: 'FORMERR' },
    {
      name: 'OPT owned by a non-root name',
      packet: msg({ ar: [opt({ owner: wire('example') })] }),
      verdict: 'FORMERR',
    },
    {
      name: 'OPT owned by a pointer (even to a root label)',
      packet: msg({ ar: [opt({ owner: Buffer.from([0xc0, 12 + WWW.length - 1]) })] }),
      verdict: 'FORMERR',
    },
    {
      name: 'an option whose length runs past the OPT rdata',
      packet: msg({ ar: [opt({ rdata: Buffer.concat([u16(OPT_NSID), u16(8), Buffer.alloc(4)]) })] }),
      verdict: 'FORMERR',
    },
    {
      name: 'an option header cut after 2 bytes',
      packet: msg({ ar: [opt({ rdata: u16(OPT_NSID) })] }),
      verdict: 'FORMERR',
    },
    {
      name: 'ECS with a non-zero scope',
      packet: msg({ ar: [opt({ options: [ecs(1, 24, 8, [192, 0, 2])] })] }),
      verdict: 'FORMERR',
    },
    { name: 'ECS family 3', packet: msg({ ar: [opt({ options: [ecs(3, 8, 0, [1])] })] }), verdict: 'FORMERR' },
    { name: 'ECS family 0', packet: msg({ ar: [opt({ options: [ecs(0, 0, 0, [])] })] }), verdict: 'FORMERR' },
    {
      name: 'ECS IPv4 /33',
      packet: msg({ ar: [opt({ options: [ecs(1, 33, 0, [1, 2, 3, 4, 0])] })] }),
      verdict: 'FORMERR',
    },
    {
      name: 'ECS IPv6 /129',
      packet: msg({ ar: [opt({ options: [ecs(2, 129, 0, Array(17).fill(0))] })] }),
      verdict: 'FORMERR',
    },
    {
      name: 'ECS /24 carrying 4 address bytes',
      packet: msg({ ar: [opt({ options: [ecs(1, 24, 0, [192, 0, 2, 0])] })] }),
      verdict: 'FORMERR',
    },
    {
      name: 'ECS /24 carrying 2 address bytes',
      packet: msg({ ar: [opt({ options: [ecs(1, 24, 0, [192, 0])] })] }),
      verdict: 'FORMERR',
    },
    {
      name: 'ECS /20 with a host bit set',
      packet: msg({ ar: [opt({ options: [ecs(1, 20, 0, [198, 51, 97])] })] }),
      verdict: 'FORMERR',
    },
    {
      name: 'ECS IPv6 /63 with the 64th bit set',
      packet: msg({ ar: [opt({ options: [ecs(2, 63, 0, [0x20, 1, 0x0d, 0xb8, 0, 0, 0xff, 0xff])] })] }),
      verdict: 'FORMERR',
    },
    {
      name: 'ECS shorter than its fixed part',
      packet: msg({ ar: [opt({ options: [option(OPT_ECS, Buffer.from([0, 1, 0]))] })] }),
      verdict: 'FORMERR',
    },
    {
      name: 'two ECS options',
      packet: msg({ ar: [opt({ options: [ecs(1, 8, 0, [10]), ecs(1, 8, 0, [10])] })] }),
      verdict: 'FORMERR',
    },
    { name: 'EDNS version 1', packet: msg({ ar: [opt({ version: 1 })] }), verdict: 'BADVERS' },
    {
      name: 'EDNS version 255 with ECS',
      packet: msg({ ar: [opt({ version: 255, options: [ecs(1, 8, 0, [10])] })] }),
      verdict: 'BADVERS',
    },
    {
      name: 'an additional name pointing at itself',
      packet: msg({ ar: [rr(Buffer.from([0xc0, 12 + WWW.length + 4]), T.TXT, Buffer.from([0]))] }),
      verdict: 'FORMERR',
    },
    {
      name: 'an additional name whose pointer jumps back to its own label (loop)',
      // Offset 31 holds label "a", then a pointer back to 31: a -> a -> a ...
      packet: msg({ ar: [rr(Buffer.from([1, 0x61, 0xc0, 12 + WWW.length + 4]), T.TXT, Buffer.from([0]))] }),
      verdict: 'FORMERR',
    },
    {
      name: 'a forward compression pointer in an additional name',
      packet: msg({ ar: [rr(Buffer.from([0xc0, 0x40]), T.TXT, Buffer.alloc(40))] }),
      verdict: 'FORMERR',
    },
    {
      name: 'an additional name with the 0x80 label type',
      packet: msg({ ar: [rr(Buffer.from([0x81, 0x61, 0]), T.TXT, Buffer.from([0]))] }),
      verdict: 'FORMERR',
    },
    {
      name: 'an additional name cut after the pointer byte',
      packet: Buffer.concat([msg({ counts: { ar: 1 } }), Buffer.from([0xc0])]),
      verdict: 'FORMERR',
    },
  ]

  it.each(cases)('returns $verdict for $name', ({ packet, verdict }) => {
    expect(parse(packet).verdict).toBe(verdict)
  })

  it('rejects a chain of 40 backward pointers in an additional name (the hop cap)', () => {
    // A real name, then 40 RRs whose owners each point at the previous RR's owner pointer.
    const base = msg({ ar: [rr(wire('x'), T.TXT, Buffer.from([0]))], counts: { ar: 41 } })
    const parts: Buffer[] = [base]
    let prevOwner = 12 + WWW.length + 4
    let at = base.length
    for (let k = 0; k < 40; k++) {
      const r = rr(Buffer.from([0xc0 | (prevOwner >> 8), prevOwner & 0xff]), T.TXT, Buffer.from([0]))
      parts.push(r)
      prevOwner = at
      at += r.length
    }
    const packet = Buffer.concat(parts)
    expect(parse(packet).verdict).toBe('FORMERR')
    // The first 32 hops are still fine: the same chain cut to 32 RRs parses.
    const short = Buffer.from(packet.subarray(0, base.length + 32 * 13))
    short.writeUInt16BE(33, 10)
    expect(parse(short).verdict).toBe('OK')
  })

  it('still reads the question of a NOTIFY and a BADVERS query, so the error response can echo it', () => {
    for (const packet of [msg({ flags: opcode(4) }), msg({ ar: [opt({ version: 1 })] })]) {
      const { q } = parse(packet)
      expect(q.hasQuestion).toBe(true)
      expect(q.qnameLen).toBe(WWW.length)
      expect(q.key).toBe(parseName('www.example.com.').key)
    }
  })

  it('reports the EDNS version it did not understand', () => {
    const { verdict, q } = parse(msg({ ar: [opt({ version: 3, udp: 2048 })] }))
    expect(verdict).toBe('BADVERS')
    expect(q).toMatchObject({ hasEdns: true, ednsVersion: 3, udpSize: 2048 })
  })
})

describe('the lookup key', () => {
  it('lowercases the name and records where each label starts', () => {
    const { q } = parse(dnsQuery('WWW.Example.COM', 'A'))
    expect(q.key).toBe('\x03www\x07example\x03com\x00')
    expect(q.labelCount).toBe(3)
    expect([...q.labelOffsets.subarray(0, q.labelCount)]).toEqual([0, 4, 12])
    expect(q.qnameLen).toBe(17)
  })

  it.each([
    { skip: 0, key: '\x03www\x07example\x03com\x00' },
    { skip: 1, key: '\x07example\x03com\x00' },
    { skip: 2, key: '\x03com\x00' },
    { skip: 3, key: '\x00' },
    { skip: 9, key: '\x00' },
  ])('suffixKey($skip) of www.example.com is the name with $skip labels removed', ({ skip, key }) => {
    const { q } = parse(dnsQuery('www.EXAMPLE.com', 'A'))
    expect(q.suffixKey(skip)).toBe(key)
  })

  it('suffix keys equal the keys of the parent names built from text', () => {
    const { q } = parse(dnsQuery('a.B.c.D.example.com', 'A'))
    const names = ['a.b.c.d.example.com.', 'b.c.d.example.com.', 'c.d.example.com.', 'd.example.com.', 'example.com.']
    expect(names.map((_, k) => q.suffixKey(k))).toEqual(names.map((n) => parseName(n).key))
  })

  it('lowercases only ASCII A-Z: "@", "[", "`", "{" and bytes >= 0x80 stay as sent', () => {
    const label = Buffer.from([0x41, 0x5a, 0x40, 0x5b, 0x60, 0x7b, 0xc4, 0xd6, 0xff, 0x80, 0x61, 0x7a])
    const { verdict, q } = parse(msg({ question: question(wire(label, 'COM')) }))
    expect(verdict).toBe('OK')
    const expected = Buffer.from([12, 0x61, 0x7a, 0x40, 0x5b, 0x60, 0x7b, 0xc4, 0xd6, 0xff, 0x80, 0x61, 0x7a])
    expect(q.key).toBe(expected.toString('latin1') + '\x03com\x00')
    // The same rule as names loaded from zone files, so both sides of the lookup agree.
    expect(q.key).toBe(lowerKey(wire(label, 'COM')))
  })

  it('keeps a dot inside a label distinct from a label boundary', () => {
    const dotted = parse(msg({ question: question(wire('a.b', 'com')) })).q
    const split = parse(msg({ question: question(wire('a', 'b', 'com')) })).q
    expect(dotted.key).not.toBe(split.key)
    expect(dotted.labelCount).toBe(2)
    expect(split.labelCount).toBe(3)
  })
})

describe('parseQuery on random mutations', () => {
  /** xorshift32: small, seeded and the same on every run. */
  function rng(seed: number): () => number {
    let s = seed >>> 0 || 1
    return () => {
      s ^= s << 13
      s >>>= 0
      s ^= s >>> 17
      s ^= s << 5
      s >>>= 0
      return s
    }
  }

  const seeds: Buffer[] = [
    dnsQuery('www.example.com', 'A'),
    dnsQuery('Deep.Sub.Example.COM', 'AAAA', {
      edns: {
        udp: 4096,
        dnssecOk: true,
        nsid: true,
        ecs: { family: 2, sourcePrefixLength: 56, ip: '2001:db8:1:ff00::' },
      },
    }),
    msg({
      an: [rr(Buffer.from([0xc0, 12]), T.A, Buffer.from([192, 0, 2, 1]))],
      ar: [
        rr(Buffer.from([1, 0x61, 0xc0, 12]), T.TXT, Buffer.from([1, 0x78])),
        opt({ options: [ecs(1, 20, 0, [198, 51, 96])] }),
      ],
    }),
    msg({ flags: opcode(4) }),
  ]

  function mutate(base: Buffer, next: () => number): Buffer {
    let b = Buffer.from(base)
    const steps = 1 + (next() % 4)
    for (let s = 0; s < steps; s++) {
      const at = b.length === 0 ? 0 : next() % b.length
      switch (next() % 7) {
        case 0: // flip one byte to a random value
          if (b.length > 0) b[at] = next() & 0xff
          break
        case 1: // flip one bit
          if (b.length > 0) b[at]! ^= 1 << (next() % 8)
          break
        case 2: // truncate
          b = b.subarray(0, at)
          break
        case 3: // append random bytes
          b = Buffer.concat([b, Buffer.from(Array.from({ length: 1 + (next() % 16) }, () => next() & 0xff))])
          break
        case 4: // plant a compression pointer somewhere
          if (b.length > 1) {
            b[at] = 0xc0 | (next() & 0x3f)
            if (at + 1 < b.length) b[at + 1] = next() & 0xff
          }
          break
        case 5: // rewrite a section count
          if (b.length >= 12) b.writeUInt16BE(next() % 5 === 0 ? next() & 0xffff : next() % 4, 4 + 2 * (next() % 4))
          break
        default: // plant a boundary value
          if (b.length > 0) b[at] = [0, 0x3f, 0x40, 0x7f, 0x80, 0xff][next() % 6]!
      }
    }
    return b
  }

  /** What is wrong with an OK parse, if anything: the key must be the lowercased question name. */
  function okInvariantProblem(packet: Buffer, q: Query): string | undefined {
    if (q.qnameLen > 255) return `qnameLen ${q.qnameLen}`
    if (q.key !== lowerKey(packet, 12, 12 + q.qnameLen)) return 'key is not the lowercased question name'
    let off = 0
    for (let k = 0; k < q.labelCount; k++) {
      if (q.labelOffsets[k] !== off) return `label ${k} at ${q.labelOffsets[k]}, expected ${off}`
      off += q.key.charCodeAt(off) + 1
    }
    if (off !== q.qnameLen - 1) return 'labels do not cover the name'
    if (q.udpSize < 512) return `udpSize ${q.udpSize}`
    return undefined
  }

  it('never throws on 20,000 mutated queries and keeps its invariants when it says OK', () => {
    const next = rng(0x5eed1234)
    const q = new Query()
    const seen: Record<Verdict, number> = { OK: 0, DROP: 0, FORMERR: 0, NOTIMP: 0, BADVERS: 0 }
    const broken: string[] = []
    for (let n = 0; n < 20_000; n++) {
      const packet = mutate(seeds[n % seeds.length]!, next)
      let verdict: Verdict
      try {
        verdict = VERDICT[parseQuery(packet, q)]!
      } catch (e) {
        broken.push(`${packet.toString('hex')}: ${(e as Error).message}`)
        continue
      }
      seen[verdict]++
      if (verdict === 'OK') {
        const problem = okInvariantProblem(packet, q)
        if (problem) broken.push(`${packet.toString('hex')}: ${problem}`)
      }
    }
    expect(broken).toEqual([])
    // The mutator reaches every verdict, so the loop above exercised every exit.
    expect(Object.values(seen).every((c) => c > 0)).toBe(true)
  })
})
