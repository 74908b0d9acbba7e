/**
 * Zone compilation seen from the query side: small zones go through readZoneFile, validateZone,
 * compileZone and buildTable; queries encoded by dns-packet go through parseQuery and `lookup`,
 * and the template that comes back is rendered and decoded. Tables follow CoreDNS lookup_test.go:
 * `{ qname, qtype, rcode, answer, authority }`.
 */

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as dnsPacket from 'dns-packet'
import { afterAll, describe, expect, it } from 'vitest'
import { ParseResult, parseQuery, Query } from '../../../src/dns/query.ts'
import { render } from '../../../src/dns/template.ts'
import type { CompiledZone } from '../../../src/zone/compile.ts'
import { buildTable, lookup, type ZoneTable } from '../../../src/zone/table.ts'
import { compileZoneLines } from '../../helpers/zones.ts'

const dir = mkdtempSync(join(tmpdir(), 'gslb-compile-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** Loads each file (name -> lines) as the server would, failing the test on any error. */
function compile(files: Record<string, readonly string[]>): CompiledZone[] {
  const sub = mkdtempSync(join(dir, 'set-'))
  return Object.entries(files).map(([name, lines]) => compileZoneLines(sub, name, lines))
}

const DS_HEX = 'e2d3c916f6deeac73294e8268fb5885044a833fc5459588f4a9184cfc41a5766'

const EXAMPLE_COM = [
  '$ORIGIN example.com.',
  '$TTL 300',
  '@        3600 SOA  ns1 hostmaster 2026010101 7200 3600 1209600 60',
  '@        3600 NS   ns1',
  '@        3600 NS   ns2.example.net.',
  '@             MX   10 mail',
  'ns1           A    192.0.2.1',
  'ns1           AAAA 2001:db8::1',
  'www           A    192.0.2.10',
  'www           AAAA 2001:db8::10',
  'mail          A    192.0.2.25',
  'a.b.c         A    192.0.2.30',
  '*.wild        A    192.0.2.99',
  '*.wild        TXT  "wild"',
  'blocked.wild  TXT  "exists"',
  '*.w           CNAME www',
  'alias         CNAME www',
  'alias2        CNAME alias',
  'dangling      CNAME nothere',
  'outside       CNAME www.example.net.',
  'loop1         CNAME loop2',
  'loop2         CNAME loop1',
  'tosub         CNAME host.sub',
  'sub           NS   ns1.sub',
  'sub           NS   ns.example.net.',
  `sub           DS   12345 13 2 ${DS_HEX}`,
  'ns1.sub       A    192.0.2.53',
  'nods          NS   ns.example.net.',
  'child         NS   ns1.child',
  `child         DS   54321 13 2 ${DS_HEX}`,
  'ns1.child     A    192.0.2.77',
]

const CHILD = [
  '$TTL 300',
  '@    3600 SOA ns1 hostmaster 7 7200 3600 1209600 30',
  '@    3600 NS  ns1',
  'ns1       A   198.51.100.53',
  'www       A   198.51.100.1',
]

const zones = compile({ 'example.com.zone': EXAMPLE_COM, 'child.example.com.zone': CHILD })
const table = buildTable(zones)
const parent = zones[0]!
const child = zones[1]!

/** dns-packet encodes ANY (255) but its types leave it out. */
type QType = dnsPacket.RecordType | 'ANY'

function ask(t: ZoneTable, qname: string, qtype: QType) {
  const question = { name: qname, type: qtype as dnsPacket.RecordType, class: 'IN' as const }
  const packet = dnsPacket.encode({ type: 'query', id: 99, flags: 0, questions: [question] })
  const q = new Query()
  expect(parseQuery(packet, q)).toBe(ParseResult.OK)
  const template = lookup(t, q)
  if (!template) return { template, msg: undefined }
  if (template.kind !== 'template') throw new Error(`${qname} is a load-balanced name; these tests cover static data`)
  const out = render(template, { packet, id: q.id, queryFlags: q.flags, qnameLen: q.qnameLen, limit: 65535, optLen: 0 })
  return { template, msg: dnsPacket.decode(out), out }
}

const fq = (name: string): string => (name === '.' ? '.' : `${name}.`.toLowerCase())

function show(rr: dnsPacket.Answer): string {
  const head = `${fq(rr.name)} ${'ttl' in rr ? rr.ttl : 0} ${rr.type}`
  switch (rr.type) {
    case 'A':
    case 'AAAA':
      return `${head} ${rr.data}`
    case 'NS':
    case 'CNAME':
      return `${head} ${fq(rr.data)}`
    case 'MX':
      return `${head} ${rr.data.preference} ${fq(rr.data.exchange)}`
    case 'SOA':
      return `${head} ${fq(rr.data.mname)} ${fq(rr.data.rname)} ${rr.data.serial}`
    case 'TXT':
      return `${head} ${(Array.isArray(rr.data) ? rr.data : [rr.data]).map((s) => JSON.stringify(s.toString())).join(' ')}`
    case 'DS':
      return `${head} ${rr.data.keyTag} ${rr.data.algorithm} ${rr.data.digestType} ${rr.data.digest.toString('hex')}`
    default:
      return head
  }
}

const RCODE = { NOERROR: 0, NXDOMAIN: 3 } as const

interface Case {
  qname: string
  qtype: QType
  rcode: keyof typeof RCODE
  /** Authoritative answer bit; referrals clear it. */
  aa?: boolean
  answer: string[]
  authority: string[]
  additional?: string[]
}

const SOA = 'example.com. 60 SOA ns1.example.com. hostmaster.example.com. 2026010101'
const CHILD_SOA = 'child.example.com. 30 SOA ns1.child.example.com. hostmaster.child.example.com. 7'
const SUB_NS = ['sub.example.com. 300 NS ns1.sub.example.com.', 'sub.example.com. 300 NS ns.example.net.']
const SUB_GLUE = ['ns1.sub.example.com. 300 A 192.0.2.53']
const WWW_A = 'www.example.com. 300 A 192.0.2.10'

function check(c: Case): void {
  const { msg } = ask(table, c.qname, c.qtype)
  expect(msg).toBeDefined()
  expect((msg!.flags ?? 0) & 0xf).toBe(RCODE[c.rcode])
  expect(msg!.flag_aa).toBe(c.aa ?? true)
  expect(msg!.answers!.map(show)).toEqual(c.answer)
  expect(msg!.authorities!.map(show)).toEqual(c.authority)
  if (c.additional) expect(msg!.additionals!.map(show)).toEqual(c.additional)
}

describe('answers from a compiled zone', () => {
  const exact: Case[] = [
    { qname: 'www.example.com', qtype: 'A', rcode: 'NOERROR', answer: [WWW_A], authority: [] },
    {
      qname: 'www.example.com',
      qtype: 'AAAA',
      rcode: 'NOERROR',
      answer: ['www.example.com. 300 AAAA 2001:db8::10'],
      authority: [],
    },
    { qname: 'WWW.Example.COM', qtype: 'A', rcode: 'NOERROR', answer: [WWW_A], authority: [] },
    {
      qname: 'example.com',
      qtype: 'SOA',
      rcode: 'NOERROR',
      answer: ['example.com. 3600 SOA ns1.example.com. hostmaster.example.com. 2026010101'],
      authority: [],
    },
    {
      qname: 'example.com',
      qtype: 'NS',
      rcode: 'NOERROR',
      answer: ['example.com. 3600 NS ns1.example.com.', 'example.com. 3600 NS ns2.example.net.'],
      authority: [],
      additional: ['ns1.example.com. 300 A 192.0.2.1', 'ns1.example.com. 300 AAAA 2001:db8::1'],
    },
    {
      qname: 'example.com',
      qtype: 'MX',
      rcode: 'NOERROR',
      answer: ['example.com. 300 MX 10 mail.example.com.'],
      authority: [],
      additional: ['mail.example.com. 300 A 192.0.2.25'],
    },
    {
      qname: 'www.example.com',
      qtype: 'ANY',
      rcode: 'NOERROR',
      answer: [WWW_A, 'www.example.com. 300 AAAA 2001:db8::10'],
      authority: [],
    },
  ]

  const negative: Case[] = [
    { qname: 'www.example.com', qtype: 'MX', rcode: 'NOERROR', answer: [], authority: [SOA] },
    { qname: 'www.example.com', qtype: 'TXT', rcode: 'NOERROR', answer: [], authority: [SOA] },
    { qname: 'nothere.example.com', qtype: 'A', rcode: 'NXDOMAIN', answer: [], authority: [SOA] },
    { qname: 'a.b.nothere.example.com', qtype: 'TXT', rcode: 'NXDOMAIN', answer: [], authority: [SOA] },
    { qname: 'wwww.example.com', qtype: 'A', rcode: 'NXDOMAIN', answer: [], authority: [SOA] },
  ]

  const emptyNonTerminals: Case[] = [
    { qname: 'c.example.com', qtype: 'A', rcode: 'NOERROR', answer: [], authority: [SOA] },
    { qname: 'b.c.example.com', qtype: 'AAAA', rcode: 'NOERROR', answer: [], authority: [SOA] },
    { qname: 'b.c.example.com', qtype: 'ANY', rcode: 'NOERROR', answer: [], authority: [SOA] },
    { qname: 'x.c.example.com', qtype: 'A', rcode: 'NXDOMAIN', answer: [], authority: [SOA] },
    {
      qname: 'a.b.c.example.com',
      qtype: 'A',
      rcode: 'NOERROR',
      answer: ['a.b.c.example.com. 300 A 192.0.2.30'],
      authority: [],
    },
    { qname: 'wild.example.com', qtype: 'A', rcode: 'NOERROR', answer: [], authority: [SOA] },
  ]

  const wildcards: Case[] = [
    {
      qname: 'x.wild.example.com',
      qtype: 'A',
      rcode: 'NOERROR',
      answer: ['x.wild.example.com. 300 A 192.0.2.99'],
      authority: [],
    },
    {
      qname: 'a-much-longer-name.wild.example.com',
      qtype: 'A',
      rcode: 'NOERROR',
      answer: ['a-much-longer-name.wild.example.com. 300 A 192.0.2.99'],
      authority: [],
    },
    {
      qname: 'deep.er.wild.example.com',
      qtype: 'TXT',
      rcode: 'NOERROR',
      answer: ['deep.er.wild.example.com. 300 TXT "wild"'],
      authority: [],
    },
    { qname: 'x.wild.example.com', qtype: 'AAAA', rcode: 'NOERROR', answer: [], authority: [SOA] },
    {
      qname: '*.wild.example.com',
      qtype: 'A',
      rcode: 'NOERROR',
      answer: ['*.wild.example.com. 300 A 192.0.2.99'],
      authority: [],
    },
    // An existing name blocks the wildcard at and below itself (RFC 4592 section 2.2.1).
    { qname: 'blocked.wild.example.com', qtype: 'A', rcode: 'NOERROR', answer: [], authority: [SOA] },
    {
      qname: 'blocked.wild.example.com',
      qtype: 'TXT',
      rcode: 'NOERROR',
      answer: ['blocked.wild.example.com. 300 TXT "exists"'],
      authority: [],
    },
    { qname: 'x.blocked.wild.example.com', qtype: 'A', rcode: 'NXDOMAIN', answer: [], authority: [SOA] },
    {
      qname: 'host.w.example.com',
      qtype: 'A',
      rcode: 'NOERROR',
      answer: ['host.w.example.com. 300 CNAME www.example.com.', WWW_A],
      authority: [],
    },
    {
      qname: 'host.w.example.com',
      qtype: 'MX',
      rcode: 'NOERROR',
      answer: ['host.w.example.com. 300 CNAME www.example.com.'],
      authority: [SOA],
    },
  ]

  const cnames: Case[] = [
    {
      qname: 'alias.example.com',
      qtype: 'A',
      rcode: 'NOERROR',
      answer: ['alias.example.com. 300 CNAME www.example.com.', WWW_A],
      authority: [],
    },
    {
      qname: 'alias2.example.com',
      qtype: 'AAAA',
      rcode: 'NOERROR',
      answer: [
        'alias2.example.com. 300 CNAME alias.example.com.',
        'alias.example.com. 300 CNAME www.example.com.',
        'www.example.com. 300 AAAA 2001:db8::10',
      ],
      authority: [],
    },
    {
      qname: 'alias2.example.com',
      qtype: 'MX',
      rcode: 'NOERROR',
      answer: ['alias2.example.com. 300 CNAME alias.example.com.', 'alias.example.com. 300 CNAME www.example.com.'],
      authority: [SOA],
    },
    {
      qname: 'alias.example.com',
      qtype: 'CNAME',
      rcode: 'NOERROR',
      answer: ['alias.example.com. 300 CNAME www.example.com.'],
      authority: [],
    },
    {
      qname: 'alias.example.com',
      qtype: 'ANY',
      rcode: 'NOERROR',
      answer: ['alias.example.com. 300 CNAME www.example.com.'],
      authority: [],
    },
    // RFC 6604: the rcode describes the last name of the chain.
    {
      qname: 'dangling.example.com',
      qtype: 'A',
      rcode: 'NXDOMAIN',
      answer: ['dangling.example.com. 300 CNAME nothere.example.com.'],
      authority: [SOA],
    },
    {
      qname: 'outside.example.com',
      qtype: 'A',
      rcode: 'NOERROR',
      answer: ['outside.example.com. 300 CNAME www.example.net.'],
      authority: [],
    },
    {
      qname: 'loop1.example.com',
      qtype: 'A',
      rcode: 'NOERROR',
      answer: ['loop1.example.com. 300 CNAME loop2.example.com.', 'loop2.example.com. 300 CNAME loop1.example.com.'],
      authority: [],
    },
    {
      qname: 'tosub.example.com',
      qtype: 'A',
      rcode: 'NOERROR',
      answer: ['tosub.example.com. 300 CNAME host.sub.example.com.'],
      authority: SUB_NS,
      additional: SUB_GLUE,
    },
  ]

  const delegations: Case[] = [
    {
      qname: 'host.sub.example.com',
      qtype: 'A',
      rcode: 'NOERROR',
      aa: false,
      answer: [],
      authority: SUB_NS,
      additional: SUB_GLUE,
    },
    {
      qname: 'a.b.host.sub.example.com',
      qtype: 'MX',
      rcode: 'NOERROR',
      aa: false,
      answer: [],
      authority: SUB_NS,
      additional: SUB_GLUE,
    },
    {
      qname: 'sub.example.com',
      qtype: 'NS',
      rcode: 'NOERROR',
      aa: false,
      answer: [],
      authority: SUB_NS,
      additional: SUB_GLUE,
    },
    {
      qname: 'sub.example.com',
      qtype: 'A',
      rcode: 'NOERROR',
      aa: false,
      answer: [],
      authority: SUB_NS,
      additional: SUB_GLUE,
    },
    // Glue is occluded: the child answers for it, so the parent refers.
    {
      qname: 'ns1.sub.example.com',
      qtype: 'A',
      rcode: 'NOERROR',
      aa: false,
      answer: [],
      authority: SUB_NS,
      additional: SUB_GLUE,
    },
    // DS lives on the parent side of the cut and is answered with authority (RFC 4035 3.1.4.1).
    {
      qname: 'sub.example.com',
      qtype: 'DS',
      rcode: 'NOERROR',
      answer: [`sub.example.com. 300 DS 12345 13 2 ${DS_HEX}`],
      authority: [],
    },
    { qname: 'nods.example.com', qtype: 'DS', rcode: 'NOERROR', answer: [], authority: [SOA] },
    {
      qname: 'x.nods.example.com',
      qtype: 'A',
      rcode: 'NOERROR',
      aa: false,
      answer: [],
      authority: ['nods.example.com. 300 NS ns.example.net.'],
      additional: [],
    },
  ]

  const zoneInZone: Case[] = [
    {
      qname: 'www.child.example.com',
      qtype: 'A',
      rcode: 'NOERROR',
      answer: ['www.child.example.com. 300 A 198.51.100.1'],
      authority: [],
    },
    // The child's own address, not the parent's glue (192.0.2.77).
    {
      qname: 'ns1.child.example.com',
      qtype: 'A',
      rcode: 'NOERROR',
      answer: ['ns1.child.example.com. 300 A 198.51.100.53'],
      authority: [],
    },
    {
      qname: 'child.example.com',
      qtype: 'NS',
      rcode: 'NOERROR',
      answer: ['child.example.com. 3600 NS ns1.child.example.com.'],
      authority: [],
      additional: ['ns1.child.example.com. 300 A 198.51.100.53'],
    },
    {
      qname: 'child.example.com',
      qtype: 'SOA',
      rcode: 'NOERROR',
      answer: ['child.example.com. 3600 SOA ns1.child.example.com. hostmaster.child.example.com. 7'],
      authority: [],
    },
    { qname: 'nothere.child.example.com', qtype: 'A', rcode: 'NXDOMAIN', answer: [], authority: [CHILD_SOA] },
    { qname: 'www.child.example.com', qtype: 'TXT', rcode: 'NOERROR', answer: [], authority: [CHILD_SOA] },
  ]

  it.each(exact)('answers $qname $qtype from the exact node', check)
  it.each(negative)('answers $qname $qtype with $rcode and the SOA', check)
  it.each(emptyNonTerminals)('answers $qname $qtype around empty non-terminals with $rcode', check)
  it.each(wildcards)('answers $qname $qtype through the wildcard rules with $rcode', check)
  it.each(cnames)('answers $qname $qtype through CNAMEs with $rcode', check)
  it.each(delegations)('answers $qname $qtype at or below a zone cut', check)
  it.each(zoneInZone)('answers $qname $qtype from the child zone we also serve', check)

  // Regression: src/zone/table.ts buildTable drops every parent node at or below a child apex we also
  // serve, including the delegation point itself, so a DS query for child.example.com is answered
  // from the child zone (NODATA with the child's SOA) although the parent zone holds the DS RRset.
  // RFC 4035 section 3.1.4.1: DS exists only on the parent side of a cut, and a server
  // authoritative for both zones must answer DS from the parent, or validators asking this
  // server get no DS and treat the child as insecure.
  it('answers child.example.com DS from the parent zone', () => {
    check({
      qname: 'child.example.com',
      qtype: 'DS',
      rcode: 'NOERROR',
      answer: [`child.example.com. 300 DS 54321 13 2 ${DS_HEX}`],
      authority: [],
    })
  })

  it.each([
    { qname: 'www.example.net', qtype: 'A' as const },
    { qname: 'com', qtype: 'NS' as const },
    { qname: '.', qtype: 'NS' as const },
    { qname: 'notexample.com', qtype: 'A' as const },
    { qname: 'www.notexample.com', qtype: 'A' as const },
  ])('refuses $qname $qtype: lookup returns no template outside every zone', ({ qname, qtype }) => {
    expect(ask(table, qname, qtype).template).toBeUndefined()
  })
})

describe('which template lookup returns', () => {
  it.each([
    {
      qname: 'nothere.example.com',
      qtype: 'A' as const,
      expected: () => parent.nxdomain,
      what: "the parent's NXDOMAIN",
    },
    { qname: 'x.c.example.com', qtype: 'A' as const, expected: () => parent.nxdomain, what: "the parent's NXDOMAIN" },
    { qname: 'www.example.com', qtype: 'MX' as const, expected: () => parent.nodata, what: "the parent's NODATA" },
    {
      qname: 'nothere.child.example.com',
      qtype: 'A' as const,
      expected: () => child.nxdomain,
      what: "the child's NXDOMAIN",
    },
    { qname: 'www.child.example.com', qtype: 'MX' as const, expected: () => child.nodata, what: "the child's NODATA" },
  ])('returns $what for $qname $qtype', ({ qname, qtype, expected }) => {
    expect(ask(table, qname, qtype).template).toBe(expected())
  })

  it('shares one referral template for every name below a cut', () => {
    const a = ask(table, 'one.sub.example.com', 'A').template
    expect(a).toBeDefined()
    expect(ask(table, 'two.three.sub.example.com', 'TXT').template).toBe(a)
    expect(ask(table, 'ns1.sub.example.com', 'AAAA').template).toBe(a)
  })

  it('keeps the parent nodes out of the table where the child zone answers', () => {
    expect(table.zones).toEqual([parent, child])
    const childApex = child.apex.key
    for (const [key, node] of table.nodes) {
      if (key.endsWith(childApex)) expect(node.zone).toBe(child)
      else expect(node.zone).toBe(parent)
    }
  })

  it('serves the parent glue and referral when the child zone is not loaded', () => {
    const parentOnly = buildTable([parent])
    const { msg } = ask(parentOnly, 'www.child.example.com', 'A')
    expect(msg!.flag_aa).toBe(false)
    expect(msg!.authorities!.map(show)).toEqual(['child.example.com. 300 NS ns1.child.example.com.'])
    expect(msg!.additionals!.map(show)).toEqual(['ns1.child.example.com. 300 A 192.0.2.77'])
  })
})

describe('large stand-in templates', () => {
  // 800 MX targets under a wildcard: the answer alone passes 16 KiB, so some additional owners
  // point at MX targets written near the 14-bit pointer limit.
  const big = compile({
    'big.example.zone': [
      '$TTL 300',
      '@ SOA ns1 hostmaster 1 7200 3600 1209600 60',
      '@ NS ns1',
      'ns1 A 192.0.2.1',
      ...Array.from({ length: 800 }, (_, k) => `*.mx MX 10 m${k}`),
      ...Array.from({ length: 800 }, (_, k) => `m${k} A 10.0.${k >> 8}.${k & 0xff}`),
    ],
  })
  const bigTable = buildTable(big)

  it('answers the wildcard for a one-letter name', () => {
    const { msg, out } = ask(bigTable, 'a.mx.big.example', 'MX')
    expect(out!.length).toBeGreaterThan(0x4000)
    expect(msg!.answers).toHaveLength(800)
    expect(msg!.additionals!.map(show)[799]).toBe('m799.big.example. 300 A 10.0.3.31')
  })

  // Regression: the same pointer overflow as test/unit/dns/template.test.ts shows, reached from a zone
  // file: render() throws RangeError ("value ... out of range") for any query name long enough to
  // push a compression target past offset 0x3fff, so this TCP query would get SERVFAIL.
  it('answers the wildcard for a 60-byte first label', () => {
    const { msg } = ask(bigTable, `${'a'.repeat(60)}.mx.big.example`, 'MX')
    expect(msg!.answers).toHaveLength(800)
    expect(msg!.additionals).toHaveLength(800)
  })
})
