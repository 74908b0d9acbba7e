/**
 * The `gslb` command as operators run it: a real process, real signals, real files, real dig.
 */

import { execFile } from 'node:child_process'
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterEach, describe, expect, it } from 'vitest'
import { dig } from '../helpers/dig.ts'
import { CLI, type CliProcess, freePort, ROOT, spawnCli, waitFor } from '../helpers/process.ts'
import { FIXTURES } from '../helpers/server.ts'

const run = promisify(execFile)

async function gslb(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { cwd: ROOT })
    return { code: 0, stdout, stderr }
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string }
    return { code: err.code, stdout: err.stdout, stderr: err.stderr }
  }
}

function tempZones(): string {
  const dir = mkdtempSync(join(tmpdir(), 'gslb-cli-'))
  cpSync(join(FIXTURES, 'zones'), dir, { recursive: true })
  return dir
}

type Proc = CliProcess
const serve = (args: string[]): Proc => spawnCli(['serve', ...args])
const until = async <T>(what: () => Promise<T> | T, ok: (v: T) => boolean, timeoutMs = 5000): Promise<T> =>
  (await waitFor(what, ok, timeoutMs, 100)).value

const cleanup: Array<() => void> = []
afterEach(() => {
  for (const c of cleanup.splice(0)) c()
})

function started(p: Proc): Promise<string> {
  return until(p.log, (l) => l.includes('listening on UDP and TCP') || p.child.exitCode !== null)
}

describe('gslb check', () => {
  it('accepts the shipped example zones with exit code 0', async () => {
    const r = await gslb('check', 'zones')
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/ok: zones\/example\.com\.yaml: example\.com\. serial \d+/)
    expect(r.stdout).toMatch(/ok: zones\/example\.net\.zone: example\.net\./)
    expect(r.stdout).toMatch(
      /budget: failover\.example\.com\. worst case 27s = detection 5\.4s \+ propagation 1\.5s \+ TTL 20s/,
    )
    expect(r.stdout).toMatch(/golden tests: \d+ passed/)
    expect(r.stdout).not.toContain('warning')
  })

  it('warns when a service cannot fail over within its declared target, and fails a broken golden test', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gslb-budget-'))
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }))
    writeFileSync(
      join(dir, 'slow.example.yaml'),
      [
        'zone: slow.example',
        'records: |',
        '  @ 3600 SOA ns1 h 1 2 3 4 5',
        '  @ 3600 NS ns1',
        '  ns1 A 192.0.2.1',
        'checks:',
        '  c: { type: tcp, address: 127.0.0.1, port: 9, interval: 30s, timeout: 5s, fall: 3 }',
        'pools:',
        '  p: { check: c, endpoints: { p-1: 192.0.2.11 } }',
        '  q: { endpoints: { q-1: 192.0.2.21 } }',
        'services:',
        '  www:',
        '    pools: [p, q]',
        '    chain: [failover, weighted]',
        '    failoverTarget: 30',
        '    tests:',
        '      - { client: 198.51.100.1, expectPool: q }',
        '',
      ].join('\n'),
    )
    const r = await gslb('check', dir)
    expect(r.code).toBe(1)
    expect(r.stdout).toMatch(
      /warning: .*slow\.example\.yaml:12: www\.slow\.example\. failover budget .* exceeds its target 30s/,
    )
    expect(r.stdout).toMatch(
      /error: .*slow\.example\.yaml:17: test of www\.slow\.example\.: expected pool q, got p-1 \(pool p\)/,
    )
  })

  it('prints every error with file, line and field and exits non-zero', async () => {
    const dir = tempZones()
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }))
    writeFileSync(
      join(dir, 'bad.example.yaml'),
      [
        'zone: bad.example',
        'ttl: 300',
        'records: |',
        '  @ SOA ns1 host 1 2 3 4 5',
        '  @ NS ns1',
        '  www A 300.1.2.3',
        '  www CNAME @',
        'colour: blue',
        '',
      ].join('\n'),
    )
    const r = await gslb('check', dir)
    expect(r.code).toBe(1)
    expect(r.stdout).toContain(`${join(dir, 'bad.example.yaml')}:6: A address:`)
    expect(r.stdout).toContain(`${join(dir, 'bad.example.yaml')}:8: colour: unknown key`)
    expect(r.stdout).toMatch(/ok: .*example\.org\.zone/)
  })

  it('fails on a directory without zone files', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gslb-empty-'))
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }))
    const r = await gslb('check', dir)
    expect(r.code).toBe(1)
    expect(r.stdout).toContain('no zone files')
  })
})

describe('gslb serve', () => {
  it('rejects a bad --listen with a message naming the flag', async () => {
    const r = await gslb('serve', '--zones', 'zones', '--listen', '::1:53')
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('--listen: expected ADDRESS:PORT')
  })

  it('listens on IPv4 and IPv6 at once and exits 0 on SIGTERM', async () => {
    const port = await freePort()
    const p = serve(['--zones', 'zones', '--listen', `127.0.0.1:${port}`, '--listen', `[::1]:${port}`])
    cleanup.push(() => p.child.kill('SIGKILL'))
    await started(p)
    const v4 = await dig('127.0.0.1', port, 'example.com', 'SOA')
    const v6 = await dig('::1', port, '+tcp', 'example.com', 'SOA')
    expect(v4.status).toBe('NOERROR')
    expect(v6.answer).toEqual(v4.answer)
    p.child.kill('SIGTERM')
    expect(await p.exited).toBe(0)
    expect(p.log()).toContain('"msg":"stopped"')
  })

  it('reloads a changed zone file by itself and keeps the last good version when an edit is broken', async () => {
    const dir = tempZones()
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }))
    const port = await freePort()
    const p = serve(['--zones', dir, '--listen', `127.0.0.1:${port}`])
    cleanup.push(() => p.child.kill('SIGKILL'))
    await started(p)
    const file = join(dir, 'example.com.yaml')
    const original = readFileSync(file, 'utf8')
    writeFileSync(file, original.replace('www      A   192.0.2.11', 'www      A   192.0.2.99'))
    const changed = await until(
      () => dig('127.0.0.1', port, 'www.example.com', 'A'),
      (r) => r.answer[0]?.data === '192.0.2.99',
    )
    expect(changed.answer[0]!.data).toBe('192.0.2.99')

    writeFileSync(file, original.replace('www      A   192.0.2.11', 'www      A   192.0.2.999'))
    await until(p.log, (l) => l.includes('still serving the previous version'))
    expect(p.log()).toMatch(/"line":8,"field":"A address"/)
    const kept = await dig('127.0.0.1', port, 'www.example.com', 'A')
    expect(kept.answer[0]!.data).toBe('192.0.2.99')
    p.child.kill('SIGTERM')
    expect(await p.exited).toBe(0)
  })

  it('reloads on SIGHUP when watching is off, adding and removing zones', async () => {
    const dir = tempZones()
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }))
    const port = await freePort()
    const p = serve(['--zones', dir, '--listen', `127.0.0.1:${port}`, '--no-watch'])
    cleanup.push(() => p.child.kill('SIGKILL'))
    await started(p)
    expect((await dig('127.0.0.1', port, 'example.net', 'SOA')).status).toBe('REFUSED')
    cpSync(join(ROOT, 'zones', 'example.net.zone'), join(dir, 'example.net.zone'))
    rmSync(join(dir, 'example.com.yaml'))
    await new Promise((r) => setTimeout(r, 400))
    // Without watching, nothing changes until the signal.
    expect((await dig('127.0.0.1', port, 'example.net', 'SOA')).status).toBe('REFUSED')
    p.child.kill('SIGHUP')
    const after = await until(
      () => dig('127.0.0.1', port, 'example.net', 'SOA'),
      (r) => r.status === 'NOERROR',
    )
    expect(after.status).toBe('NOERROR')
    expect((await dig('127.0.0.1', port, 'example.com', 'SOA')).status).toBe('REFUSED')
    expect((await dig('127.0.0.1', port, 'example.org', 'SOA')).status).toBe('NOERROR')
    p.child.kill('SIGTERM')
    expect(await p.exited).toBe(0)
  })

  it('answers TCP queries already received when SIGTERM arrives, then closes the connection', async () => {
    const port = await freePort()
    const p = serve(['--zones', 'zones', '--listen', `127.0.0.1:${port}`])
    cleanup.push(() => p.child.kill('SIGKILL'))
    await started(p)
    const { tcpClient, frame, query, decode } = await import('../helpers/raw.ts')
    const c = await tcpClient(port)
    c.send(frame(query('example.com', 'SOA', { id: 1 })))
    expect(decode((await c.next(1))[0]!).id).toBe(1)
    c.send(frame(...[2, 3, 4].map((id) => query('example.com', 'A', { id }))))
    const replies = await c.next(3)
    p.child.kill('SIGTERM')
    await c.closed()
    expect(replies.map((r) => decode(r).id)).toEqual([2, 3, 4])
    expect(await p.exited).toBe(0)
  })

  it('reads settings from --config, lets flags override them, and logs sampled queries', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gslb-conf-'))
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }))
    const port = await freePort()
    const conf = join(dir, 'gslb.yaml')
    writeFileSync(
      conf,
      `zones: zones\nlisten: ["127.0.0.1:${port}"]\nnsid: from-file\nqueryLogSample: 0\nchaos: { version: "v-test" }\n`,
    )
    const p = serve(['--config', conf, '--query-log-sample', '1'])
    cleanup.push(() => p.child.kill('SIGKILL'))
    await started(p)
    const r = await dig('127.0.0.1', port, '+nsid', 'WWW.example.com', 'A')
    expect(r.opt.join('\n')).toContain('("from-file")')
    expect((await dig('127.0.0.1', port, 'version.bind', 'TXT', '-c', 'CH')).answer[0]!.data).toBe('"v-test"')
    const line = await until(p.log, (l) => l.includes('"log":"query"'))
    expect(line).toMatch(
      /"log":"query","client":"127\.0\.0\.1","transport":"udp","qname":"WWW\.example\.com\.","qtype":"A","rcode":0/,
    )
    p.child.kill('SIGTERM')
    expect(await p.exited).toBe(0)
  })

  it('rejects an unknown setting in the --config file by name', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gslb-conf-'))
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }))
    writeFileSync(join(dir, 'gslb.yaml'), 'zones: zones\nlisten_addr: 127.0.0.1:53\n')
    const r = await gslb('serve', '--config', join(dir, 'gslb.yaml'))
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('unknown setting "listen_addr"')
  })

  it('refuses to start when no zone loads, naming the file and line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gslb-bad-'))
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }))
    writeFileSync(join(dir, 'x.example.zone'), '$TTL 60\n@ SOA ns1 host 1 2 3 4 5\n@ NS ns1\nwww A nope\n')
    const port = await freePort()
    const p = serve(['--zones', dir, '--listen', `127.0.0.1:${port}`])
    cleanup.push(() => p.child.kill('SIGKILL'))
    expect(await p.exited).toBe(1)
    expect(p.log()).toMatch(/x\.example\.zone:4: A address/)
    expect(p.log()).toContain('no zone could be loaded')
  })
})
