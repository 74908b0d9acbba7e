/**
 * @module server/udp
 * UDP listener. Each datagram is answered synchronously from memory; a bug while answering turns
 * into SERVFAIL for that one query (CoreDNS's recover) and never stops the socket.
 */

import { createSocket, type Socket } from 'node:dgram'
import { isIPv6 } from 'node:net'
import type { Logger } from '../log.ts'
import type { Answerer } from '../query/handle.ts'
import type { QueryObserver } from './observer.ts'
import { servfail } from './servfail.ts'

export interface UdpListener {
  readonly socket: Socket
  readonly port: number
  close(): Promise<void>
}

export function listenUdp(
  host: string,
  port: number,
  answerer: Answerer,
  log: Logger,
  observe: QueryObserver,
): Promise<UdpListener> {
  // A larger receive buffer absorbs bursts that would otherwise be dropped by the kernel (capped by
  // net.core.rmem_max); answering is fast, queues only form while the event loop is busy.
  const socket = createSocket({
    type: isIPv6(host) ? 'udp6' : 'udp4',
    ipv6Only: isIPv6(host),
    recvBufferSize: 4 * 1024 * 1024,
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
