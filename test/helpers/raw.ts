/**
 * Raw UDP/TCP exchanges for tests that need bytes dig will not send (malformed packets, two OPT
 * records, pipelined TCP).
 */

import { createSocket } from 'node:dgram'
import { connect, type Socket } from 'node:net'
import * as dnsPacket from 'dns-packet'

/** Sends one datagram and resolves with the reply, or null after `timeoutMs` of silence. */
export function udpExchange(port: number, msg: Buffer, timeoutMs = 500, host = '127.0.0.1'): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const sock = createSocket(host.includes(':') ? 'udp6' : 'udp4')
    const timer = setTimeout(() => {
      sock.close()
      resolve(null)
    }, timeoutMs)
    sock.on('message', (reply) => {
      clearTimeout(timer)
      sock.close()
      resolve(reply)
    })
    sock.send(msg, port, host)
  })
}

export interface QueryOptions {
  readonly id?: number
  readonly edns?: boolean
  readonly flags?: number
  /** An ECS option (address, source prefix), after `options`; implies `edns`. */
  readonly ecs?: readonly [string, number] | undefined
  /** Other EDNS options, as dns-packet takes them; implies `edns`. */
  readonly options?: readonly object[]
}

/** A query as dns-packet encodes it (no compression, optional OPT). */
export function query(name: string, type: string, opts: QueryOptions = {}): Buffer {
  const { ecs } = opts
  const options = [
    ...(opts.options ?? []),
    ...(ecs === undefined
      ? []
      : [
          {
            code: 8,
            family: ecs[0].includes(':') ? 2 : 1,
            sourcePrefixLength: ecs[1],
            scopePrefixLength: 0,
            ip: ecs[0],
          },
        ]),
  ]
  const edns = opts.edns === true || ecs !== undefined || opts.options !== undefined
  return dnsPacket.encode({
    type: 'query',
    id: opts.id ?? 4242,
    flags: opts.flags ?? 0,
    questions: [{ type: type as dnsPacket.RecordType, name, class: 'IN' }],
    additionals: edns ? [{ type: 'OPT', name: '.', udpPayloadSize: 1232, options } as dnsPacket.Answer] : [],
  })
}

export function decode(buf: Buffer): dnsPacket.Packet {
  return dnsPacket.decode(buf)
}

/** Frames messages with the RFC 1035 2-byte length prefix. */
export function frame(...msgs: Buffer[]): Buffer {
  return Buffer.concat(
    msgs.flatMap((m) => {
      const h = Buffer.alloc(2)
      h.writeUInt16BE(m.length)
      return [h, m]
    }),
  )
}

/** Opens a TCP connection and collects framed replies; `next(n)` waits for n more. */
export async function tcpClient(port: number): Promise<{
  socket: Socket
  send(data: Buffer): void
  next(n: number, timeoutMs?: number): Promise<Buffer[]>
  closed(): Promise<void>
}> {
  const socket = connect(port, '127.0.0.1')
  await new Promise<void>((r, j) => {
    socket.once('connect', () => r())
    socket.once('error', j)
  })
  let buf = Buffer.alloc(0)
  const replies: Buffer[] = []
  const waiters: Array<() => void> = []
  socket.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d])
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      replies.push(buf.subarray(2, 2 + buf.readUInt16BE(0)))
      buf = buf.subarray(2 + buf.readUInt16BE(0))
    }
    for (const w of waiters.splice(0)) w()
  })
  socket.on('error', () => {})
  const closedP = new Promise<void>((r) => socket.once('close', () => r()))
  return {
    socket,
    send: (data) => socket.write(data),
    async next(n, timeoutMs = 2000) {
      const deadline = Date.now() + timeoutMs
      while (replies.length < n && Date.now() < deadline) {
        await new Promise<void>((r) => {
          waiters.push(r)
          setTimeout(r, 50)
        })
      }
      return replies.splice(0, n)
    },
    closed: () => closedP,
  }
}

/** The rdata of answer `i` as dns-packet renders it (address text for A/AAAA), or undefined. */
export function answerData(m: dnsPacket.Packet, i = 0): string | undefined {
  const a = m.answers?.[i] as { data?: unknown } | undefined
  return a?.data === undefined ? undefined : String(a.data)
}

/**
 * The first answer's data for each of `n` A queries, each sent from its own socket, so from its own
 * source port: its own flow, which SO_REUSEPORT hashes to a listener of its own choosing.
 */
export async function fromManyPorts(port: number, name: string, n = 48): Promise<string[]> {
  const replies = await Promise.all(
    Array.from({ length: n }, (_, i) => udpExchange(port, query(name, 'A', { id: i + 1 }), 2000)),
  )
  return replies.map((r) => (r === null ? 'timeout' : (answerData(decode(r)) ?? 'no answer')))
}
