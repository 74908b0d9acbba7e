import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { loadFile } from '../../../src/config/zone-set.ts'
import { ALL_UP } from '../../../src/health/state.ts'
import {
  type AnswerSeries,
  CountsMirror,
  QueryCounters,
  type QueryCountsData,
  type QuerySeries,
  reasonKind,
  SIZE_BUCKETS,
} from '../../../src/ops/metrics.ts'
import { Answerer, type Transport } from '../../../src/query/handle.ts'
import { buildTable } from '../../../src/zone/table.ts'
import { FIXTURES } from '../../helpers/server.ts'

function zoneFrom(dir: string, file: string) {
  const loaded = loadFile(join(FIXTURES, dir, file), join(FIXTURES, dir))
  if (!loaded.zone) throw new Error(`fixture ${file} did not load: ${loaded.errors.map((e) => e.message).join('; ')}`)
  return loaded.zone
}
const zones = [
  zoneFrom('zones', 'example.com.yaml'),
  zoneFrom('zones', 'example.org.zone'),
  zoneFrom('gslb', 'gslb.example.yaml'),
]

/** A query as a client sends it; `edns` adds an OPT with that version (0 normally). */
function packet(name: string, qtype: number, opts: { id?: number; edns?: number; qdcount?: number } = {}): Buffer {
  const labels = name.split('.').filter(Boolean)
  const qname = Buffer.concat([
    ...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])),
    Buffer.from([0]),
  ])
  const head = Buffer.alloc(12)
  head.writeUInt16BE(opts.id ?? 1, 0)
  head.writeUInt16BE(opts.qdcount ?? 1, 4)
  const tail = Buffer.alloc(4)
  tail.writeUInt16BE(qtype, 0)
  tail.writeUInt16BE(1, 2)
  const parts = [head, qname, tail]
  if (opts.edns !== undefined) {
    head.writeUInt16BE(1, 10)
    // Root owner, type OPT, payload 1232, extended rcode 0, version, flags 0, no options.
    parts.push(Buffer.from([0, 0, 41, 0x04, 0xd0, 0, opts.edns, 0, 0, 0, 0]))
  }
  return Buffer.concat(parts)
}

function setup() {
  const answerer = new Answerer()
  answerer.table = buildTable(zones)
  const counters = new QueryCounters(answerer)
  const ask = (name: string, qtype: number, transport: Transport = 'udp', opts = {}): Buffer => {
    const q = packet(name, qtype, opts)
    const out = answerer.answer(q, transport, '192.0.2.1')
    if (out === null) throw new Error('no answer')
    counters.count(q, out, transport)
    return out
  }
  return { answerer, counters, ask }
}

const key = (s: QuerySeries) => `${s.zone} ${s.qtype} ${s.rcode} ${s.transport}`
const table = (series: readonly QuerySeries[]) => Object.fromEntries(series.map((s) => [key(s), s.value]))
const answers = (series: readonly AnswerSeries[]) =>
  Object.fromEntries(series.map((s) => [`${s.zone} ${s.service} ${s.pool} ${s.outcome}`, s.value]))

describe('query counters', () => {
  it('count each query once under its zone, type bucket, rcode and transport', () => {
    const { counters, ask } = setup()
    ask('www.example.com', 1)
    ask('www.example.com', 1)
    ask('www.example.com', 28, 'tcp')
    ask('nope.example.com', 1)
    ask('x.wild.example.org', 16)
    ask('www.example.net', 1)
    ask('unknown.example.org', 65280)
    ask('example.org', 255)
    expect(table(counters.queries())).toEqual({
      'example.com A NOERROR udp': 2,
      'example.com AAAA NOERROR tcp': 1,
      'example.com A NXDOMAIN udp': 1,
      'example.org TXT NOERROR udp': 1,
      ' A REFUSED udp': 1,
      'example.org other NOERROR udp': 1,
      'example.org ANY NOERROR udp': 1,
    })
  })

  it('put unparsed questions and BADVERS under zone "" or their zone as the rcode says', () => {
    const { counters, ask } = setup()
    ask('www.example.com', 1, 'udp', { qdcount: 0 })
    ask('www.example.com', 1, 'udp', { edns: 1 })
    ask('www.example.com', 1, 'udp', { edns: 0 })
    expect(table(counters.queries())).toEqual({
      '  FORMERR udp': 1,
      'example.com A BADVERS udp': 1,
      'example.com A NOERROR udp': 1,
    })
  })

  it('count service decisions by answering pool, and only for the query that made them', () => {
    const { answerer, counters, ask } = setup()
    ask('weighted.gslb.example', 1)
    // A static query right after must not be taken for another weighted decision.
    ask('static.gslb.example', 1)
    ask('x.apps.gslb.example', 28)
    answerer.health.replace(ALL_UP.with([['gslb.example', 'ap-1', { up: false }]]))
    ask('down-servfail.gslb.example', 1)
    ask('down-nodata.gslb.example', 1)
    ask('down-pool.gslb.example', 1)
    expect(answers(counters.answers())).toEqual({
      'gslb.example weighted eu answer': 1,
      'gslb.example *.apps us answer': 1,
      'gslb.example down-servfail  servfail': 1,
      'gslb.example down-nodata  all_down': 1,
      'gslb.example down-pool us all_down': 1,
    })
    expect(table(counters.queries())).toEqual({
      'gslb.example A NOERROR udp': 4,
      'gslb.example AAAA NOERROR udp': 1,
      'gslb.example A SERVFAIL udp': 1,
    })
  })

  it('count answers per endpoint exactly, with two counters on one answerer and across folds', () => {
    // The first QueryCounters to count a decision keeps its counts on it; the second finds its
    // own by lookup. Reading in between folds what is pending; counting goes on after a read.
    const { answerer, counters, ask } = setup()
    const other = new QueryCounters(answerer)
    const both = (name: string, qtype: number): void => {
      const q = packet(name, qtype)
      const out = answerer.answer(q, 'udp', '192.0.2.1')!
      counters.count(q, out, 'udp')
      other.count(q, out, 'udp')
    }
    const endpoints = (c: QueryCounters) =>
      Object.fromEntries(c.endpointAnswers().map((e) => [`${e.pool} ${e.endpoint}`, e.value]))
    for (let i = 0; i < 50; i++) both('multi.gslb.example', 1)
    for (let i = 0; i < 20; i++) both('x.apps.gslb.example', 1)
    const first = endpoints(counters)
    expect(endpoints(other)).toEqual(first)
    // multi: 3 of 5 IPv4 endpoints per answer; *.apps: both us endpoints every time.
    const multi = ['eu eu-1', 'eu eu-2', 'us us-1', 'us us-2', 'ap ap-1'].reduce((n, k) => n + (first[k] ?? 0), 0)
    expect(multi).toBe(50 * 3 + 20 * 2)
    for (let i = 0; i < 30; i++) both('x.apps.gslb.example', 1)
    ask('x.apps.gslb.example', 1)
    const after = endpoints(counters)
    expect(after['us us-1']! - first['us us-1']!).toBe(31)
    expect(after['us us-2']! - first['us us-2']!).toBe(31)
    expect(endpoints(other)['us us-1']! - first['us us-1']!).toBe(30)
    expect(answers(counters.answers())['gslb.example *.apps us answer']).toBe(51)
    expect(answers(other.answers())['gslb.example *.apps us answer']).toBe(50)
  })

  it('keep counting into the same series after a reload swaps the table', () => {
    const { answerer, counters, ask } = setup()
    ask('nope.example.com', 1)
    ask('weighted.gslb.example', 1)
    const reloaded = [zoneFrom('zones', 'example.com.yaml'), zones[1]!, zoneFrom('gslb', 'gslb.example.yaml')]
    answerer.table = buildTable(reloaded)
    ask('nope.example.com', 1)
    ask('weighted.gslb.example', 1)
    expect(table(counters.queries())).toEqual({ 'example.com A NXDOMAIN udp': 2, 'gslb.example A NOERROR udp': 2 })
    expect(answers(counters.answers())).toEqual({ 'gslb.example weighted eu answer': 2 })
  })

  it("hand a worker's counts over as updates that send each series' labels once", () => {
    // What a worker thread reports every second: its updates, applied in order to a mirror on the
    // main thread, read back as the counters' own data; a series is labelled only when new.
    const { answerer, counters, ask } = setup()
    const mirror = new CountsMirror()
    const same = (d: QueryCountsData) => ({
      queries: table(d.queries),
      answers: answers(d.answers),
      endpoints: Object.fromEntries(d.endpoints.map((e) => [`${e.zone} ${e.pool} ${e.endpoint}`, e.value])),
      truncated: d.truncated,
      sizes: d.sizes,
    })
    expect(same(mirror.data())).toEqual(same({ queries: [], answers: [], endpoints: [], truncated: [0, 0], sizes: [] }))
    // *.apps answers with both us endpoints every time: the same series each round.
    for (let i = 0; i < 10; i++) ask('x.apps.gslb.example', 1)
    const first = counters.update()
    mirror.apply(first)
    expect(first.newEndpointKeys.length).toBeGreaterThan(0)
    expect(same(mirror.data())).toEqual(same(counters.data()))
    // Nothing new: values only.
    for (let i = 0; i < 5; i++) ask('x.apps.gslb.example', 1)
    const second = counters.update()
    expect(second.newAnswerKeys).toEqual([])
    expect(second.newEndpointKeys).toEqual([])
    mirror.apply(second)
    expect(same(mirror.data())).toEqual(same(counters.data()))
    // New series after that, and an outcome other than an answer on an existing service.
    answerer.health.replace(ALL_UP.with([['gslb.example', 'ap-1', { up: false }]]))
    for (let i = 0; i < 10; i++) ask('multi.gslb.example', 1)
    ask('weighted.gslb.example', 1)
    ask('down-pool.gslb.example', 1)
    ask('nope.example.com', 1, 'tcp')
    const third = counters.update()
    expect(third.newAnswerKeys.map((k) => k[1])).toContain('weighted')
    expect(third.newEndpointKeys.length).toBeGreaterThan(0)
    mirror.apply(third)
    expect(same(mirror.data())).toEqual(same(counters.data()))
    expect(answers(mirror.data().answers)['gslb.example *.apps us answer']).toBe(15)
    expect(table(mirror.data().queries)['example.com A NXDOMAIN tcp']).toBe(1)
  })

  it('count truncated responses and response sizes per transport', () => {
    const { counters, ask } = setup()
    const small = ask('www.example.com', 1)
    const cut = ask('big.example.org', 1)
    const full = ask('big.example.org', 1, 'tcp')
    expect(cut[2]! & 0x02).toBe(0x02)
    expect(counters.truncated('udp')).toBe(1)
    expect(counters.truncated('tcp')).toBe(0)
    const [udp, tcp] = counters.sizes()
    expect(udp!.count).toBe(2)
    expect(udp!.sum).toBe(small.length + cut.length)
    expect(tcp!.count).toBe(1)
    expect(tcp!.sum).toBe(full.length)
    const bucketOf = (n: number) => {
      const i = SIZE_BUCKETS.findIndex((b) => n <= b)
      return i === -1 ? SIZE_BUCKETS.length : i
    }
    const expected = new Array(SIZE_BUCKETS.length + 1).fill(0)
    expected[bucketOf(small.length)]++
    expected[bucketOf(cut.length)]++
    expect(udp!.buckets).toEqual(expected)
  })

  it.each([
    [64, 0],
    [65, 1],
    [128, 1],
    [129, 2],
    [512, 3],
    [513, 4],
    [4096, 6],
    [4097, 7],
    [65535, 7],
  ])('puts a %i-byte response in bucket %i', (size, bucket) => {
    const answerer = new Answerer()
    const counters = new QueryCounters(answerer)
    const response = Buffer.alloc(size)
    response[2] = 0x80
    counters.count(Buffer.alloc(0), response, 'udp')
    expect(counters.sizes()[0]!.buckets.indexOf(1)).toBe(bucket)
  })
})

describe('reasonKind', () => {
  it.each([
    ['forced down', 'forced'],
    ['drained', 'drained'],
    ['pushed by alertmanager', 'pushed'],
    ['check failed from eu: timeout', 'check'],
    ['check ok from local', 'check'],
    ['no current report (unknown counts as up)', 'no_report'],
    ['something new', 'other'],
  ])('classifies "%s" as %s', (reason, kind) => {
    expect(reasonKind(reason)).toBe(kind)
  })
})
