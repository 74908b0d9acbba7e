/**
 * The batch read-ahead (query/read-ahead.ts): the question hash it computes equals the parse's;
 * the index's batch lookup equals one lookup per hash; it follows static names and services whose
 * answers are made ahead down to their templates, and nothing else (no name, another class, a
 * malformed or cut datagram, a service not asked yet); it never throws on garbage; and the
 * answers after it are byte for byte those without it.
 */

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as dnsPacket from 'dns-packet'
import { afterAll, describe, expect, it } from 'vitest'
import { parseAddress } from '../../../src/dns/address.ts'
import { nameHash, ParseResult, parseQuery, Query, questionHash, questionSpan } from '../../../src/dns/query.ts'
import { T } from '../../../src/dns/types.ts'
import { HealthStore } from '../../../src/health/state.ts'
import { firstClientSlot, type ServiceNode } from '../../../src/policy/service.ts'
import { type ClientKey, clientKey4, KEY_UNKNOWN, QueryContext } from '../../../src/query/context.ts'
import { Answerer, READ_AHEAD_MIN_NAMES } from '../../../src/query/handle.ts'
import { ECS_KEY, ecsClientKey, NO_ECS, NO_KEY, ReadAhead } from '../../../src/query/read-ahead.ts'
import { answerAt, buildTable, NameIndex } from '../../../src/zone/table.ts'
import { fuzzPacket, int } from '../../helpers/fuzz.ts'
import { mulberry32 } from '../../helpers/policy-context.ts'
import { query as rawQuery } from '../../helpers/raw.ts'
import { compileZoneLines } from '../../helpers/zones.ts'

const dir = mkdtempSync(join(tmpdir(), 'gslb-read-ahead-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const ZONE = [
  'zone: gslb.example',
  'ttl: 300',
  'records: |',
  '  @ 3600 SOA ns1 hostmaster 2026010101 7200 3600 1209600 60',
  '  @ 3600 NS ns1',
  '  ns1 A 192.0.2.1',
  '  www A 192.0.2.10',
  '  www TXT "text"',
  'pools:',
  '  p:',
  '    endpoints:',
  '      e1: { address: [192.0.2.11, "2001:db8::11"], weight: 3 }',
  '      e2: { address: [192.0.2.12, "2001:db8::12"] }',
  'services:',
  '  app: { pools: [p], chain: [weighted] }',
  '  two: { pools: [p], chain: [weighted] }',
  '  stick: { pools: [p], chain: [sticky] }',
]

function table() {
  return buildTable([compileZoneLines(dir, 'gslb.example.yaml', ZONE)])
}

function query(name: string, type: string, id = 1, cls: 'IN' | 'CH' = 'IN'): Buffer {
  return dnsPacket.encode({ type: 'query', id, questions: [{ name, type: type as 'A', class: cls }] })
}

/** A query with an OPT record: ECS (address, source prefix) after `options` when given. */
function ednsQuery(name: string, type: string, ecs?: readonly [string, number], options: object[] = []): Buffer {
  return rawQuery(name, type, { id: 9, edns: true, ecs, options })
}

const SLOT = 512
/** Records of 8 words: length in word 1, source family in word 2, source address from byte 12. */
const LAYOUT = { slot: SLOT, words: 8, lengthAt: 1, familyAt: 2, addressAt: 12 }

/** Datagrams laid out as the batched UDP addon does (LAYOUT), from 127.0.0.1 unless given. */
function batch(packets: readonly Buffer[], lengths?: readonly number[], sources?: readonly string[]) {
  const input = Buffer.alloc(packets.length * SLOT)
  const meta = new Int32Array(packets.length * LAYOUT.words).fill(-7)
  const records = new Uint8Array(meta.buffer)
  packets.forEach((p, i) => {
    p.copy(input, i * SLOT, 0, Math.min(p.length, SLOT))
    const m = i * LAYOUT.words
    meta[m + LAYOUT.lengthAt] = lengths?.[i] ?? p.length
    const from = parseAddress(sources?.[i] ?? '127.0.0.1')!
    meta[m + LAYOUT.familyAt] = from.family
    records.set(from.bytes, m * 4 + LAYOUT.addressAt)
  })
  return { input, meta, records, count: packets.length }
}

describe('question hash', () => {
  it('equals the hash parseQuery computes, and ends where the name ends', () => {
    const q = new Query()
    const names = ['.', 'a', 'www.gslb.example', 'WwW.GsLb.ExAmPlE', `${'x'.repeat(63)}.example`, 'caf\u00e9.example']
    for (const name of names) {
      const p = query(name, 'AAAA')
      expect(parseQuery(p, q)).toBe(ParseResult.OK)
      expect(questionHash(p, 0, p.length)).toBe(q.hash)
      expect(questionSpan.end).toBe(12 + q.qnameLen)
    }
    expect(questionHash(query('www.gslb.example', 'A'), 0, 200)).toBe(nameHash('\x03www\x04gslb\x07example\x00'))
  })

  it('is -1 for a name the parse would not accept', () => {
    const www = query('www.gslb.example', 'A')
    // Cut inside the name, and cut right after its last label (no root byte).
    expect(questionHash(www, 0, 15)).toBe(-1)
    expect(questionHash(www, 0, 12 + 17)).toBe(-1)
    const long = Buffer.from(www)
    long[12] = 64
    expect(questionHash(long, 0, long.length)).toBe(-1)
    // 128 labels of one byte is 256 bytes with the root: over 255.
    const deep = Buffer.concat([www.subarray(0, 12), Buffer.alloc(256, 1), Buffer.from([0, 0, 1, 0, 1])])
    for (let i = 12; i < 12 + 256; i += 2) deep[i] = 1
    deep[12 + 256] = 0
    expect(questionHash(deep, 0, deep.length)).toBe(-1)
  })

  it('agrees with the parse on fuzzed packets: never a hash the parse would not compute', () => {
    const rng = mulberry32(7)
    const q = new Query()
    let hashed = 0
    for (let n = 0; n < 3000; n++) {
      const b = fuzzPacket(rng, 600).bytes
      const h = b.length < 12 ? -1 : questionHash(b, 0, b.length)
      if (h < 0) continue
      hashed++
      // The parse reads past the name (type, class, other sections) and may refuse for that.
      if (parseQuery(b, q) === ParseResult.OK && q.hasQuestion) expect(h).toBe(q.hash)
    }
    expect(hashed).toBeGreaterThan(1000)
  })
})

describe('ECS client key', () => {
  it('is the key the query path computes from the same option', () => {
    const q = new Query()
    const ctx = new QueryContext(undefined)
    const view = new HealthStore().current.view('gslb.example.')
    const key = { keyFamily: -1, keyHi: -1, keyLo: -1 }
    const cases: [string, number][] = [
      ['81.2.69.0', 24],
      ['81.2.69.160', 32],
      ['81.2.0.0', 16],
      ['80.0.0.0', 7],
      ['2001:db8:1234:5600::', 56],
      ['2001:db8:1234::', 48],
      ['2001:db8:1234:5678:9abc::', 80],
      ['2001:db8::', 29],
      ['2001:db8:1234:5678::1', 128],
    ]
    for (const ecs of cases) {
      for (const extra of [[], [{ code: 10, data: Buffer.from('0102030405060708', 'hex') }]]) {
        const p = ednsQuery('app.gslb.example', 'A', ecs, extra)
        expect(parseQuery(p, q)).toBe(ParseResult.OK)
        ctx.reset(q, '127.0.0.1', view)
        ctx.computeKey()
        expect(questionHash(p, 0, p.length)).toBe(q.hash)
        expect(ecsClientKey(p, 0, p.length, questionSpan.end + 4, key)).toBe(ECS_KEY)
        expect([key.keyFamily, key.keyHi, key.keyLo]).toEqual([ctx.keyFamily, ctx.keyHi, ctx.keyLo])
      }
    }
  })

  it('says NO_ECS without an ECS option, NO_KEY for source prefix 0 or a layout it does not read', () => {
    const key = { keyFamily: -1, keyHi: -1, keyLo: -1 }
    const at = (p: Buffer): number => (questionHash(p, 0, p.length) >= 0 ? questionSpan.end + 4 : -1)
    const found = (p: Buffer, end = p.length): number => ecsClientKey(p, 0, end, at(p), key)
    // No OPT, an OPT without options, an OPT with another option: the source address keys it.
    expect(found(query('app.gslb.example', 'A'))).toBe(NO_ECS)
    expect(found(ednsQuery('app.gslb.example', 'A'))).toBe(NO_ECS)
    expect(found(ednsQuery('app.gslb.example', 'A', undefined, [{ code: 10, data: Buffer.alloc(8) }]))).toBe(NO_ECS)
    // ECS with source prefix 0: the query path knows no client (KEY_UNKNOWN), so nothing is keyed.
    expect(found(ednsQuery('app.gslb.example', 'A', ['0.0.0.0', 0]))).toBe(NO_KEY)
    expect(KEY_UNKNOWN).toBe(0)
    // An answer record before the OPT: not the layout it reads.
    const withAnswer = dnsPacket.encode({
      type: 'query',
      id: 3,
      questions: [{ name: 'app.gslb.example', type: 'A' }],
      answers: [{ type: 'A', name: 'app.gslb.example', data: '192.0.2.1' }],
      additionals: [
        {
          type: 'OPT',
          name: '.',
          udpPayloadSize: 1232,
          options: [{ code: 8, family: 1, sourcePrefixLength: 24, scopePrefixLength: 0, ip: '81.2.69.0' }],
        } as dnsPacket.Answer,
      ],
    })
    expect(found(withAnswer)).toBe(NO_KEY)
    // Cut inside the option; something other than an OPT after the question.
    const ecs = ednsQuery('app.gslb.example', 'A', ['81.2.69.0', 24])
    expect(found(ecs, ecs.length - 2)).toBe(NO_KEY)
    const notOpt = Buffer.from(ecs)
    notOpt[at(ecs) + 2] = 250
    expect(found(notOpt)).toBe(NO_KEY)
    expect(key.keyFamily).toBe(-1)
  })
})

describe('NameIndex.getMany', () => {
  it('finds for each hash what get finds; a negative hash finds nothing', () => {
    const t = table()
    const hashes = t.byHash.hashes()
    const asked = new Int32Array([...hashes, -1, 12345, ...hashes.slice(0, 3)])
    const out: unknown[] = []
    t.byHash.getMany(asked, asked.length, out as never)
    expect(out).toEqual([...asked].map((h) => (h < 0 ? undefined : t.byHash.get(h))))
    expect(out.filter((n) => n !== undefined).length).toBe(hashes.length + 3)
    const shared = NameIndex.of([
      [5, null],
      [9, null],
    ])
    const two: unknown[] = []
    shared.getMany(new Int32Array([5, 9, 7]), 3, two as never)
    expect(two).toEqual([null, null, undefined])
  })
})

describe('ReadAhead', () => {
  it('follows static names and services answered once to a template, and nothing else', () => {
    const t = table()
    const ahead = new ReadAhead()
    const run = (packets: readonly Buffer[], lengths?: readonly number[]): number => {
      const b = batch(packets, lengths)
      return ahead.run(t, b.input, b.meta, b.records, LAYOUT, b.count)
    }
    expect(run([query('www.gslb.example', 'A')])).toBe(1)
    expect(run([query('WWW.gslb.example', 'TXT')])).toBe(1)
    // A type the name has none of: its NODATA template.
    expect(run([query('www.gslb.example', 'MX')])).toBe(1)
    expect(run([query('nothere.gslb.example', 'A')])).toBe(0)
    expect(run([query('www.gslb.example', 'TXT', 1, 'CH')])).toBe(0)
    // Cut by its length field; no length (negative); shorter than a question.
    const www = query('www.gslb.example', 'A')
    expect(run([www], [20])).toBe(0)
    // The name and type whole, the class cut off (its bytes are in the slot, past the length).
    expect(run([www], [www.length - 2])).toBe(0)
    expect(run([www], [www.length])).toBe(1)
    expect(run([www], [-1])).toBe(0)
    expect(run([www.subarray(0, 14)])).toBe(0)
    // A service before any query has nothing made ahead; after one, its Ready has a template.
    const app = query('app.gslb.example', 'A')
    expect(run([app])).toBe(0)
    const answerer = new Answerer({ random: mulberry32(3) })
    answerer.table = t
    expect(answerer.answer(app, 'udp', '127.0.0.1')).not.toBeNull()
    expect(run([app])).toBe(1)
    expect(run([query('app.gslb.example', 'AAAA')])).toBe(0)
    expect(run([app, www, query('two.gslb.example', 'A'), query('x.gslb.example', 'A'), app])).toBe(3)
  })

  it("follows a client's own Ready by the query's ECS option", () => {
    const t = table()
    const ahead = new ReadAhead()
    const run = (packets: readonly Buffer[]): number => {
      const b = batch(packets)
      return ahead.run(t, b.input, b.meta, b.records, LAYOUT, b.count)
    }
    const uk = ednsQuery('stick.gslb.example', 'A', ['81.2.69.0', 24])
    const other = ednsQuery('stick.gslb.example', 'A', ['192.0.2.0', 24])
    const v6 = ednsQuery('stick.gslb.example', 'AAAA', ['2001:db8:1234:5600::', 56])
    expect(run([uk, other, v6])).toBe(0)
    const answerer = new Answerer({ random: mulberry32(3) })
    answerer.table = t
    expect(answerer.answer(uk, 'udp', '127.0.0.1')).not.toBeNull()
    // The client answered has its Ready; another client, and one without ECS (keyed by source), not.
    expect(run([uk])).toBe(1)
    expect(run([other])).toBe(0)
    expect(run([ednsQuery('stick.gslb.example', 'A')])).toBe(0)
    expect(answerer.answer(v6, 'udp', '127.0.0.1')).not.toBeNull()
    expect(answerer.answer(other, 'udp', '127.0.0.1')).not.toBeNull()
    expect(run([uk, other, v6, ednsQuery('stick.gslb.example', 'AAAA', ['2001:db8:1234:5700::', 56])])).toBe(3)
  })

  it('finds every client of a full client table, those whose first slot another client took too', () => {
    const t = table()
    const answerer = new Answerer({ random: mulberry32(5) })
    answerer.table = t
    const stick = (net: string): Buffer => ednsQuery('stick.gslb.example', 'A', [net, 24])
    const seen = Array.from({ length: 400 }, (_, k) => `10.${k >> 8}.${k & 255}.0`)
    for (const net of seen) expect(answerer.answer(stick(net), 'udp', '127.0.0.1')).not.toBeNull()
    // The table as the read-ahead finds it: some clients sit past their first slot.
    const node = t.byHash.get(nameHash('\x05stick\x04gslb\x07example\x00'))!
    const table4 = (answerAt(node, T.A) as ServiceNode).clients4!
    const key: ClientKey = { keyFamily: 0, keyHi: 0, keyLo: 0 }
    let displaced = 0
    for (const net of seen) {
      clientKey4(key, parseAddress(net)!.bytes.readUInt32BE(0), 24)
      const first = table4[firstClientSlot(table4, key.keyFamily, key.keyHi, key.keyLo)]
      expect(first).toBeDefined()
      if (first!.clientKey !== key.keyLo) displaced++
    }
    expect(displaced).toBeGreaterThan(0)
    const unseen = Array.from({ length: 100 }, (_, k) => `10.200.${k}.0`)
    const b = batch([...seen, ...unseen].map(stick))
    expect(new ReadAhead().run(t, b.input, b.meta, b.records, LAYOUT, b.count)).toBe(seen.length)
  })

  it('is skipped for a zone set smaller than readAheadMinNames (its answers stay in cache)', () => {
    const t = table()
    const b = batch([query('www.gslb.example', 'A')])
    const at = (min?: number): number => {
      const a = new Answerer(min === undefined ? {} : { readAheadMinNames: min })
      a.table = t
      return a.readAhead(b.input, b.meta, b.records, LAYOUT, b.count)
    }
    expect(t.byHash.size).toBeLessThan(READ_AHEAD_MIN_NAMES)
    expect(at()).toBe(0)
    expect(at(t.byHash.size + 1)).toBe(0)
    expect(at(t.byHash.size)).toBe(1)
  })

  it("follows a client's own Ready by the source address of a query without ECS", () => {
    const t = table()
    const ahead = new ReadAhead()
    const run = (from: string, layout = LAYOUT, type = 'A'): number => {
      const b = batch([ednsQuery('stick.gslb.example', type)], undefined, [from])
      return ahead.run(t, b.input, b.meta, b.records, layout, b.count)
    }
    const answerer = new Answerer({ random: mulberry32(3) })
    answerer.table = t
    expect(run('198.51.100.9')).toBe(0)
    expect(answerer.answer(ednsQuery('stick.gslb.example', 'A'), 'udp', '198.51.100.7')).not.toBeNull()
    // Keyed by /24, as the query path keys it; an IPv4-mapped IPv6 source is that IPv4 client.
    expect(run('198.51.100.9')).toBe(1)
    expect(run('::ffff:198.51.100.20')).toBe(1)
    expect(run('198.51.101.9')).toBe(0)
    expect(run('198.51.100.9', { ...LAYOUT, familyAt: -1 })).toBe(0)
    // With ECS, the ECS client and not the source: source prefix 0 is no client at all.
    const viaEcs = (ecs: [string, number]): number => {
      const b = batch([ednsQuery('stick.gslb.example', 'A', ecs)], undefined, ['198.51.100.9'])
      return ahead.run(t, b.input, b.meta, b.records, LAYOUT, b.count)
    }
    expect(viaEcs(['192.0.2.0', 24])).toBe(0)
    expect(viaEcs(['0.0.0.0', 0])).toBe(0)
    expect(viaEcs(['198.51.100.0', 24])).toBe(1)
    // IPv6 by /56.
    expect(answerer.answer(ednsQuery('stick.gslb.example', 'AAAA'), 'udp', '2001:db8:1:200::7')).not.toBeNull()
    expect(run('2001:db8:1:2ff::5', LAYOUT, 'AAAA')).toBe(1)
    expect(run('2001:db8:1:300::5', LAYOUT, 'AAAA')).toBe(0)
  })

  it('reads batches larger than it was made for, and garbage of any length, without throwing', () => {
    const t = table()
    const ahead = new ReadAhead()
    const rng = mulberry32(11)
    for (let n = 0; n < 200; n++) {
      const packets = Array.from({ length: 1 + int(rng, 80) }, () => fuzzPacket(rng, SLOT).bytes)
      // Lengths past the slot and the buffer, zero and negative ones too.
      const lengths = packets.map((p) => [p.length, 0, -1, SLOT + 100, 1 << 20][int(rng, 5)]!)
      const b = batch(packets, lengths)
      expect(() => ahead.run(t, b.input, b.meta, b.records, LAYOUT, b.count)).not.toThrow()
    }
  })

  it('leaves answers byte for byte as they are without it', () => {
    const t = table()
    const packets = ['www A', 'app A', 'app AAAA', 'two A', 'www TXT', 'nothere A', 'gslb.example SOA'].map((s, i) => {
      const [name, type] = s.split(' ')
      return query(`${name}.gslb.example`.replace('gslb.example.gslb.example', 'gslb.example'), type!, i + 1)
    })
    const plain = new Answerer({ random: mulberry32(5) })
    const ahead = new Answerer({ random: mulberry32(5), readAheadMinNames: 0 })
    plain.table = t
    ahead.table = t
    const b = batch(packets)
    for (let round = 0; round < 3; round++) {
      const reached = ahead.readAhead(b.input, b.meta, b.records, LAYOUT, b.count)
      // Round 0: the services have made nothing ahead yet; from round 1 every name that exists is reached.
      expect(reached).toBe(round === 0 ? 3 : 6)
      for (const p of packets) {
        expect(ahead.answer(p, 'udp', '127.0.0.1')?.toString('hex')).toBe(
          plain.answer(p, 'udp', '127.0.0.1')?.toString('hex'),
        )
      }
    }
  })
})
