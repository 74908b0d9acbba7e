/**
 * @module server/tcp
 * DNS over TCP per RFC 7766: 2-byte length framing, any number of queries per connection,
 * pipelined queries answered as they are read. Limits keep a slow or stalled client from holding
 * resources: an idle timeout, a deadline for a started-but-unfinished message, a cap on output a
 * client leaves unread, a cap on open connections and a smaller one per source address.
 *
 * Message sizes: the 2-byte prefix caps a message at 65535 bytes, and at most one unfinished
 * message is buffered per connection. A frame shorter than a DNS header (12 bytes) cannot be a
 * query; it is dropped without an answer, exactly like a short UDP datagram, and counted. The
 * connection stays open: the framing is intact (the next prefix follows the short frame), and
 * closing would cost a client that pipelines one bad message every answer queued behind it,
 * while keeping it open costs us no more than a valid query would.
 */

import { createServer, type Server, type Socket } from 'node:net'
import type { Logger } from '../log.ts'
import type { Answerer } from '../query/handle.ts'
import type { QueryObserver } from './observer.ts'
import { servfail } from './servfail.ts'

export interface TcpLimits {
  /** Close a connection with no traffic for this long (RFC 7766 6.2.3 suggests seconds). */
  readonly idleTimeoutMs: number
  /** Close a connection whose current message has not fully arrived within this time. */
  readonly messageTimeoutMs: number
  /** Connections accepted at once; more are closed on arrival. */
  readonly maxConnections: number
  /**
   * Connections accepted at once from one source address (per listening address, like
   * `maxConnections`); more from it are reset on arrival, so one client cannot take every slot.
   */
  readonly maxConnectionsPerSource: number
  /** Responses a client may leave unread before we give up on it. */
  readonly maxPendingOutput: number
}

export const DEFAULT_TCP_LIMITS: TcpLimits = Object.freeze({
  idleTimeoutMs: 10_000,
  messageTimeoutMs: 5_000,
  maxConnections: 1_000,
  maxConnectionsPerSource: 64,
  maxPendingOutput: 256 * 1024,
})

/** What one listener has seen since it started; read at scrape time, never on the query path. */
export interface TcpStats {
  /** Connections open now. */
  readonly connections: number
  /** Connections closed on arrival because `maxConnections` were open. */
  readonly rejectedTotal: number
  /** Connections closed on arrival because their source had `maxConnectionsPerSource` open. */
  readonly rejectedPerSource: number
  /** Frames shorter than a DNS header, dropped unanswered. */
  readonly shortFrames: number
}

export const NO_TCP_STATS: TcpStats = Object.freeze({
  connections: 0,
  rejectedTotal: 0,
  rejectedPerSource: 0,
  shortFrames: 0,
})

/** Two listeners' (or threads') figures as one. */
export function addTcpStats(a: TcpStats, b: TcpStats): TcpStats {
  return {
    connections: a.connections + b.connections,
    rejectedTotal: a.rejectedTotal + b.rejectedTotal,
    rejectedPerSource: a.rejectedPerSource + b.rejectedPerSource,
    shortFrames: a.shortFrames + b.shortFrames,
  }
}

export interface TcpListener {
  readonly server: Server
  readonly port: number
  stats(): TcpStats
  /** Stops accepting, lets every connection flush what it was sent, then resolves. */
  close(graceMs: number): Promise<void>
}

export interface TcpOptions {
  /** SO_REUSEPORT: several listeners (worker threads) share the port; the kernel spreads connections. */
  readonly reusePort?: boolean | undefined
}

export function listenTcp(
  host: string,
  port: number,
  answerer: Answerer,
  log: Logger,
  observe: QueryObserver,
  limits: TcpLimits,
  options: TcpOptions = {},
): Promise<TcpListener> {
  const conns = new Set<Socket>()
  const perSource = new Map<string, number>()
  const counts = { rejectedTotal: 0, rejectedPerSource: 0, shortFrames: 0 }
  let closing = false
  const server = createServer({ noDelay: true }, (sock) => {
    if (closing) {
      sock.destroy()
      return
    }
    const source = sock.remoteAddress ?? ''
    const open = perSource.get(source) ?? 0
    if (open >= limits.maxConnectionsPerSource) {
      counts.rejectedPerSource++
      // A reset leaves no TIME_WAIT entry on our side for a client that keeps knocking.
      sock.resetAndDestroy()
      return
    }
    perSource.set(source, open + 1)
    conns.add(sock)
    sock.on('close', () => {
      conns.delete(sock)
      const left = (perSource.get(source) ?? 1) - 1
      if (left > 0) perSource.set(source, left)
      else perSource.delete(source)
    })
    serveConnection(sock, answerer, log, observe, limits, counts, () => closing)
  })
  // Node refuses connections beyond this itself, before any per-connection work, and says so.
  server.maxConnections = limits.maxConnections
  server.on('drop', () => counts.rejectedTotal++)
  server.on('error', (err) => log.warn({ err }, 'TCP server error'))

  return new Promise((resolveListen, reject) => {
    const onError = (err: Error): void => reject(err)
    server.once('error', onError)
    server.listen({ host, port, ipv6Only: host.includes(':'), reusePort: options.reusePort === true }, () => {
      server.off('error', onError)
      const addr = server.address()
      resolveListen({
        server,
        port: typeof addr === 'object' && addr ? addr.port : port,
        stats: () => ({ connections: conns.size, ...counts }),
        close: (graceMs) =>
          new Promise<void>((done) => {
            closing = true
            server.close(() => done())
            // end() sends what is already written, then FIN; answers are written synchronously,
            // so nothing in flight is lost. Stragglers are cut off after the grace period.
            for (const s of conns) s.end()
            setTimeout(() => {
              for (const s of conns) s.destroy()
            }, graceMs).unref()
          }),
      })
    })
  })
}

function serveConnection(
  sock: Socket,
  answerer: Answerer,
  log: Logger,
  observe: QueryObserver,
  limits: TcpLimits,
  counts: { shortFrames: number },
  closing: () => boolean,
): void {
  const client = sock.remoteAddress ?? ''
  let pending: Buffer | null = null
  let messageStarted = 0
  sock.setTimeout(limits.idleTimeoutMs, () => sock.destroy())
  sock.on('error', () => sock.destroy())
  sock.on('data', (chunk: Buffer) => {
    let buf: Buffer = pending === null ? chunk : Buffer.concat([pending, chunk])
    let answered = false
    for (;;) {
      if (buf.length < 2) break
      const len = buf.readUInt16BE(0)
      if (buf.length < 2 + len) break
      const msg = buf.subarray(2, 2 + len)
      buf = buf.subarray(2 + len)
      answered = true
      if (len < 12) {
        counts.shortFrames++
        continue
      }
      let out: Buffer | null
      try {
        out = answerer.answer(msg, 'tcp', client)
      } catch (err) {
        log.error({ err, client }, 'query failed; answered SERVFAIL')
        out = servfail(msg)
      }
      if (out !== null) {
        observe(msg, out, 'tcp', client)
        const head = Buffer.allocUnsafe(2)
        head.writeUInt16BE(out.length, 0)
        sock.cork()
        sock.write(head)
        sock.write(out)
        sock.uncork()
      }
    }
    if (buf.length === 0) {
      pending = null
      messageStarted = 0
    } else {
      // Copy the partial message so the large chunk it came in can be freed.
      pending = Buffer.from(buf)
      const now = Date.now()
      if (messageStarted === 0 || answered) messageStarted = now
      else if (now - messageStarted > limits.messageTimeoutMs) sock.destroy()
    }
    if (sock.writableLength > limits.maxPendingOutput) {
      log.debug({ client }, 'TCP client is not reading its answers; closing')
      sock.destroy()
    }
    if (closing()) sock.end()
  })
}
