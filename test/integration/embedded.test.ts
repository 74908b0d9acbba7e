/**
 * The embedded default: one `gslb serve` with no Redis probes in-process, keeps state in memory,
 * and takes operator commands through its admin endpoint. Real process, real HTTP backend on
 * 127.0.0.1, real dig, the real `gslb` CLI for operator commands.
 */

import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { dig } from '../helpers/dig.ts'
import { CLI, freePort, ROOT, waitFor } from '../helpers/process.ts'

const run = promisify(execFile)

const until = async <T>(what: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 8000): Promise<T> =>
  (await waitFor(what, ok, timeoutMs)).value

describe('embedded mode (no Redis)', () => {
  let dir: string
  let backend: Server
  let healthy = true
  let dnsPort: number
  let adminPort: number
  let proc: ChildProcess
  let log = ''
  const www = async (): Promise<string[]> =>
    (await dig('127.0.0.1', dnsPort, '+short', 'www.embedded.example', 'A')).raw.trim().split('\n').filter(Boolean)
  const gslb = async (...args: string[]) =>
    run(process.execPath, [CLI, ...args, '--admin', `127.0.0.1:${adminPort}`], { cwd: ROOT })

  beforeAll(async () => {
    backend = createServer((_req, res) => res.writeHead(healthy ? 200 : 500).end())
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r))
    const bport = (backend.address() as { port: number }).port
    dir = mkdtempSync(join(tmpdir(), 'gslb-embedded-'))
    writeFileSync(
      join(dir, 'embedded.example.yaml'),
      `zone: embedded.example
records: |
  @   3600 SOA ns1 hostmaster 1 7200 3600 1209600 5
  @   3600 NS  ns1
  ns1 3600 A   192.0.2.53
checks:
  web: { type: http, address: 127.0.0.1, port: ${bport}, path: /, interval: 300ms, timeout: 200ms, rise: 1, fall: 1 }
pools:
  main: { check: web, endpoints: { main-1: 192.0.2.11 } }
  backup: { endpoints: { backup-1: 192.0.2.21 } }
services:
  www: { ttl: 10, pools: [main, backup], chain: [failover, weighted] }
`,
    )
    dnsPort = await freePort()
    adminPort = await freePort()
    proc = spawn(
      process.execPath,
      [
        CLI,
        'serve',
        '--zones',
        dir,
        '--listen',
        `127.0.0.1:${dnsPort}`,
        '--admin',
        `127.0.0.1:${adminPort}`,
        '--slow-start',
        '0',
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    )
    proc.stdout!.on('data', (d: Buffer) => {
      log += d.toString()
    })
    proc.stderr!.on('data', (d: Buffer) => {
      log += d.toString()
    })
    await until(
      async () => log,
      (l) => l.includes('admin endpoint listening'),
      10_000,
    )
  }, 20_000)

  afterAll(() => {
    proc?.kill('SIGKILL')
    backend?.close()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('probes in-process and fails over when the checked backend fails', async () => {
    expect(await until(www, (a) => a[0] === '192.0.2.11')).toEqual(['192.0.2.11'])
    healthy = false
    expect(await until(www, (a) => a[0] === '192.0.2.21')).toEqual(['192.0.2.21'])
    // The answering pool (backup) is fully healthy, so its answer keeps the service TTL.
    expect((await dig('127.0.0.1', dnsPort, 'www.embedded.example', 'A')).answer[0]!.ttl).toBe(10)
    healthy = true
    expect(await until(www, (a) => a[0] === '192.0.2.11')).toEqual(['192.0.2.11'])
  })

  it('takes drain, undrain, force and pushed health through the admin endpoint, with an audit trail', async () => {
    await gslb('drain', 'main-1', '--for', '5m', '--why', 'maintenance')
    expect(await until(www, (a) => a[0] === '192.0.2.21')).toEqual(['192.0.2.21'])
    await gslb('undrain', 'main-1')
    expect(await until(www, (a) => a[0] === '192.0.2.11')).toEqual(['192.0.2.11'])

    await gslb('push-down', 'embedded.example/main-1', '--for', '1m', '--why', 'alert fired')
    expect(await until(www, (a) => a[0] === '192.0.2.21')).toEqual(['192.0.2.21'])
    // Operator force beats pushed state.
    await gslb('force-up', 'main-1')
    expect(await until(www, (a) => a[0] === '192.0.2.11')).toEqual(['192.0.2.11'])
    await gslb('unforce', 'main-1')
    await gslb('unpush', 'main-1')

    const { stdout } = await gslb('status', '--audit')
    expect(stdout).toMatch(/embedded\.example\s+main\s+main-1\s+192\.0\.2\.11\s+up/)
    expect(stdout).toMatch(/audit \(newest first\)/)
    expect(stdout).toMatch(/embedded\.example\/main-1\s+drain until .*\(maintenance\)/)
    expect(stdout).toMatch(/push-down until .*\(alert fired\)/)
  })

  it('schedules a drain window that starts later', async () => {
    await gslb('drain', 'main-1', '--from', '+1s', '--for', '2s', '--why', 'window')
    expect(await www()).toEqual(['192.0.2.11'])
    expect(await until(www, (a) => a[0] === '192.0.2.21', 4000)).toEqual(['192.0.2.21'])
    expect(await until(www, (a) => a[0] === '192.0.2.11', 6000)).toEqual(['192.0.2.11'])
  })

  it('rejects unknown targets with a clear message', async () => {
    await expect(gslb('drain', 'nope-9')).rejects.toMatchObject({
      stderr: expect.stringContaining('no endpoint "nope-9"'),
    })
  })

  it('serves the decision trace and status as JSON over HTTP', async () => {
    const trace = await (
      await fetch(`http://127.0.0.1:${adminPort}/explain?name=www.embedded.example&client=198.51.100.7`)
    ).text()
    expect(trace).toContain('service   www.embedded.example.')
    expect(trace).toMatch(/failover: \[main-1 backup-1\] -> \[main-1\]/)
    expect(trace).toContain('failover  worst case')
    const status = (await (await fetch(`http://127.0.0.1:${adminPort}/status`)).json()) as {
      endpoints: Array<{ endpoint: string; checked: boolean }>
      self: { store: string; connected: boolean; staleMs: number }
    }
    expect(status.self).toMatchObject({ store: 'memory', connected: true })
    expect(status.self.staleMs).toBeLessThan(5000)
    expect(status.endpoints.map((e) => [e.endpoint, e.checked])).toEqual([
      ['main-1', true],
      ['backup-1', false],
    ])
  })
})
