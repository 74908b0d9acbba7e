/**
 * The "Node ceiling" comparison server for `npm run bench -- --baseline`: the least a Node UDP DNS
 * server can do per query. Every query gets one pre-encoded answer (an A record, compressed owner)
 * with only the ID, RD bit and question copied from the query; no parsing beyond finding the end
 * of the question, no lookup, no EDNS, no validation. What separates the real server from this is
 * the price of being correct; what separates this from gdnsd is the price of Node's dgram.
 *
 *   node test/bench/ceiling.ts --port PORT [--host 127.0.0.1]
 *
 * Prints "ready PORT" on stdout once bound; SIGTERM or SIGINT closes the socket and exits 0.
 */

import { createSocket } from 'node:dgram'
import { parseArgs } from 'node:util'

const { values } = parseArgs({
  options: { port: { type: 'string' }, host: { type: 'string', default: '127.0.0.1' } },
  strict: true,
})
const host = values.host
if (host !== '127.0.0.1' && host !== '::1') {
  process.stderr.write('ceiling: listens on 127.0.0.1 or ::1 only\n')
  process.exit(2)
}
const port = Number(values.port ?? '0')

// Answer section: pointer to the question name, A IN, TTL 300, 192.0.2.10.
const ANSWER = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 1, 0x2c, 0, 4, 192, 0, 2, 10])

const socket = createSocket({
  type: host === '::1' ? 'udp6' : 'udp4',
  // The same literal-address lookup as the real server (src/server/udp.ts), so the comparison
  // isolates the per-query work rather than dgram's resolver tick.
  lookup: (address, _family, cb) => cb(null, address, host === '::1' ? 6 : 4),
})
socket.on('message', (msg, rinfo) => {
  if (msg.length < 17) return
  let i = 12
  while (i < msg.length && msg[i] !== 0) i += msg[i]! + 1
  const qEnd = i + 5
  if (qEnd > msg.length) return
  const out = Buffer.allocUnsafe(qEnd + ANSWER.length)
  msg.copy(out, 0, 0, qEnd)
  out[2] = 0x84 | (msg[2]! & 0x01) // QR, AA, RD copied
  out[3] = 0
  out[6] = 0
  out[7] = 1 // ANCOUNT 1
  out[8] = 0
  out[9] = 0
  out[10] = 0
  out[11] = 0
  ANSWER.copy(out, qEnd)
  socket.send(out, rinfo.port, rinfo.address)
})
socket.on('error', (err) => process.stderr.write(`ceiling: ${err.message}\n`))
socket.bind(port, host, () => process.stdout.write(`ready ${socket.address().port}\n`))

const stop = (): void => {
  socket.close(() => process.exit(0))
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
