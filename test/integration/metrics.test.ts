/**
 * Metrics, readiness and TCP limits of a real `serve()` (embedded mode: in-memory state, the
 * in-process prober): queries from the real `dig`, a scrape of the admin endpoint's /metrics
 * before and after, and exact deltas. Everything stays on loopback; the second TCP source is
 * 127.0.0.2, which Linux routes to lo like all of 127/8.
 */

import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { resolveServeConfig } from '../../src/config/server-config.ts'
import { createLogger } from '../../src/log.ts'
import { type Serving, serve } from '../../src/serve.ts'
import { dig } from '../helpers/dig.ts'
import { frame, query } from '../helpers/raw.ts'
import { FIXTURES } from '../helpers/server.ts'

const PER_SOURCE = 4
const MAX_CONNECTIONS = PER_SOURCE + 2

let dir: string
let backend: Server
/** Webhook receiver: the events serve() posts on health changes. */
let hooks: Server
const hookEvents: Array<{ type: string; endpoint?: string }> = []
let serving: Serving
let dnsPort: number
let admin: string

type Labels = Record<string, string>
type Scrape = Map<string, number>

const seriesKey = (name: string, labels: Labels = {}): string =>
  `${name}{${Object.keys(labels)
    .sort()
    .map((k) => `${k}="${labels[k]}"`)
    .join(',')}}`

async function scrape(): Promise<Scrape> {
  const res = await fetch(`${admin}/metrics`)
  expect(res.status).toBe(200)
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
  const out: Scrape = new Map()
  for (const line of (await res.text()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m) throw new Error(`unparsable metrics line: ${line}`)
    const labels: Labels = {}
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!
    out.set(seriesKey(m[1]!, labels), Number(m[3]))
  }
  return out
}

const get = (s: Scrape, name: string, labels: Labels = {}): number => s.get(seriesKey(name, labels)) ?? 0
const delta = (before: Scrape, after: Scrape, name: string, labels: Labels = {}): number =>
  get(after, name, labels) - get(before, name, labels)
/** Sum of the deltas of every series of `name`, whatever its labels. */
function totalDelta(before: Scrape, after: Scrape, name: string): number {
  let sum = 0
  for (const [k, v] of after) if (k.startsWith(`${name}{`)) sum += v - (before.get(k) ?? 0)
  return sum
}

async function until(what: () => Promise<boolean>, timeoutMs = 8000): Promise<void> {
  const t0 = Date.now()
  while (!(await what())) {
    if (Date.now() - t0 > timeoutMs) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, 50))
  }
}

const q = (...args: string[]) => dig('127.0.0.1', dnsPort, ...args)

async function action(body: Record<string, string>): Promise<void> {
  const res = await fetch(`${admin}/action`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ why: 'metrics test', ...body }),
  })
  expect(res.status).toBe(200)
}

/** A TCP connection from `localAddress` that collects framed replies and notes when it closes. */
async function tcpFrom(localAddress: string): Promise<{
  socket: Socket
  replies: Buffer[]
  closed: Promise<void>
  ask(id: number, timeoutMs?: number): Promise<Buffer | undefined>
}> {
  const socket = connect({ host: '127.0.0.1', port: dnsPort, localAddress })
  socket.on('error', () => {})
  const closed = new Promise<void>((r) => socket.once('close', () => r()))
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve())
    socket.once('error', reject)
  })
  const replies: Buffer[] = []
  let buf = Buffer.alloc(0)
  socket.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d])
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      replies.push(buf.subarray(2, 2 + buf.readUInt16BE(0)))
      buf = buf.subarray(2 + buf.readUInt16BE(0))
    }
  })
  return {
    socket,
    replies,
    closed,
    async ask(id, timeoutMs = 2000) {
      socket.write(frame(query('host.example.org', 'A', { id })))
      const t0 = Date.now()
      while (Date.now() - t0 < timeoutMs) {
        const r = replies.find((x) => x.readUInt16BE(0) === id)
        if (r) return r
        if (socket.destroyed) return undefined
        await new Promise((res) => setTimeout(res, 20))
      }
      return undefined
    },
  }
}

/**
 * Connects from `localAddress`, sends a query at once, and resolves with the bytes received by the
 * time the server closes the connection (the reset may come before or after the client sees the
 * connection established); fails if it stays open.
 */
function closedOnArrival(localAddress: string): Promise<number> {
  return new Promise((resolve, reject) => {
    let received = 0
    const socket = connect({ host: '127.0.0.1', port: dnsPort, localAddress })
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error('connection was not closed'))
    }, 2000)
    socket.on('connect', () => socket.write(frame(query('host.example.org', 'A', { id: 200 }))))
    socket.on('data', (d: Buffer) => {
      received += d.length
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      clearTimeout(timer)
      resolve(received)
    })
  })
}

beforeAll(async () => {
  backend = createServer((_req, res) => res.writeHead(200).end('ok'))
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r))
  const backendPort = (backend.address() as { port: number }).port
  hooks = createServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => {
      body += c.toString()
    })
    req.on('end', () => {
      hookEvents.push(JSON.parse(body) as { type: string; endpoint?: string })
      res.writeHead(204).end()
    })
  })
  await new Promise<void>((r) => hooks.listen(0, '127.0.0.1', r))
  const hooksPort = (hooks.address() as { port: number }).port
  dir = mkdtempSync(join(tmpdir(), 'gslb-metrics-'))
  cpSync(join(FIXTURES, 'zones'), dir, { recursive: true })
  cpSync(join(FIXTURES, 'gslb'), dir, { recursive: true })
  writeFileSync(
    join(dir, 'probe.example.yaml'),
    `zone: probe.example
records: |
  @   3600 SOA ns1 hostmaster 7 7200 3600 1209600 5
  @   3600 NS  ns1
  ns1 3600 A   192.0.2.53
checks:
  web: { type: http, address: 127.0.0.1, port: ${backendPort}, path: /, interval: 200ms, timeout: 150ms, rise: 1, fall: 1 }
pools:
  main: { check: web, endpoints: { web-1: 192.0.2.11 } }
services:
  www: { ttl: 10, pools: [main], chain: [weighted] }
`,
  )
  const cfg = resolveServeConfig({
    zones: dir,
    listen: ['127.0.0.1:0'],
    admin: '127.0.0.1:0',
    geoip: [join(FIXTURES, 'geo', 'test-city.mmdb')],
    'no-watch': true,
    'log-level': 'silent',
    webhook: [`http://127.0.0.1:${hooksPort}/gslb`],
  })
  // The settings file has no key for the per-source cap yet; small caps keep the test short.
  serving = await serve(
    { ...cfg, tcp: { ...cfg.tcp, maxConnections: MAX_CONNECTIONS, maxConnectionsPerSource: PER_SOURCE } },
    createLogger('silent'),
    'test',
  )
  dnsPort = serving.server.addresses[0]!.port
  admin = `http://127.0.0.1:${serving.admin!.port}`
})

afterAll(async () => {
  await serving?.close()
  await new Promise((r) => backend?.close(r))
  await new Promise((r) => hooks?.close(r))
  if (dir) rmSync(dir, { recursive: true, force: true })
})

describe('GET /metrics', () => {
  it('counts each kind of query by exactly one, under its zone, type, rcode and transport', async () => {
    const before = await scrape()
    expect((await q('www.example.com', 'A')).status).toBe('NOERROR')
    expect((await q('nope.example.com', 'A')).status).toBe('NXDOMAIN')
    expect((await q('www.example.net', 'A')).status).toBe('REFUSED')
    const lb = await q('weighted.gslb.example', 'A')
    expect(lb.status).toBe('NOERROR')
    expect(['192.0.2.11', '192.0.2.12']).toContain(lb.answer[0]!.data)
    expect((await q('unknown.example.org', 'TYPE65280')).status).toBe('NOERROR')
    // 40 A records do not fit 512 bytes: TC over UDP, then dig's retry over TCP.
    const big = await q('big.example.org', 'A', '+noedns')
    expect(big.transport).toBe('TCP')
    const after = await scrape()

    const queries = (zone: string, qtype: string, rcode: string, transport: string) =>
      delta(before, after, 'gslb_queries_total', { zone, qtype, rcode, transport })
    expect(queries('example.com', 'A', 'NOERROR', 'udp')).toBe(1)
    expect(queries('example.com', 'A', 'NXDOMAIN', 'udp')).toBe(1)
    expect(queries('', 'A', 'REFUSED', 'udp')).toBe(1)
    expect(queries('gslb.example', 'A', 'NOERROR', 'udp')).toBe(1)
    expect(queries('example.org', 'other', 'NOERROR', 'udp')).toBe(1)
    expect(queries('example.org', 'A', 'NOERROR', 'udp')).toBe(1)
    expect(queries('example.org', 'A', 'NOERROR', 'tcp')).toBe(1)
    expect(totalDelta(before, after, 'gslb_queries_total')).toBe(7)

    // Six of the seven came over UDP; each dig query is its own datagram, read by the batched path.
    expect(delta(before, after, 'gslb_udp_datagrams_received_total')).toBe(6)
    const reads = delta(before, after, 'gslb_udp_reads_total')
    expect(reads).toBeGreaterThanOrEqual(1)
    expect(reads).toBeLessThanOrEqual(6)
    expect(get(after, 'gslb_udp_responses_dropped_total')).toBe(0)

    expect(delta(before, after, 'gslb_responses_truncated_total', { transport: 'udp' })).toBe(1)
    expect(delta(before, after, 'gslb_responses_truncated_total', { transport: 'tcp' })).toBe(0)
    const weighted = { zone: 'gslb.example', service: 'weighted', pool: 'eu', outcome: 'answer' }
    expect(delta(before, after, 'gslb_answers_total', weighted)).toBe(1)
    expect(totalDelta(before, after, 'gslb_answers_total')).toBe(1)
    // The weighted answer named exactly one member endpoint of pool eu.
    expect(totalDelta(before, after, 'gslb_endpoint_answers_total')).toBe(1)
    expect(
      delta(before, after, 'gslb_endpoint_answers_total', { zone: 'gslb.example', pool: 'eu', endpoint: 'eu-1' }) +
        delta(before, after, 'gslb_endpoint_answers_total', { zone: 'gslb.example', pool: 'eu', endpoint: 'eu-2' }),
    ).toBe(1)

    expect(delta(before, after, 'gslb_response_size_bytes_count', { transport: 'udp' })).toBe(6)
    expect(delta(before, after, 'gslb_response_size_bytes_count', { transport: 'tcp' })).toBe(1)
    expect(delta(before, after, 'gslb_response_size_bytes_bucket', { transport: 'udp', le: '+Inf' })).toBe(6)
    // The TCP answer carries all 40 records: more than 512 bytes, no more than 1024.
    expect(delta(before, after, 'gslb_response_size_bytes_bucket', { transport: 'tcp', le: '512' })).toBe(0)
    expect(delta(before, after, 'gslb_response_size_bytes_bucket', { transport: 'tcp', le: '1024' })).toBe(1)
    expect(delta(before, after, 'gslb_response_size_bytes_sum', { transport: 'tcp' })).toBe(big.size)
  })

  it('follows an operator force-down: endpoint gauge, transition, all-down outcomes', async () => {
    const ap1 = { zone: 'gslb.example', pool: 'ap', endpoint: 'ap-1' }
    const start = await scrape()
    expect(get(start, 'gslb_endpoint_up', ap1)).toBe(1)
    expect(get(start, 'gslb_endpoint_up', { zone: 'gslb.example', pool: 'eu', endpoint: 'eu-1' })).toBe(1)
    const generation = get(start, 'gslb_health_view_generation')

    await action({ action: 'force-down', target: 'gslb.example/ap-1' })
    await until(async () => get(await scrape(), 'gslb_endpoint_up', ap1) === 0)
    const before = await scrape()
    expect(get(before, 'gslb_health_view_generation')).toBeGreaterThan(generation)
    expect(
      delta(start, before, 'gslb_endpoint_transitions_total', {
        zone: 'gslb.example',
        endpoint: 'ap-1',
        direction: 'down',
        reason_kind: 'forced',
      }),
    ).toBe(1)

    expect((await q('down-servfail.gslb.example', 'A')).status).toBe('SERVFAIL')
    const nodata = await q('down-nodata.gslb.example', 'A')
    expect(nodata.status).toBe('NOERROR')
    expect(nodata.answer).toHaveLength(0)
    expect((await q('down-pool.gslb.example', 'A')).answer[0]!.data).toMatch(/^192\.0\.2\.2[12]$/)
    const after = await scrape()
    const outcome = (service: string, pool: string, o: string) =>
      delta(before, after, 'gslb_answers_total', { zone: 'gslb.example', service, pool, outcome: o })
    expect(outcome('down-servfail', '', 'servfail')).toBe(1)
    expect(outcome('down-nodata', '', 'all_down')).toBe(1)
    expect(outcome('down-pool', 'us', 'all_down')).toBe(1)
    expect(totalDelta(before, after, 'gslb_answers_total')).toBe(3)
    expect(
      delta(before, after, 'gslb_queries_total', {
        zone: 'gslb.example',
        qtype: 'A',
        rcode: 'SERVFAIL',
        transport: 'udp',
      }),
    ).toBe(1)

    // serve() wires the webhooks too: the flip was posted, and counted.
    await until(async () => get(await scrape(), 'gslb_webhook_events_total', { result: 'delivered' }) >= 2)
    expect(hookEvents.map((e) => `${e.type} ${e.endpoint ?? ''}`)).toEqual(['endpoint_down ap-1', 'pool_down '])

    await action({ action: 'unforce', target: 'gslb.example/ap-1' })
    await until(async () => get(await scrape(), 'gslb_endpoint_up', ap1) === 1)
    const end = await scrape()
    expect(
      delta(before, end, 'gslb_endpoint_transitions_total', {
        zone: 'gslb.example',
        endpoint: 'ap-1',
        direction: 'up',
        reason_kind: 'no_report',
      }),
    ).toBe(1)
  })

  it('reports zone loads and serials, the state store, the prober and process metrics', async () => {
    await until(
      async () =>
        get(await scrape(), 'gslb_probe_results_total', {
          vantage: 'local',
          zone: 'probe.example',
          endpoint: 'web-1',
          result: 'ok',
        }) >= 1,
    )
    const s = await scrape()
    expect(get(s, 'gslb_zone_serial', { zone: 'example.org' })).toBe(2026010101)
    expect(get(s, 'gslb_zone_serial', { zone: 'probe.example' })).toBe(7)
    for (const zone of ['example.com', 'example.org', 'gslb.example', 'probe.example'])
      expect(get(s, 'gslb_zone_reloads_total', { zone, result: 'loaded' })).toBe(1)
    expect(get(s, 'gslb_state_store_connected')).toBe(1)
    expect(get(s, 'gslb_health_view_staleness_seconds')).toBeLessThan(10)
    const latency = get(s, 'gslb_probe_latency_seconds', { vantage: 'local', zone: 'probe.example', endpoint: 'web-1' })
    expect(latency).toBeGreaterThan(0)
    expect(latency).toBeLessThan(1)
    expect(get(s, 'gslb_prober_targets')).toBe(1)
    expect(get(s, 'gslb_endpoint_up', { zone: 'probe.example', pool: 'main', endpoint: 'web-1' })).toBe(1)
    expect(s.has(seriesKey('process_cpu_user_seconds_total'))).toBe(true)
    expect(s.has(seriesKey('nodejs_heap_size_used_bytes'))).toBe(true)
  })
})

describe('GET /readyz and /healthz', () => {
  it('are 200 once zones are loaded (embedded store: no staleness to wait for)', async () => {
    const ready = await fetch(`${admin}/readyz`)
    expect(ready.status).toBe(200)
    expect(await ready.json()).toEqual({ ready: true })
    expect((await fetch(`${admin}/healthz`)).status).toBe(200)
  })
})

describe('TCP limits', () => {
  it(`closes a source's connection beyond ${PER_SOURCE} at once, leaves other sources alone, keeps the total cap`, async () => {
    const held = []
    for (let i = 0; i < PER_SOURCE; i++) {
      const c = await tcpFrom('127.0.0.1')
      // An answer proves the server has accepted (and counted) this connection.
      expect(await c.ask(100 + i)).toBeDefined()
      held.push(c)
    }
    const before = await scrape()
    expect(get(before, 'gslb_tcp_connections')).toBe(PER_SOURCE)

    expect(await closedOnArrival('127.0.0.1')).toBe(0)

    const other = await tcpFrom('127.0.0.2')
    expect((await other.ask(300))?.readUInt16BE(0)).toBe(300)
    // The sources' own connections still work.
    expect(await held[0]!.ask(400)).toBeDefined()

    const mid = await scrape()
    expect(delta(before, mid, 'gslb_tcp_connections_rejected_total', { reason: 'per_source' })).toBe(1)
    expect(delta(before, mid, 'gslb_tcp_connections_rejected_total', { reason: 'max_connections' })).toBe(0)
    expect(get(mid, 'gslb_tcp_connections')).toBe(PER_SOURCE + 1)

    // The total cap still holds across sources.
    const third = await tcpFrom('127.0.0.3')
    expect(await third.ask(310)).toBeDefined()
    expect(await closedOnArrival('127.0.0.4')).toBe(0)
    const after = await scrape()
    expect(delta(mid, after, 'gslb_tcp_connections_rejected_total', { reason: 'max_connections' })).toBe(1)
    expect(delta(mid, after, 'gslb_tcp_connections_rejected_total', { reason: 'per_source' })).toBe(0)
    expect(get(after, 'gslb_tcp_connections')).toBe(MAX_CONNECTIONS)
    third.socket.destroy()
    await third.closed

    // Once one closes, the source may connect again.
    held[0]!.socket.destroy()
    await held[0]!.closed
    await until(async () => get(await scrape(), 'gslb_tcp_connections') === PER_SOURCE)
    const again = await tcpFrom('127.0.0.1')
    expect(await again.ask(500)).toBeDefined()
    for (const c of [...held, other, again]) c.socket.destroy()
  })

  it('drops a frame shorter than a DNS header unanswered and keeps answering on the connection', async () => {
    const before = await scrape()
    const c = await tcpFrom('127.0.0.2')
    c.socket.write(frame(Buffer.from([1, 2, 3, 4, 5])))
    expect((await c.ask(600))?.readUInt16BE(0)).toBe(600)
    expect(c.replies).toHaveLength(1)
    c.socket.destroy()
    const after = await scrape()
    expect(delta(before, after, 'gslb_tcp_short_frames_total')).toBe(1)
  })
})

describe('zone reload timings', () => {
  it('give the last reload time, and for a live reload its longest slice, once there was one', async () => {
    const before = await scrape()
    const startup = get(before, 'gslb_zone_reload_duration_seconds')
    expect(startup).toBeGreaterThan(0)
    expect(startup).toBeLessThan(60)
    // The startup load runs in one piece: no slices yet.
    expect(get(before, 'gslb_zone_reload_longest_slice_seconds')).toBe(0)
    expect(get(before, 'gslb_zone_reload_backoffs_total')).toBe(0)
    await serving.server.reloadLive('test')
    const after = await scrape()
    const slice = get(after, 'gslb_zone_reload_longest_slice_seconds')
    expect(slice).toBeGreaterThan(0)
    expect(slice).toBeLessThanOrEqual(get(after, 'gslb_zone_reload_duration_seconds'))
    expect(after.has(seriesKey('gslb_zone_reload_backoffs_total'))).toBe(true)
  })
})
