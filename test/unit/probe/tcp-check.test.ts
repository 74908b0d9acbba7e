/**
 * `tcpCheck` against real loopback listeners. Timeouts are not tested here: on loopback the
 * kernel completes the handshake for any listening socket, and the only way to make a connect
 * hang is a non-loopback blackhole, which tests may not use. The shared deadline is exercised by
 * the HTTP and DNS timeout tests instead.
 */

import { type AddressInfo, createServer, type Server, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { deadline, netErrorText, tcpCheck } from '../../../src/probe/checks/tcp.ts'
import type { TcpCheck } from '../../../src/probe/types.ts'

const servers: Server[] = []

afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise<void>((resolve) => s.close(() => resolve()))
})

async function listen(host: string, onConnection: (s: Socket) => void = () => {}): Promise<number> {
  const server = createServer(onConnection)
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, host, resolve))
  return (server.address() as AddressInfo).port
}

async function closedPort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const { port } = s.address() as AddressInfo
  await new Promise<void>((resolve) => s.close(() => resolve()))
  return port
}

function check(port: number | undefined): TcpCheck {
  return {
    name: 'tcp',
    kind: 'tcp',
    intervalMs: 1000,
    jitter: 0,
    timeoutMs: 1000,
    rise: 2,
    fall: 3,
    address: undefined,
    port,
  }
}

describe('tcpCheck', () => {
  it('passes when the port accepts, with the connect time as latency, and closes the connection', async () => {
    let serverSawClose: () => void = () => {}
    const closed = new Promise<string>((resolve) => {
      serverSawClose = () => resolve('closed')
    })
    const port = await listen('127.0.0.1', (socket) => {
      socket.resume()
      socket.on('close', serverSawClose)
    })
    const r = await tcpCheck(check(port), '127.0.0.1')
    expect(r).toMatchObject({ ok: true, error: undefined, load: undefined })
    expect(r.latencyMs).toBeGreaterThan(0)
    expect(r.latencyMs).toBeLessThan(1000)
    const stillOpen = new Promise<string>((resolve) => setTimeout(() => resolve('still open'), 1000))
    expect(await Promise.race([closed, stillOpen])).toBe('closed')
  })

  it('passes against an IPv6 loopback listener', async () => {
    const port = await listen('::1')
    expect((await tcpCheck(check(port), '::1')).ok).toBe(true)
  })

  it('reports a refused connection on a closed port', async () => {
    expect(await tcpCheck(check(await closedPort()), '127.0.0.1')).toEqual({
      ok: false,
      latencyMs: undefined,
      error: 'connect refused',
      load: undefined,
    })
  })

  it('fails without traffic when no port is configured', async () => {
    expect((await tcpCheck(check(undefined), '127.0.0.1')).error).toBe('no port configured')
  })

  it('reports an already aborted signal without connecting', async () => {
    let connections = 0
    const port = await listen('127.0.0.1', () => connections++)
    const r = await tcpCheck(check(port), '127.0.0.1', AbortSignal.abort())
    expect(r.error).toBe('aborted')
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(connections).toBe(0)
  })
})

describe('shared check helpers', () => {
  it('words socket errors by code only, so every target fails with the same text', () => {
    const err = (code: string): Error => Object.assign(new Error(`connect ${code} 127.0.0.1:1`), { code })
    expect(netErrorText(err('ECONNREFUSED'))).toBe('connect refused')
    expect(netErrorText(err('EHOSTUNREACH'))).toBe('host unreachable')
    expect(netErrorText(err('EWHATEVER'))).toBe('connect failed: EWHATEVER')
    expect(netErrorText(new AggregateError([err('ECONNREFUSED')]))).toBe('connect refused')
    expect(netErrorText('nonsense')).toBe('connect failed')
  })

  it('tells a deadline that ran out from a caller that aborted', async () => {
    const timed = deadline(20, undefined)
    await new Promise((resolve) => setTimeout(resolve, 60))
    expect([timed.signal.aborted, timed.reason()]).toEqual([true, 'timeout'])
    timed.dispose()

    const outer = new AbortController()
    const cancelled = deadline(10_000, outer.signal)
    expect(cancelled.reason()).toBeUndefined()
    outer.abort()
    expect([cancelled.signal.aborted, cancelled.reason()]).toEqual([true, 'aborted'])
    cancelled.dispose()
  })
})
