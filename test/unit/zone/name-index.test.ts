/**
 * The zone table's index by name hash (ZoneTable.byHash) and the Answerer's use of it: the hash
 * the parse computes from the packet equals the one the table computes from the key; answers
 * through the index are byte for byte those of the lookup by key, for names that exist, names
 * below a cut (whose templates have a stand-in question), wildcards, NXDOMAIN and mixed case;
 * a candidate of another name (a hash collision with a name that is no node) and a hash shared by
 * two nodes still answer right; so do service names, for address queries and any other type.
 */

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as dnsPacket from 'dns-packet'
import { afterAll, describe, expect, it } from 'vitest'
import { parseName } from '../../../src/dns/name.ts'
import { nameHash, ParseResult, parseQuery, Query } from '../../../src/dns/query.ts'
import { Answerer } from '../../../src/query/handle.ts'
import type { CompiledZone } from '../../../src/zone/compile.ts'
import { buildTable, NameIndex, type ZoneTable } from '../../../src/zone/table.ts'
import { compileZoneLines } from '../../helpers/zones.ts'

const dir = mkdtempSync(join(tmpdir(), 'gslb-name-index-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function compile(name: string, lines: readonly string[]): CompiledZone {
  return compileZoneLines(dir, name, lines)
}

/** Two names whose keys share a 30-bit hash (found by search over h<i>.example.com.). */
const COLLIDING = ['h178724.example.com.', 'h588200.example.com.'] as const

const ZONE = [
  '$ORIGIN example.com.',
  '$TTL 300',
  '@        3600 SOA  ns1 hostmaster 2026010101 7200 3600 1209600 60',
  '@        3600 NS   ns1',
  '@             MX   10 mail',
  'ns1           A    192.0.2.1',
  'www           A    192.0.2.10',
  'www           AAAA 2001:db8::10',
  'WithCase      TXT  "case"',
  'mail          A    192.0.2.25',
  'a.b.c         A    192.0.2.30',
  '*.wild        A    192.0.2.99',
  'alias         CNAME www',
  'sub           NS   ns1.sub',
  'ns1.sub       A    192.0.2.53',
  'deep.ns1.sub  A    192.0.2.54',
  `${COLLIDING[0]} A 192.0.2.61`,
  `${COLLIDING[1]} A 192.0.2.62`,
]

const NAMES = [
  'example.com',
  'EXAMPLE.com',
  'www.example.com',
  'WwW.ExAmPlE.CoM',
  'withcase.example.com',
  'mail.example.com',
  'a.b.c.example.com',
  'b.c.example.com',
  'x.wild.example.com',
  'wild.example.com',
  'alias.example.com',
  'sub.example.com',
  'ns1.sub.example.com',
  'deep.ns1.sub.example.com',
  'below.sub.example.com',
  'nothere.example.com',
  'other.test',
  ...COLLIDING.map((n) => n.slice(0, -1)),
]
const TYPES = ['A', 'AAAA', 'MX', 'TXT', 'NS', 'CNAME', 'SOA', 'ANY'] as const

function packet(name: string, type: string, id: number): Buffer {
  return dnsPacket.encode({ type: 'query', id, questions: [{ name, type: type as 'A' }] })
}

/** The same table with every hash marked shared: every name that is a node is found by key. */
function byKeyOnly(t: ZoneTable): ZoneTable {
  return { ...t, byHash: NameIndex.of(t.byHash.hashes().map((h) => [h, null] as const)) }
}

describe('name hash', () => {
  it('is the same from the packet (any case) and from the key', () => {
    const q = new Query()
    for (const name of [...NAMES, '.', 'a', `${'x'.repeat(63)}.example`, 'caf\u00e9.example']) {
      for (const variant of [name, name.toUpperCase(), name.toLowerCase()]) {
        const p = packet(variant === '.' ? '.' : variant, 'A', 1)
        expect(parseQuery(p, q)).toBe(ParseResult.OK)
        expect([variant, q.hash]).toEqual([variant, nameHash(q.key)])
        // parseName folds ASCII letters only, like the parse (RFC 4343): the key of the variant itself.
        expect([variant, q.hash]).toEqual([
          variant,
          nameHash(parseName(variant.endsWith('.') ? variant : `${variant}.`).key),
        ])
      }
    }
  })
})

describe('answers through the index', () => {
  const table = buildTable([compile('example.com.zone', ZONE)])

  it('marks a hash two nodes share, and keeps the others', () => {
    const [a, b] = COLLIDING.map((n) => nameHash(parseName(n).key))
    expect(a).toBe(b)
    expect(table.byHash.get(a!)).toBeNull()
    expect(table.byHash.get(nameHash(parseName('www.example.com.').key))).toBe(
      table.nodes.get(parseName('www.example.com.').key),
    )
    expect(table.byHash.size).toBe(table.nodes.size - 1)
  })

  it('are byte for byte the lookup by key, for every name and type', () => {
    const fast = new Answerer()
    fast.table = table
    const reference = new Answerer()
    reference.table = byKeyOnly(table)
    let compared = 0
    for (const name of NAMES) {
      for (const type of TYPES) {
        const p = packet(name, type, compared)
        const got = fast.answer(p, 'udp', '127.0.0.1')
        const want = reference.answer(p, 'udp', '127.0.0.1')
        expect([name, type, got?.toString('hex')]).toEqual([name, type, want?.toString('hex')])
        compared++
      }
    }
    expect(compared).toBe(NAMES.length * TYPES.length)
  })

  it('answer right when the hash finds a node of another name', () => {
    const node = (n: string) => table.nodes.get(parseName(n).key)!
    const h = (n: string) => nameHash(parseName(n).key)
    // A name that is no node, and one that is, each given another node's entry.
    const wrong: ZoneTable = {
      ...table,
      byHash: NameIndex.of([
        ...table.byHash.hashes().map((x) => [x, table.byHash.get(x)!] as const),
        [h('nothere.example.com.'), node('www.example.com.')],
        [h('mail.example.com.'), node('www.example.com.')],
      ]),
    }
    const fast = new Answerer()
    fast.table = wrong
    const reference = new Answerer()
    reference.table = byKeyOnly(table)
    for (const name of ['nothere.example.com', 'mail.example.com']) {
      for (const type of ['A', 'MX', 'ANY']) {
        const p = packet(name, type, 7)
        const got = dnsPacket.decode(fast.answer(p, 'udp', '127.0.0.1')!)
        expect(got.questions?.[0]?.name).toBe(name)
        expect([name, type, fast.answer(p, 'udp', '127.0.0.1')!.toString('hex')]).toEqual([
          name,
          type,
          reference.answer(p, 'udp', '127.0.0.1')!.toString('hex'),
        ])
      }
    }
    // The metrics' zone for the retried query comes from the lookup by key, not the wrong node.
    const retried = packet('nothere.example.com', 'A', 8)
    fast.answer(retried, 'udp', '127.0.0.1')
    expect(fast.exactNode(retried)).toBeUndefined()
    const found = packet('www.example.com', 'A', 9)
    fast.answer(found, 'udp', '127.0.0.1')
    expect(fast.exactNode(found)).toBe(node('www.example.com.'))
  })
})

describe('services through the index', () => {
  const lines = [
    'zone: gslb.example',
    'ttl: 300',
    'records: |',
    '  @ 3600 SOA ns1 hostmaster 2026010101 7200 3600 1209600 60',
    '  @ 3600 NS ns1',
    '  ns1 A 192.0.2.1',
    '  app TXT "static text next to a service"',
    '  plain A 192.0.2.9',
    'pools:',
    '  p:',
    '    endpoints:',
    '      e1: { address: [192.0.2.11, "2001:db8::11"], weight: 3 }',
    '      e2: { address: [192.0.2.12, "2001:db8::12"] }',
    'services:',
    '  app: { pools: [p], chain: [weighted] }',
    '  api: { pools: [p], chain: [weighted] }',
  ]
  const table = buildTable([compileZoneLines(dir, 'gslb.example.yaml', lines)])
  const key = (n: string): string => parseName(n).key

  it('answers every type at a service name byte for byte as the lookup by key, and right from a wrong entry', () => {
    // Another name's service under a static name's hash, and a static node under a service's.
    const h = (n: string) => nameHash(key(n))
    const wrong: ZoneTable = {
      ...table,
      byHash: NameIndex.of([
        ...table.byHash.hashes().map((x) => [x, table.byHash.get(x)!] as const),
        [h('plain.gslb.example.'), table.nodes.get(key('app.gslb.example.'))!],
        [h('api.gslb.example.'), table.nodes.get(key('plain.gslb.example.'))!],
      ]),
    }
    let compared = 0
    for (const t of [table, wrong]) {
      // The same draws on both sides: one seeded sequence each.
      let a = 0
      let b = 0
      const fast = new Answerer({ random: () => (a = (a + 0.37) % 1) })
      fast.table = t
      const reference = new Answerer({ random: () => (b = (b + 0.37) % 1) })
      reference.table = byKeyOnly(table)
      for (const name of ['app.gslb.example', 'API.gslb.example', 'plain.gslb.example', 'none.gslb.example']) {
        for (const type of ['A', 'AAAA', 'ANY', 'TXT', 'MX']) {
          for (let i = 0; i < 4; i++) {
            const p = packet(name, type, compared)
            const got = fast.answer(p, 'udp', '127.0.0.1')
            const want = reference.answer(p, 'udp', '127.0.0.1')
            expect([name, type, got?.toString('hex')]).toEqual([name, type, want?.toString('hex')])
            compared++
          }
        }
      }
    }
    expect(compared).toBe(2 * 4 * 5 * 4)
    // The metrics' service outcome belongs to the name answered, not to the wrong entry's service.
    const counted = new Answerer()
    counted.table = wrong
    const plain = packet('plain.gslb.example', 'A', 3)
    counted.answer(plain, 'udp', '127.0.0.1')
    expect(counted.lastOutcome.query).not.toBe(plain)
    const api = packet('api.gslb.example', 'A', 4)
    counted.answer(api, 'udp', '127.0.0.1')
    expect(counted.lastOutcome.query).toBe(api)
    expect(counted.lastOutcome.service?.config.owner.key).toBe(key('api.gslb.example.'))
    // A service's address answers carry data (not the static TXT's NODATA), the TXT the static text.
    const fast = new Answerer()
    fast.table = table
    const a = dnsPacket.decode(fast.answer(packet('app.gslb.example', 'A', 1), 'udp', '127.0.0.1')!)
    expect(a.answers?.map((r) => r.type)).toEqual(['A'])
    const txt = dnsPacket.decode(fast.answer(packet('app.gslb.example', 'TXT', 2), 'udp', '127.0.0.1')!)
    expect(txt.answers?.map((r) => r.type)).toEqual(['TXT'])
  })
})
