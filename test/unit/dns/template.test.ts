/**
 * Templates built by TemplateBuilder and served by `render`: every name must survive the move to
 * the client's question length, and truncation must keep whole RRsets with TC set exactly when
 * something needed was lost. Results are checked by decoding them with dns-packet.
 */

import * as dnsPacket from 'dns-packet'
import { describe, expect, it } from 'vitest'
import { type Owner, QNAME, type RRsetInput, TemplateBuilder } from '../../../src/dns/builder.ts'
import { parseName } from '../../../src/dns/name.ts'
import { parseQuery, Query } from '../../../src/dns/query.ts'
import { optLength, writeOpt } from '../../../src/dns/response.ts'
import {
  FLAG_AA,
  FLAG_QR,
  FLAG_TC,
  render,
  SECTION_ADDITIONAL,
  SECTION_ANSWER,
  SECTION_AUTHORITY,
  type Template,
  templateMessage,
} from '../../../src/dns/template.ts'
import { T } from '../../../src/dns/types.ts'

// ---------------------------------------------------------------------------------------------
// Records

const n = (text: string) => parseName(text)
const a = (ip: string): Buffer => Buffer.from(ip.split('.').map(Number))
const nameRdata = (text: string): Buffer => n(text).wire
const mx = (pref: number, exchange: string): Buffer => {
  const p = Buffer.alloc(2)
  p.writeUInt16BE(pref)
  return Buffer.concat([p, n(exchange).wire])
}
const soa = (mname: string, rname: string, serial: number): Buffer => {
  const nums = Buffer.alloc(20)
  ;[serial, 7200, 3600, 1209600, 60].forEach((v, k) => {
    nums.writeUInt32BE(v, 4 * k)
  })
  return Buffer.concat([n(mname).wire, n(rname).wire, nums])
}
const txt = (...strings: string[]): Buffer =>
  Buffer.concat(strings.flatMap((s) => [Buffer.from([s.length]), Buffer.from(s, 'latin1')]))

const set = (owner: Owner, type: number, ttl: number, ...rdatas: Buffer[]): RRsetInput => ({ owner, type, ttl, rdatas })

// ---------------------------------------------------------------------------------------------
// Rendering and reading back

interface Rendered {
  readonly out: Buffer
  readonly msg: dnsPacket.DecodedPacket
  readonly q: Query
}

function queryPacket(
  qname: string,
  type: dnsPacket.RecordType,
  o: { id?: number; flags?: number; edns?: boolean } = {},
) {
  const additionals: dnsPacket.Answer[] = o.edns
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
    : []
  return dnsPacket.encode({
    type: 'query',
    id: o.id ?? 7,
    flags: o.flags ?? 0,
    questions: [{ name: qname, type, class: 'IN' }],
    additionals,
  })
}

/** Renders `t` for a query as the server would: question from the packet, room for OPT reserved and filled. */
function renderFor(
  t: Template,
  qname: string,
  type: dnsPacket.RecordType,
  o: { id?: number; flags?: number; limit?: number; edns?: boolean } = {},
): Rendered {
  const packet = queryPacket(qname, type, o)
  const q = new Query()
  expect(parseQuery(packet, q)).toBe(0)
  const edns = { nsid: undefined }
  const optLen = optLength(q, edns)
  const out = render(t, {
    packet,
    id: q.id,
    queryFlags: q.flags,
    qnameLen: q.qnameLen,
    limit: o.limit ?? 65535,
    optLen,
  })
  if (optLen > 0) writeOpt(out, out.length - optLen, q, edns)
  const msg = dnsPacket.decode(out)
  // Every byte belongs to a record the header counts: nothing dangles past the last RR.
  expect(dnsPacket.decode.bytes).toBe(out.length)
  return { out, msg, q }
}

const fq = (name: string): string => (name === '.' ? '.' : `${name}.`)

/** Presentation form of a decoded RR, names lowercased (the template may echo the client's case). */
function show(rr: dnsPacket.Answer): string {
  const owner = fq(rr.name).toLowerCase()
  switch (rr.type) {
    case 'A':
    case 'AAAA':
      return `${owner} ${rr.type} ${rr.data}`
    case 'NS':
    case 'CNAME':
    case 'PTR':
      return `${owner} ${rr.type} ${fq(rr.data).toLowerCase()}`
    case 'MX':
      return `${owner} MX ${rr.data.preference} ${fq(rr.data.exchange).toLowerCase()}`
    case 'SOA': {
      const d = rr.data
      return `${owner} SOA ${fq(d.mname).toLowerCase()} ${fq(d.rname).toLowerCase()} ${d.serial} ${d.refresh} ${d.retry} ${d.expire} ${d.minimum}`
    }
    case 'TXT': {
      const parts = Array.isArray(rr.data) ? rr.data : [rr.data]
      return `${owner} TXT ${parts.map((p) => JSON.stringify(p.toString())).join(' ')}`
    }
    case 'OPT':
      return `${owner} OPT`
    default:
      return `${owner} ${rr.type}`
  }
}

const sections = (m: dnsPacket.DecodedPacket) => ({
  answer: (m.answers ?? []).map(show),
  authority: (m.authorities ?? []).map(show),
  additional: (m.additionals ?? []).filter((r) => r.type !== 'OPT').map(show),
})

const counts = (out: Buffer) => ({ an: out.readUInt16BE(6), ns: out.readUInt16BE(8), ar: out.readUInt16BE(10) })

// ---------------------------------------------------------------------------------------------
// Templates

/** NXDOMAIN for any name under example.com: SOA in authority, names in the SOA rdata compressed. */
function nxdomainTemplate(standIn = '*.example.com.'): Template {
  const b = new TemplateBuilder({ name: n(standIn), qtype: T.A, standIn: true })
  b.add(
    SECTION_AUTHORITY,
    set(n('example.com.'), T.SOA, 60, soa('ns1.example.com.', 'hostmaster.example.com.', 2026010101)),
  )
  return b.finish(FLAG_QR | FLAG_AA | 3)
}

/**
 * A wildcard MX answer whose rdata, authority and additional names point both into the question
 * suffix and at names written earlier in the body (the pointers that move with the question).
 */
function wildcardMxTemplate(): Template {
  const b = new TemplateBuilder({ name: n('*.example.com.'), qtype: T.MX, standIn: true })
  b.add(SECTION_ANSWER, set(QNAME, T.MX, 300, mx(10, 'mail.example.com.'), mx(20, 'mx2.mail.example.com.')))
  b.add(
    SECTION_AUTHORITY,
    set(n('example.com.'), T.NS, 3600, nameRdata('ns1.example.com.'), nameRdata('ns.example.net.')),
  )
  b.add(SECTION_ADDITIONAL, set(n('mail.example.com.'), T.A, 300, a('192.0.2.25')))
  b.add(SECTION_ADDITIONAL, set(n('mx2.mail.example.com.'), T.A, 300, a('192.0.2.26')))
  b.add(SECTION_ADDITIONAL, set(n('ns.example.net.'), T.A, 300, a('198.51.100.1')))
  return b.finish(FLAG_QR | FLAG_AA)
}

/** A CNAME from the question to a name outside the question's suffix, then that name's data. */
function wildcardCnameTemplate(): Template {
  const b = new TemplateBuilder({ name: n('*.w.example.com.'), qtype: T.A, standIn: true })
  b.add(SECTION_ANSWER, set(QNAME, T.CNAME, 300, nameRdata('www.example.org.')))
  b.add(SECTION_ANSWER, set(n('www.example.org.'), T.CNAME, 300, nameRdata('edge.cdn.example.org.')))
  b.add(SECTION_ANSWER, set(n('edge.cdn.example.org.'), T.A, 60, a('203.0.113.1'), a('203.0.113.2')))
  return b.finish(FLAG_QR | FLAG_AA)
}

/** An exact answer: A at the question name, NS with in-zone servers, their addresses. */
function exactTemplate(): Template {
  const b = new TemplateBuilder({ name: n('www.example.com.'), qtype: T.A, standIn: false })
  b.add(SECTION_ANSWER, set(QNAME, T.A, 300, a('192.0.2.10'), a('192.0.2.11')))
  b.add(
    SECTION_AUTHORITY,
    set(n('example.com.'), T.NS, 3600, nameRdata('ns1.example.com.'), nameRdata('ns2.example.com.')),
  )
  b.add(SECTION_ADDITIONAL, set(n('ns1.example.com.'), T.A, 3600, a('192.0.2.1')))
  b.add(SECTION_ADDITIONAL, set(n('ns2.example.com.'), T.A, 3600, a('192.0.2.2')))
  return b.finish(FLAG_QR | FLAG_AA)
}

const NX_SOA = 'example.com. SOA ns1.example.com. hostmaster.example.com. 2026010101 7200 3600 1209600 60'

describe('render moves every name to the client question', () => {
  const cases: Array<{
    name: string
    template: () => Template
    qname: string
    qtype: dnsPacket.RecordType
    rcode: number
    answer: string[]
    authority: string[]
    additional: string[]
  }> = [
    {
      name: 'NXDOMAIN for a one-letter name (delta 0)',
      template: () => nxdomainTemplate(),
      qname: 'a.example.com',
      qtype: 'A',
      rcode: 3,
      answer: [],
      authority: [NX_SOA],
      additional: [],
    },
    {
      name: 'NXDOMAIN for a long first label (delta > 0)',
      template: () => nxdomainTemplate(),
      qname: 'a-rather-long-label-for-a-name.example.com',
      qtype: 'A',
      rcode: 3,
      answer: [],
      authority: [NX_SOA],
      additional: [],
    },
    {
      name: 'NXDOMAIN for a name three labels below the suffix (delta > 0)',
      template: () => nxdomainTemplate(),
      qname: 'x.y.z.example.com',
      qtype: 'AAAA',
      rcode: 3,
      answer: [],
      authority: [NX_SOA],
      additional: [],
    },
    {
      name: 'NXDOMAIN from a stand-in longer than the client name (delta < 0)',
      template: () => nxdomainTemplate('stand-in-placeholder.example.com.'),
      qname: 'a.example.com',
      qtype: 'A',
      rcode: 3,
      answer: [],
      authority: [NX_SOA],
      additional: [],
    },
    ...['b.example.com', 'host-with-a-long-name.example.com', 'a.b.c.d.e.example.com'].map((qname) => ({
      name: `a wildcard MX answer for ${qname}`,
      template: wildcardMxTemplate,
      qname,
      qtype: 'MX' as const,
      rcode: 0,
      answer: [`${qname}. MX 10 mail.example.com.`, `${qname}. MX 20 mx2.mail.example.com.`],
      authority: ['example.com. NS ns1.example.com.', 'example.com. NS ns.example.net.'],
      additional: [
        'mail.example.com. A 192.0.2.25',
        'mx2.mail.example.com. A 192.0.2.26',
        'ns.example.net. A 198.51.100.1',
      ],
    })),
    ...['q.w.example.com', 'a-much-longer-first-label.and-more.w.example.com'].map((qname) => ({
      name: `a wildcard CNAME chain for ${qname}`,
      template: wildcardCnameTemplate,
      qname,
      qtype: 'A' as const,
      rcode: 0,
      answer: [
        `${qname}. CNAME www.example.org.`,
        'www.example.org. CNAME edge.cdn.example.org.',
        'edge.cdn.example.org. A 203.0.113.1',
        'edge.cdn.example.org. A 203.0.113.2',
      ],
      authority: [],
      additional: [],
    })),
    {
      name: 'an exact answer',
      template: exactTemplate,
      qname: 'www.example.com',
      qtype: 'A',
      rcode: 0,
      answer: ['www.example.com. A 192.0.2.10', 'www.example.com. A 192.0.2.11'],
      authority: ['example.com. NS ns1.example.com.', 'example.com. NS ns2.example.com.'],
      additional: ['ns1.example.com. A 192.0.2.1', 'ns2.example.com. A 192.0.2.2'],
    },
  ]

  it.each(cases)('decodes $name with every owner and rdata name intact', (c) => {
    const { msg, out } = renderFor(c.template(), c.qname, c.qtype)
    expect((msg.flags ?? 0) & 0xf).toBe(c.rcode)
    expect(msg.questions).toEqual([{ name: c.qname, type: c.qtype, class: 'IN' }])
    expect(sections(msg)).toEqual({ answer: c.answer, authority: c.authority, additional: c.additional })
    expect(counts(out)).toEqual({ an: c.answer.length, ns: c.authority.length, ar: c.additional.length })
  })

  it('writes QNAME owners as a pointer to offset 12, which no fixup touches', () => {
    const t = wildcardMxTemplate()
    const bodyStart = 12 + t.qnameLen + 4
    expect(templateMessage(t).readUInt16BE(bodyStart)).toBe(0xc00c)
    expect([...t.fixups]).not.toContain(bodyStart)
    // The MX targets and later names do point elsewhere, so this template does need fixups.
    expect(t.fixups.length).toBeGreaterThan(0)
    const { out } = renderFor(t, 'longer-than-a-star.example.com', 'MX')
    expect(out.readUInt16BE(12 + 'longer-than-a-star.example.com'.length + 2 + 4)).toBe(0xc00c)
  })

  it('keeps every fixed-up pointer pointing backwards at a label', () => {
    const t = wildcardMxTemplate()
    const qname = 'a.b.c.d.e.f.g.example.com'
    const { out } = renderFor(t, qname, 'MX')
    const delta = qname.length + 2 - t.qnameLen
    for (const p of t.fixups) {
      const target = out.readUInt16BE(p + delta) & 0x3fff
      expect(target).toBeLessThan(p + delta)
      expect(out[target]! & 0xc0).toBe(0)
    }
  })

  it('echoes the client letter case in the question and the QNAME owners', () => {
    const { msg } = renderFor(exactTemplate(), 'WwW.ExAmPlE.cOm', 'A')
    expect(msg.questions![0]!.name).toBe('WwW.ExAmPlE.cOm')
    expect(msg.answers!.map((r) => r.name)).toEqual(['WwW.ExAmPlE.cOm', 'WwW.ExAmPlE.cOm'])
  })

  it('copies the ID, RD and CD from the query and keeps the template flags', () => {
    const flags = dnsPacket.RECURSION_DESIRED | dnsPacket.CHECKING_DISABLED | dnsPacket.AUTHENTIC_DATA
    const { msg, out } = renderFor(exactTemplate(), 'www.example.com', 'A', { id: 0xabcd, flags })
    expect(msg.id).toBe(0xabcd)
    expect(msg).toMatchObject({ flag_qr: true, flag_aa: true, flag_rd: true, flag_cd: true, flag_tc: false })
    // AD, RA and Z are never copied from a query.
    expect(msg).toMatchObject({ flag_ad: false, flag_ra: false, flag_z: false })
    expect(out.readUInt16BE(2)).toBe(FLAG_QR | FLAG_AA | 0x0100 | 0x0010)
  })

  it('leaves RD and CD clear when the query did not set them', () => {
    const { msg } = renderFor(nxdomainTemplate(), 'gone.example.com', 'A', { id: 1 })
    expect(msg).toMatchObject({ id: 1, flag_rd: false, flag_cd: false, flag_aa: true })
  })

  it('leaves the template untouched, so it can be rendered again for another name', () => {
    const t = wildcardMxTemplate()
    const before = Buffer.from(templateMessage(t))
    renderFor(t, 'one-long-name-here.example.com', 'MX')
    expect(templateMessage(t).equals(before)).toBe(true)
    expect(sections(renderFor(t, 'z.example.com', 'MX').msg).answer[0]).toBe('z.example.com. MX 10 mail.example.com.')
  })

  it('reserves optLen bytes after the message for OPT, outside the counts', () => {
    const { out, msg } = renderFor(exactTemplate(), 'www.example.com', 'A', { edns: true })
    expect(out.length).toBe(templateMessage(exactTemplate()).length + 11)
    expect(msg.additionals!.map((r) => r.type)).toEqual(['A', 'A', 'OPT'])
  })
})

describe('render truncation', () => {
  /** 30 A records, the zone NS, then two optional address RRsets. */
  function bigAnswer(): Template {
    const b = new TemplateBuilder({ name: n('big.example.com.'), qtype: T.A, standIn: false })
    b.add(SECTION_ANSWER, set(QNAME, T.A, 300, ...Array.from({ length: 30 }, (_, k) => a(`192.0.2.${k + 1}`))))
    b.add(
      SECTION_AUTHORITY,
      set(n('example.com.'), T.NS, 3600, nameRdata('ns1.example.com.'), nameRdata('ns2.example.com.')),
    )
    b.add(SECTION_ADDITIONAL, set(n('ns1.example.com.'), T.A, 3600, a('192.0.2.101')))
    b.add(SECTION_ADDITIONAL, set(n('ns2.example.com.'), T.A, 3600, a('192.0.2.102'), a('192.0.2.103')))
    return b.finish(FLAG_QR | FLAG_AA)
  }

  /** A referral with glue (required) and, after it, an optional address RRset (or the other order). */
  function referral(order: 'glue-first' | 'optional-first'): Template {
    const b = new TemplateBuilder({ name: n('*.sub.example.com.'), qtype: T.A, standIn: true })
    b.add(
      SECTION_AUTHORITY,
      set(n('sub.example.com.'), T.NS, 3600, nameRdata('ns1.sub.example.com.'), nameRdata('ns.example.com.')),
    )
    const glue = set(n('ns1.sub.example.com.'), T.A, 3600, a('192.0.2.53'))
    const optional = set(n('ns.example.com.'), T.A, 3600, a('192.0.2.54'), a('192.0.2.55'))
    if (order === 'glue-first') {
      b.add(SECTION_ADDITIONAL, glue, true)
      b.add(SECTION_ADDITIONAL, optional)
    } else {
      b.add(SECTION_ADDITIONAL, optional)
      b.add(SECTION_ADDITIONAL, glue, true)
    }
    return b.finish(FLAG_QR)
  }

  const big = bigAnswer()
  const [ansEnd, authEnd, ns1End, ns2End] = [...big.rrsetEnd] as [number, number, number, number]

  const cases: Array<{
    name: string
    limit: number
    tc: boolean
    counts: { an: number; ns: number; ar: number }
  }> = [
    {
      name: 'a limit equal to the message size keeps everything',
      limit: ns2End,
      tc: false,
      counts: { an: 30, ns: 2, ar: 3 },
    },
    {
      name: 'one byte less drops the last optional RRset whole, without TC',
      limit: ns2End - 1,
      tc: false,
      counts: { an: 30, ns: 2, ar: 1 },
    },
    {
      name: 'room up to the first additional RRset keeps it',
      limit: ns1End,
      tc: false,
      counts: { an: 30, ns: 2, ar: 1 },
    },
    {
      name: 'room up to the authority drops all additional data, without TC',
      limit: authEnd,
      tc: false,
      counts: { an: 30, ns: 2, ar: 0 },
    },
    { name: 'losing the authority NS RRset sets TC', limit: authEnd - 1, tc: true, counts: { an: 30, ns: 0, ar: 0 } },
    {
      name: 'exactly the answer keeps the answer and sets TC',
      limit: ansEnd,
      tc: true,
      counts: { an: 30, ns: 0, ar: 0 },
    },
    {
      name: 'losing part of the answer RRset drops all of it and sets TC',
      limit: ansEnd - 1,
      tc: true,
      counts: { an: 0, ns: 0, ar: 0 },
    },
    { name: 'the 512-byte classic limit', limit: 512, tc: true, counts: { an: 0, ns: 0, ar: 0 } },
  ]

  it('has the layout the cases below assume (30 A records do not fit in 512 bytes)', () => {
    expect([...big.rrsetSection]).toEqual([SECTION_ANSWER, SECTION_AUTHORITY, SECTION_ADDITIONAL, SECTION_ADDITIONAL])
    expect(ansEnd).toBeGreaterThan(512)
  })

  it.each(cases)('$name', ({ limit, tc, counts: expected }) => {
    const { out, msg } = renderFor(big, 'big.example.com', 'A', { limit })
    expect(out.length).toBeLessThanOrEqual(limit)
    expect(msg.flag_tc).toBe(tc)
    expect(out.readUInt16BE(2) & FLAG_TC).toBe(tc ? FLAG_TC : 0)
    expect(counts(out)).toEqual(expected)
    expect(msg.answers).toHaveLength(expected.an)
    expect(msg.authorities).toHaveLength(expected.ns)
    expect(msg.additionals).toHaveLength(expected.ar)
  })

  it('counts the OPT record against the limit', () => {
    // Without EDNS the whole message fits in ns2End; with 11 bytes of OPT the last RRset must go.
    const { out, msg } = renderFor(big, 'big.example.com', 'A', { limit: ns2End, edns: true })
    expect(out.length).toBeLessThanOrEqual(ns2End)
    expect(msg.flag_tc).toBe(false)
    expect(msg.additionals!.map((r) => r.type)).toEqual(['A', 'OPT'])
    expect(counts(out)).toEqual({ an: 30, ns: 2, ar: 2 })
  })

  it('sets TC when required glue is dropped from a referral', () => {
    const t = referral('glue-first')
    const qname = 'host.sub.example.com'
    const delta = qname.length + 2 - t.qnameLen
    const { msg, out } = renderFor(t, qname, 'A', { limit: t.rrsetEnd[0]! + delta })
    expect(msg.flag_tc).toBe(true)
    expect(msg.flag_aa).toBe(false)
    expect(counts(out)).toEqual({ an: 0, ns: 2, ar: 0 })
    expect(sections(msg).authority).toEqual([
      'sub.example.com. NS ns1.sub.example.com.',
      'sub.example.com. NS ns.example.com.',
    ])
  })

  it('keeps the glue and drops only the optional RRset after it, without TC', () => {
    const t = referral('glue-first')
    const qname = 'host.sub.example.com'
    const delta = qname.length + 2 - t.qnameLen
    const { msg } = renderFor(t, qname, 'A', { limit: t.rrsetEnd[1]! + delta })
    expect(msg.flag_tc).toBe(false)
    expect(sections(msg).additional).toEqual(['ns1.sub.example.com. A 192.0.2.53'])
  })

  it('sets TC when dropping an optional RRset also drops the glue behind it', () => {
    const t = referral('optional-first')
    const qname = 'host.sub.example.com'
    const delta = qname.length + 2 - t.qnameLen
    // Room for all but the last byte of the optional RRset: the glue after it would fit on its own.
    const { msg } = renderFor(t, qname, 'A', { limit: t.rrsetEnd[1]! + delta - 1 })
    expect(msg.flag_tc).toBe(true)
    expect(sections(msg).additional).toEqual([])
  })

  it('accounts for a longer client name when deciding what fits', () => {
    const t = referral('glue-first')
    const full = templateMessage(t).length
    // The stand-in message fits exactly, but the client's name is 10 bytes longer: less than the
    // optional RRset at the end, so only that one has to go.
    const qname = `${'x'.repeat(11)}.sub.example.com`
    const delta = qname.length + 2 - t.qnameLen
    expect(delta).toBe(10)
    expect(full - t.rrsetEnd[1]!).toBeGreaterThan(delta)
    const fits = renderFor(t, qname, 'A', { limit: full + delta })
    expect(fits.msg.flag_tc).toBe(false)
    expect(counts(fits.out)).toEqual({ an: 0, ns: 2, ar: 3 })
    const short = renderFor(t, qname, 'A', { limit: full })
    expect(short.out.length).toBeLessThanOrEqual(full)
    expect(short.msg.flag_tc).toBe(false)
    expect(sections(short.msg).additional).toEqual(['ns1.sub.example.com. A 192.0.2.53'])
  })

  it('fixes up pointers in the part it keeps after truncating a moved message', () => {
    const t = wildcardMxTemplate()
    const qname = 'a-fairly-long-label.example.com'
    const delta = qname.length + 2 - t.qnameLen
    const { msg } = renderFor(t, qname, 'MX', { limit: t.rrsetEnd[2]! + delta })
    expect(msg.flag_tc).toBe(false)
    expect(sections(msg)).toEqual({
      answer: [`${qname}. MX 10 mail.example.com.`, `${qname}. MX 20 mx2.mail.example.com.`],
      authority: ['example.com. NS ns1.example.com.', 'example.com. NS ns.example.net.'],
      additional: ['mail.example.com. A 192.0.2.25'],
    })
  })
})

describe('TemplateBuilder', () => {
  it('refuses sections out of order', () => {
    const b = new TemplateBuilder({ name: n('example.com.'), qtype: T.A, standIn: false })
    b.add(SECTION_AUTHORITY, set(n('example.com.'), T.NS, 60, nameRdata('ns1.example.com.')))
    expect(() => b.add(SECTION_ANSWER, set(QNAME, T.A, 60, a('192.0.2.1')))).toThrow(/in order/)
  })

  it('marks only additional RRsets as required, whatever the caller asks', () => {
    const b = new TemplateBuilder({ name: n('example.com.'), qtype: T.NS, standIn: false })
    b.add(SECTION_ANSWER, set(QNAME, T.NS, 60, nameRdata('ns1.example.com.')), true)
    b.add(SECTION_ADDITIONAL, set(n('ns1.example.com.'), T.A, 60, a('192.0.2.1')), true)
    const t = b.finish(FLAG_QR | FLAG_AA)
    expect([...t.rrsetRequired]).toEqual([0, 1])
    expect([...t.rrsetCount]).toEqual([1, 1])
  })

  it('compresses rdata names of RFC 1035 types only (RFC 3597 section 4)', () => {
    const b = new TemplateBuilder({ name: n('example.com.'), qtype: T.SRV, standIn: false })
    // SRV target (priority, weight, port, name) is written as is, never compressed.
    const srv = Buffer.concat([Buffer.from([0, 1, 0, 2, 0, 53]), n('ns1.example.com.').wire])
    b.add(SECTION_ANSWER, set(QNAME, T.SRV, 60, srv))
    const t = b.finish(FLAG_QR | FLAG_AA)
    expect(templateMessage(t).includes(n('ns1.example.com.').wire)).toBe(true)
    expect(t.fixups).toHaveLength(0)
  })

  it('sets the header counts to the RRs added', () => {
    const t = wildcardMxTemplate()
    expect(counts(templateMessage(t))).toEqual({ an: 2, ns: 2, ar: 3 })
    expect(templateMessage(t).readUInt16BE(4)).toBe(1)
    expect(t.qnameLen).toBe(n('*.example.com.').wire.length)
  })
})

describe('render near the 14-bit pointer limit', () => {
  /**
   * A stand-in template whose authority NS target starts at offset 0x3ff0, just under the largest
   * offset a compression pointer can hold (0x3fff); the additional owner points at it.
   */
  function nearLimit(): Template {
    const b = new TemplateBuilder({ name: n('*.example.com.'), qtype: T.TXT, standIn: true })
    // 12 header + 19 question + 12 RR fixed/owner + 16313 rdata + 12 NS owner/fixed = 0x3ff0.
    const strings = [...Array.from({ length: 63 }, () => 'x'.repeat(255)), 'y'.repeat(184)]
    b.add(SECTION_ANSWER, set(QNAME, T.TXT, 60, txt(...strings)))
    b.add(SECTION_AUTHORITY, set(n('example.com.'), T.NS, 60, nameRdata('ns1.example.com.')))
    b.add(SECTION_ADDITIONAL, set(n('ns1.example.com.'), T.A, 60, a('192.0.2.1')))
    return b.finish(FLAG_QR | FLAG_AA)
  }

  it('writes the additional owner in full rather than pointing at 0x3ff0, which a longer name would push past 0x3fff', () => {
    const t = nearLimit()
    const at = t.rrsetEnd[1]!
    expect(templateMessage(t)[at]).toBe(3) // the "ns1" label, not a 0xC0 pointer
    expect(templateMessage(t).toString('latin1', at + 1, at + 4)).toBe('ns1')
    expect([...t.fixups]).not.toContain(at)
  })

  it('renders it for a client name of the stand-in length', () => {
    const { msg } = renderFor(nearLimit(), 'a.example.com', 'TXT')
    expect(sections(msg).additional).toEqual(['ns1.example.com. A 192.0.2.1'])
  })

  // Regression: render moves every fixed-up pointer by delta = client qname length - stand-in
  // length (up to +253); a target near 0x3fff would overflow 14 bits, so the builder must not
  // register targets that close to the limit.
  it('renders it for a client name 20 bytes longer than the stand-in', () => {
    const qname = 'abcdefghijklmnopqrstu.example.com'
    const { msg } = renderFor(nearLimit(), qname, 'TXT')
    expect(sections(msg).additional).toEqual(['ns1.example.com. A 192.0.2.1'])
  })
})
