/**
 * @module server/udp
 * UDP listener. Each datagram is answered synchronously from memory; a bug while answering turns
 * into SERVFAIL for that one query (CoreDNS's recover) and never stops the socket.
 */

import { createSocket, type Socket } from 'node:dgram'
import { lookup as dnsLookup } from 'node:dns'
import { isIP, isIPv4, isIPv6 } from 'node:net'
import { parseAddress } from '../dns/address.ts'
import { type ResponseRateLimiter, truncatedResponse } from '../dns/rrl.ts'
import type { Logger } from '../log.ts'
import { ipv4Value } from '../query/context.ts'
import type { Answerer } from '../query/handle.ts'
import type { QueryObserver } from './observer.ts'
import { servfail } from './servfail.ts'

/**
 * RRL accounting of one response (UDP only: TCP proves the source address, so spoofed floods cannot
 * use it). Answers are accounted per question name; NXDOMAIN and errors per client network alone,
 * since their names are chosen by whoever floods.
 */
function limit(rrl: ResponseRateLimiter, answerer: Answerer, out: Buffer, source: string): 'send' | 'drop' | 'slip' {
  const text = source.startsWith('::ffff:') && isIPv4(source.slice(7)) ? source.slice(7) : source
  const addr = parseAddress(text)
  if (!addr) return 'send'
  const rcode = out[3]! & 0xf
  const kind = rcode === 0 ? 'answer' : rcode === 3 ? 'nxdomain' : 'error'
  return rrl.check(addr.bytes, addr.family, kind, kind === 'answer' ? answerer.lastQuery.key : '', Date.now())
}

export interface UdpListener {
  readonly socket: Socket
  readonly port: number
  close(): Promise<void>
}

/**
 * dgram resolves the destination of every send through `lookup`; the default (dns.lookup) answers
 * an IP literal on the next tick, which costs a tick-queue round per response. Our destinations are
 * always the literal peer address, so answer at once; anything else still goes to dns.lookup.
 */
function literalLookup(
  address: string,
  family: unknown,
  callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void,
): void {
  // ipv4Value is a character loop; isIP would run a regular expression per response.
  const f = ipv4Value(address) >= 0 ? 4 : isIP(address)
  if (f !== 0) callback(null, address, f)
  else dnsLookup(address, family as number, callback)
}

export interface UdpOptions {
  /** SO_REUSEPORT: several sockets (worker threads) share the port; the kernel spreads the flows. */
  readonly reusePort?: boolean | undefined
}

export function listenUdp(
  host: string,
  port: number,
  answerer: Answerer,
  log: Logger,
  observe: QueryObserver,
  rrl?: ResponseRateLimiter,
  options: UdpOptions = {},
): Promise<UdpListener> {
  // A larger receive buffer absorbs bursts that would otherwise be dropped by the kernel (capped by
  // net.core.rmem_max); answering is fast, queues only form while the event loop is busy.
  const socket = createSocket({
    type: isIPv6(host) ? 'udp6' : 'udp4',
    ipv6Only: isIPv6(host),
    recvBufferSize: 4 * 1024 * 1024,
    lookup: literalLookup,
    reusePort: options.reusePort === true,
  })
  socket.on('message', (msg, rinfo) => {
    let out: Buffer | null
    try {
      out = answerer.answer(msg, 'udp', rinfo.address)
    } catch (err) {
      log.error({ err, client: rinfo.address }, 'query failed; answered SERVFAIL')
      out = servfail(msg)
    }
    if (out === null) return
    if (rrl !== undefined) {
      const verdict = limit(rrl, answerer, out, rinfo.address)
      if (verdict === 'drop') return
      if (verdict === 'slip') out = truncatedResponse(msg)
    }
    observe(msg, out, 'udp', rinfo.address)
    socket.send(out, rinfo.port, rinfo.address)
  })
  // A send error (ICMP unreachable on some platforms, ENOBUFS) concerns one client only.
  socket.on('error', (err) => log.warn({ err }, 'UDP socket error'))
  return new Promise((resolveListen, reject) => {
    const onError = (err: Error): void => reject(err)
    socket.once('error', onError)
    socket.bind(port, host, () => {
      socket.off('error', onError)
      resolveListen({
        socket,
        port: socket.address().port,
        close: () => new Promise<void>((r) => socket.close(() => r())),
      })
    })
  })
}
