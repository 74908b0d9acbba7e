/**
 * The "naive" comparison server for `npm run bench -- --baseline`: a tiny Node UDP server that
 * answers every query with a full dns-packet decode of the query and a full dns-packet encode of
 * the answer (one A or AAAA record for the asked name, NOERROR and no records for other types).
 * No zone lookup, no validation, no EDNS handling: this is the ceiling a straightforward
 * Node + dns-packet server reaches, against which the real server's figure is shown.
 *
 *   node test/bench/baseline.ts --port PORT [--host 127.0.0.1]
 *
 * Prints "ready PORT" on stdout once bound; SIGTERM or SIGINT closes the socket and exits 0.
 */

import { createSocket } from 'node:dgram'
import { parseArgs } from 'node:util'
import dnsPacket from 'dns-packet'

const { values } = parseArgs({
  options: { port: { type: 'string' }, host: { type: 'string', default: '127.0.0.1' } },
  strict: true,
})
const host = values.host
if (host !== '127.0.0.1' && host !== '::1') {
  process.stderr.write('baseline: listens on 127.0.0.1 or ::1 only\n')
  process.exit(2)
}
const port = Number(values.port ?? '0')

const socket = createSocket(host === '::1' ? 'udp6' : 'udp4')
socket.on('message', (msg, rinfo) => {
  let query: dnsPacket.Packet
  try {
    query = dnsPacket.decode(msg)
  } catch {
    return
  }
  const q = query.questions?.[0]
  const answers: dnsPacket.Answer[] = []
  if (q?.type === 'A') answers.push({ type: 'A', name: q.name, ttl: 300, class: 'IN', data: '192.0.2.10' })
  else if (q?.type === 'AAAA') answers.push({ type: 'AAAA', name: q.name, ttl: 300, class: 'IN', data: '2001:db8::10' })
  const out = dnsPacket.encode({
    type: 'response',
    id: query.id ?? 0,
    flags: dnsPacket.AUTHORITATIVE_ANSWER,
    questions: query.questions ?? [],
    answers,
  })
  socket.send(out, rinfo.port, rinfo.address)
})
socket.on('error', (err) => process.stderr.write(`baseline: ${err.message}\n`))
socket.bind(port, host, () => process.stdout.write(`ready ${socket.address().port}\n`))

const stop = (): void => {
  socket.close(() => process.exit(0))
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
