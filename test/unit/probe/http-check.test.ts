/**
 * `httpCheck` against real HTTP and HTTPS servers started here on loopback with port 0. The TLS
 * tests make a throwaway self-signed certificate with the `openssl` CLI and are skipped, with the
 * reason in their name, when it is not installed.
 */

import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { createServer as createNetServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TLSSocket } from 'node:tls'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { httpCheck, MAX_BODY_BYTES, normaliseLoad } from '../../../src/probe/checks/http.ts'
import type { HttpCheck } from '../../../src/probe/types.ts'

type Handler = (req: IncomingMessage, res: ServerResponse) => void

const servers: Server[] = []

async function listen(server: Server, host = '127.0.0.1'): Promise<number> {
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, host, resolve))
  return (server.address() as AddressInfo).port
}

function startHttp(handler: Handler, host = '127.0.0.1'): Promise<number> {
  return listen(createServer(handler), host)
}

afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections()
    await new Promise<void>((resolve) => s.close(() => resolve()))
  }
})

function check(port: number, over: Partial<HttpCheck> = {}): HttpCheck {
  return {
    name: 'web',
    kind: 'http',
    intervalMs: 1000,
    jitter: 0,
    timeoutMs: 2000,
    rise: 2,
    fall: 3,
    address: undefined,
    port,
    method: 'GET',
    path: '/health',
    host: undefined,
    sni: undefined,
    ca: undefined,
    insecure: false,
    statuses: undefined,
    bodyContains: undefined,
    bodyMatches: undefined,
    load: undefined,
    ...over,
  }
}

/** A port nothing listens on: bound once to learn a free number, then closed. */
async function closedPort(): Promise<number> {
  const s = createNetServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const { port } = s.address() as AddressInfo
  await new Promise<void>((resolve) => s.close(() => resolve()))
  return port
}

describe('httpCheck status handling', () => {
  it('passes on 200 and reports a latency', async () => {
    const port = await startHttp((_req, res) => res.end('ok'))
    const r = await httpCheck(check(port), '127.0.0.1')
    expect(r).toMatchObject({ ok: true, error: undefined, load: undefined })
    expect(r.latencyMs).toBeGreaterThan(0)
    expect(r.latencyMs).toBeLessThan(2000)
  })

  it('fails on 503 with the status in the error and no latency', async () => {
    const port = await startHttp((_req, res) => {
      res.statusCode = 503
      res.end('busy')
    })
    expect(await httpCheck(check(port), '127.0.0.1')).toEqual({
      ok: false,
      latencyMs: undefined,
      error: 'status 503',
      load: undefined,
    })
  })

  it('accepts redirects by default but rejects 404', async () => {
    let status = 302
    const port = await startHttp((_req, res) => {
      res.statusCode = status
      res.end()
    })
    expect((await httpCheck(check(port), '127.0.0.1')).ok).toBe(true)
    status = 404
    expect((await httpCheck(check(port), '127.0.0.1')).error).toBe('status 404')
  })

  it('uses the configured status list instead of the default range', async () => {
    let status = 503
    const port = await startHttp((_req, res) => {
      res.statusCode = status
      res.end()
    })
    expect((await httpCheck(check(port, { statuses: [503] }), '127.0.0.1')).ok).toBe(true)
    status = 200
    expect((await httpCheck(check(port, { statuses: [503] }), '127.0.0.1')).error).toBe('status 200')
  })
})

describe('httpCheck request shape', () => {
  it('sends the method and path, and opens a new connection for every probe', async () => {
    const seen: string[] = []
    const sockets = new Set<unknown>()
    const port = await startHttp((req, res) => {
      seen.push(`${req.method} ${req.url} ${req.headers.connection}`)
      sockets.add(req.socket)
      res.end('ok')
    })
    await httpCheck(check(port, { method: 'POST', path: '/a?b=1' }), '127.0.0.1')
    await httpCheck(check(port, { method: 'HEAD', path: '/c' }), '127.0.0.1')
    expect(seen).toEqual(['POST /a?b=1 close', 'HEAD /c close'])
    expect(sockets.size).toBe(2)
  })

  it('sends the address and non-default port as Host when none is configured', async () => {
    const hosts: Array<string | undefined> = []
    const port = await startHttp((req, res) => {
      hosts.push(req.headers.host)
      res.end()
    })
    await httpCheck(check(port), '127.0.0.1')
    await httpCheck(check(port, { host: 'www.example.test' }), '127.0.0.1')
    expect(hosts).toEqual([`127.0.0.1:${port}`, 'www.example.test'])
  })

  it('brackets an IPv6 address in the URL and the Host header', async () => {
    const hosts: Array<string | undefined> = []
    const port = await startHttp((req, res) => {
      hosts.push(req.headers.host)
      res.end()
    }, '::1')
    const r = await httpCheck(check(port), '::1')
    expect(r.ok).toBe(true)
    expect(hosts).toEqual([`[::1]:${port}`])
  })
})

describe('httpCheck body matching', () => {
  const cases: Array<{ name: string; over: Partial<HttpCheck>; ok: boolean }> = [
    { name: 'a substring that is present passes', over: { bodyContains: '"status":"ok"' }, ok: true },
    { name: 'a substring that is absent fails', over: { bodyContains: '"status":"down"' }, ok: false },
    { name: 'a matching regex passes', over: { bodyMatches: /"version":"\d+\.\d+"/ }, ok: true },
    { name: 'a regex that does not match fails', over: { bodyMatches: /"status":"(down|degraded)"/ }, ok: false },
  ]
  for (const c of cases) {
    it(c.name, async () => {
      const port = await startHttp((_req, res) => res.end('{"status":"ok","version":"1.2"}'))
      const r = await httpCheck(check(port, c.over), '127.0.0.1')
      expect(r.ok).toBe(c.ok)
      expect(r.error).toBe(c.ok ? undefined : 'body mismatch')
    })
  }

  it('gives the same verdict on every probe with a global regex', async () => {
    const port = await startHttp((_req, res) => res.end('all ok'))
    const c = check(port, { bodyMatches: /ok/g })
    const results = [await httpCheck(c, '127.0.0.1'), await httpCheck(c, '127.0.0.1'), await httpCheck(c, '127.0.0.1')]
    expect(results.map((r) => r.ok)).toEqual([true, true, true])
  })

  it('reads no more than 64 KiB of body, so text beyond that is not found', async () => {
    const port = await startHttp((req, res) => {
      const filler = 'x'.repeat(MAX_BODY_BYTES)
      res.end(req.url === '/early' ? `NEEDLE${filler}` : `${filler}NEEDLE`)
    })
    expect((await httpCheck(check(port, { path: '/early', bodyContains: 'NEEDLE' }), '127.0.0.1')).ok).toBe(true)
    expect((await httpCheck(check(port, { path: '/late', bodyContains: 'NEEDLE' }), '127.0.0.1')).error).toBe(
      'body mismatch',
    )
  })
})

describe('httpCheck failures', () => {
  it('times out on a server that never answers, within the timeout plus a small slack', async () => {
    const port = await startHttp(() => {})
    const started = performance.now()
    const r = await httpCheck(check(port, { timeoutMs: 300 }), '127.0.0.1')
    const elapsed = performance.now() - started
    expect(r).toMatchObject({ ok: false, error: 'timeout', latencyMs: undefined })
    expect(elapsed).toBeGreaterThanOrEqual(290)
    expect(elapsed).toBeLessThan(300 + 700)
  })

  it('times out on a server that sends headers and then stalls the body', async () => {
    const port = await startHttp((_req, res) => {
      res.writeHead(200, { 'content-length': '100' })
      res.write('partial')
    })
    const r = await httpCheck(check(port, { timeoutMs: 300 }), '127.0.0.1')
    expect(r.error).toBe('timeout')
  })

  it('reports a refused connection on a closed port', async () => {
    const r = await httpCheck(check(await closedPort()), '127.0.0.1')
    expect(r).toEqual({ ok: false, latencyMs: undefined, error: 'connect refused', load: undefined })
  })

  it('reports a connection the server closes without a response', async () => {
    const port = await startHttp((req) => req.socket.destroy())
    expect((await httpCheck(check(port), '127.0.0.1')).error).toBe('connection closed')
  })

  it('stops at once when the caller aborts, and says so', async () => {
    const port = await startHttp(() => {})
    const controller = new AbortController()
    setTimeout(() => controller.abort(), 50)
    const started = performance.now()
    const r = await httpCheck(check(port, { timeoutMs: 5000 }), '127.0.0.1', controller.signal)
    expect(r.error).toBe('aborted')
    expect(performance.now() - started).toBeLessThan(1000)
  })
})

describe('httpCheck load reporting', () => {
  const cases: Array<{
    name: string
    header?: string
    body?: string
    load: HttpCheck['load']
    want: number | undefined
  }> = [
    { name: 'a fraction in a header', header: '0.4', load: { header: 'X-Load' }, want: 0.4 },
    { name: 'a percentage in a header', header: '75', load: { header: 'x-load' }, want: 0.75 },
    { name: 'a non-number in a header is ignored', header: 'high', load: { header: 'x-load' }, want: undefined },
    { name: 'a dotted JSON field', body: '{"stats":{"load":0.25}}', load: { json: 'stats.load' }, want: 0.25 },
    { name: 'a JSON percentage', body: '{"cpu":{"pct":"60"}}', load: { json: 'cpu.pct' }, want: 0.6 },
    { name: 'a missing JSON field is ignored', body: '{"stats":{}}', load: { json: 'stats.load' }, want: undefined },
    { name: 'a body that is not JSON is ignored', body: 'load=0.3', load: { json: 'load' }, want: undefined },
  ]
  for (const c of cases) {
    it(`reads ${c.name}`, async () => {
      const port = await startHttp((_req, res) => {
        if (c.header !== undefined) res.setHeader('x-load', c.header)
        res.end(c.body ?? 'ok')
      })
      const r = await httpCheck(check(port, { load: c.load }), '127.0.0.1')
      expect(r.ok).toBe(true)
      expect(r.load).toBe(c.want)
    })
  }

  it('normalises load values: fractions kept, percentages divided, out of range capped or dropped', () => {
    expect([0, 0.5, 1, 50, 100, 250, -1, '12.5', '80%', '', Number.NaN, true, null].map(normaliseLoad)).toEqual([
      0,
      0.5,
      1,
      0.5,
      1,
      1,
      undefined,
      0.125,
      0.8,
      undefined,
      undefined,
      undefined,
      undefined,
    ])
  })
})

const openssl = (() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
})()

describe.skipIf(!openssl)('httpCheck over TLS (needs the openssl CLI)', () => {
  let dir = ''
  let certFile = ''
  let port = 0
  const snis: Array<string | false | null> = []
  const tlsServers: Server[] = []

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gslb-probe-tls-'))
    certFile = join(dir, 'cert.pem')
    const keyFile = join(dir, 'key.pem')
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '2',
        '-subj',
        '/CN=probe.test',
        '-addext',
        'subjectAltName=DNS:probe.test,IP:127.0.0.1',
        '-keyout',
        keyFile,
        '-out',
        certFile,
      ],
      { stdio: 'ignore' },
    )
    const server = createHttpsServer({ key: readFileSync(keyFile), cert: readFileSync(certFile) }, (req, res) => {
      snis.push((req.socket as TLSSocket).servername)
      res.end('secure ok')
    })
    tlsServers.push(server)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    port = (server.address() as AddressInfo).port
  })

  afterAll(async () => {
    for (const s of tlsServers) {
      s.closeAllConnections()
      await new Promise<void>((resolve) => s.close(() => resolve()))
    }
    rmSync(dir, { recursive: true, force: true })
  })

  const tls = (over: Partial<HttpCheck> = {}): HttpCheck => check(port, { kind: 'https', ...over })

  it('fails verification of a self-signed certificate by default', async () => {
    const r = await httpCheck(tls(), '127.0.0.1')
    expect(r.ok).toBe(false)
    expect(r.error).toMatch(/^tls: (DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN)$/)
  })

  it('passes with insecure: true', async () => {
    expect(await httpCheck(tls({ insecure: true }), '127.0.0.1')).toMatchObject({ ok: true, error: undefined })
  })

  it('passes when ca points at the certificate, verifying it against the address', async () => {
    expect(await httpCheck(tls({ ca: certFile }), '127.0.0.1')).toMatchObject({ ok: true, error: undefined })
  })

  it('sends the configured SNI and verifies the certificate against it', async () => {
    snis.length = 0
    expect((await httpCheck(tls({ ca: certFile, sni: 'probe.test' }), '127.0.0.1')).ok).toBe(true)
    expect(snis).toEqual(['probe.test'])
  })

  it('takes SNI from the Host name, without its port', async () => {
    snis.length = 0
    expect((await httpCheck(tls({ ca: certFile, host: 'probe.test:8443' }), '127.0.0.1')).ok).toBe(true)
    expect(snis).toEqual(['probe.test'])
  })

  it('fails with the TLS code when the name does not match the certificate', async () => {
    const r = await httpCheck(tls({ ca: certFile, sni: 'other.test' }), '127.0.0.1')
    expect(r.error).toBe('tls: ERR_TLS_CERT_ALTNAME_INVALID')
  })

  it('fails cleanly when the CA file cannot be read', async () => {
    const r = await httpCheck(tls({ ca: join(dir, 'missing.pem') }), '127.0.0.1')
    expect(r.error).toBe('ca unreadable: ENOENT')
  })
})
