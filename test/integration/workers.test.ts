/**
 * `gslb serve --workers 2`: the real command, two data-plane threads sharing the listen address
 * with SO_REUSEPORT, the control plane on the main thread. Queries come from many source ports
 * (a fresh UDP socket each), so the kernel's flow hash sends some to each worker; the per-worker
 * counter on /metrics proves both answered. Everything stays on 127.0.0.1.
 */

import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { dig } from '../helpers/dig.ts'
import { type ServeCli, spawnCli, startServeCli, waitFor } from '../helpers/process.ts'
import { fromManyPorts } from '../helpers/raw.ts'
import { FIXTURES } from '../helpers/server.ts'

const ZONE_FILE = 'workers.example.yaml'

function tempZones(): string {
  const dir = mkdtempSync(join(tmpdir(), 'gslb-workers-'))
  cpSync(join(FIXTURES, 'workers'), dir, { recursive: true })
  return dir
}

type Server = ServeCli

function startServer(dir: string, ...extra: string[]): Promise<Server> {
  return startServeCli(dir, ['--workers', '2', ...extra])
}

/** `gslb_worker_queries_total` per worker label. */
async function perWorker(admin: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${admin}/metrics`)).text()
  const out = new Map<string, number>()
  for (const m of text.matchAll(/^gslb_worker_queries_total\{worker="(\d+)"\} (\S+)$/gm)) out.set(m[1]!, Number(m[2]))
  return out
}

/**
 * Queries from many ports until every answer is `want`, then once more while watching the
 * per-worker counters: that final batch must be all `want` and reach both workers.
 */
async function everyWorkerAnswers(s: Server, name: string, want: string): Promise<void> {
  const { value } = await waitFor(
    () => fromManyPorts(s.dns, name, 16),
    (a) => a.every((x) => x === want),
    8000,
    100,
  )
  expect(new Set(value)).toEqual(new Set([want]))
  const before = await perWorker(s.admin)
  expect(new Set(await fromManyPorts(s.dns, name))).toEqual(new Set([want]))
  const after = await perWorker(s.admin)
  for (const w of ['0', '1']) expect((after.get(w) ?? 0) - (before.get(w) ?? 0)).toBeGreaterThan(0)
}

async function action(s: Server, body: Record<string, string>): Promise<void> {
  const res = await fetch(`${s.admin}/action`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  expect(res.status).toBe(200)
}

describe('serve --workers 2', () => {
  let dir: string
  let s: Server

  beforeAll(async () => {
    dir = tempZones()
    s = await startServer(dir)
  }, 20_000)

  afterAll(() => {
    s?.proc.child.kill('SIGKILL')
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('answers over UDP and TCP from worker threads, not the main thread', async () => {
    const udp = await dig('127.0.0.1', s.dns, 'static.workers.example', 'A')
    expect(udp.status).toBe('NOERROR')
    expect(udp.transport).toBe('UDP')
    expect(udp.answer.map((r) => r.data)).toEqual(['192.0.2.80'])
    const tcp = await dig('127.0.0.1', s.dns, '+tcp', 'www.workers.example', 'A')
    expect(tcp.transport).toBe('TCP')
    expect(tcp.flags.has('aa')).toBe(true)
    expect(tcp.answer.map((r) => r.data)).toEqual(['192.0.2.11'])
    const log = s.proc.log()
    expect(log).toMatch(/"worker":0,[^\n]*"listening on UDP and TCP"/)
    expect(log).toMatch(/"worker":1,[^\n]*"listening on UDP and TCP"/)
    // The main thread loads the zones (for probes and the admin endpoint) but binds no DNS socket.
    expect(log).not.toMatch(/"pid":\d+,"host"[^\n]*"listening on UDP and TCP"/)
  })

  it('spreads flows from different source ports over both workers, counted per worker in /metrics', async () => {
    const before = await perWorker(s.admin)
    const answers = await fromManyPorts(s.dns, 'static.workers.example', 64)
    expect(new Set(answers)).toEqual(new Set(['192.0.2.80']))
    const after = await perWorker(s.admin)
    const d0 = (after.get('0') ?? 0) - (before.get('0') ?? 0)
    const d1 = (after.get('1') ?? 0) - (before.get('1') ?? 0)
    expect(d0).toBeGreaterThan(0)
    expect(d1).toBeGreaterThan(0)
    expect(d0 + d1).toBe(64)
    // The usual series are the sum over the workers.
    const text = await (await fetch(`${s.admin}/metrics`)).text()
    const static0 =
      /^gslb_queries_total\{zone="workers\.example",qtype="A",rcode="NOERROR",transport="udp"\} (\d+)$/m.exec(text)
    expect(Number(static0?.[1])).toBeGreaterThanOrEqual(64)
    expect(text).toMatch(/^gslb_worker_up\{worker="0"\} 1$/m)
    expect(text).toMatch(/^gslb_worker_up\{worker="1"\} 1$/m)
  })

  it('applies a drain and a force-down from the admin endpoint in every worker', async () => {
    await everyWorkerAnswers(s, 'www.workers.example', '192.0.2.11')
    await action(s, { action: 'drain', target: 'main-1', why: 'workers test' })
    await everyWorkerAnswers(s, 'www.workers.example', '192.0.2.21')
    await action(s, { action: 'undrain', target: 'main-1' })
    await everyWorkerAnswers(s, 'www.workers.example', '192.0.2.11')
    await action(s, { action: 'force-down', target: 'main-1' })
    await everyWorkerAnswers(s, 'www.workers.example', '192.0.2.21')
    await action(s, { action: 'unforce', target: 'main-1' })
    await everyWorkerAnswers(s, 'www.workers.example', '192.0.2.11')
  })

  it('picks up an edited zone file in every worker', async () => {
    const file = join(dir, ZONE_FILE)
    writeFileSync(file, readFileSync(file, 'utf8').replace('192.0.2.80', '192.0.2.81'))
    await everyWorkerAnswers(s, 'static.workers.example', '192.0.2.81')
  })

  it('stops every worker and exits 0 on SIGTERM', async () => {
    s.proc.child.kill('SIGTERM')
    expect(await s.proc.exited).toBe(0)
    expect(s.proc.log()).toContain('"msg":"stopped"')
    expect(s.proc.log()).not.toContain('worker thread stopped unexpectedly')
  })
})

describe('serve --workers with --no-watch', () => {
  const cleanup: Array<() => void> = []
  afterEach(() => {
    for (const c of cleanup.splice(0)) c()
  })

  it('reloads every worker on SIGHUP to the process', async () => {
    const dir = tempZones()
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }))
    const s = await startServer(dir, '--no-watch')
    cleanup.push(() => s.proc.child.kill('SIGKILL'))
    const file = join(dir, ZONE_FILE)
    writeFileSync(file, readFileSync(file, 'utf8').replace('192.0.2.80', '192.0.2.82'))
    await new Promise((r) => setTimeout(r, 400))
    // Without watching, nothing changes until the signal.
    expect(new Set(await fromManyPorts(s.dns, 'static.workers.example', 16))).toEqual(new Set(['192.0.2.80']))
    s.proc.child.kill('SIGHUP')
    await everyWorkerAnswers(s, 'static.workers.example', '192.0.2.82')
    s.proc.child.kill('SIGTERM')
    expect(await s.proc.exited).toBe(0)
  })
})

describe('--workers validation', () => {
  it.each([
    ['0', '--workers: expected a whole number of threads from 1 to 64, or auto, got "0"'],
    ['65', '--workers: expected a whole number of threads from 1 to 64, or auto, got "65"'],
    ['two', '--workers: expected a whole number of threads from 1 to 64, or auto, got "two"'],
  ])('rejects --workers %s with a message naming the flag', async (n, message) => {
    const p = spawnCli(['serve', '--zones', join(FIXTURES, 'workers'), '--listen', '127.0.0.1:0', '--workers', n])
    expect(await p.exited).toBe(1)
    expect(p.log()).toContain(message)
  })
})
