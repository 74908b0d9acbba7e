/**
 * @module probe/checks/dns
 * DNS check: one query over UDP or TCP to `address:port` (default 53), judged on its rcode and,
 * optionally, on one answer's data. Replies are matched on a random ID and on the question, and
 * anything that does not match is ignored rather than failed: a stray or spoofed datagram must
 * not decide a target's health either way.
 */

import { randomInt } from 'node:crypto'
import { createSocket } from 'node:dgram'
import { connect, isIPv6 } from 'node:net'
import * as dnsPacket from 'dns-packet'
import { parseAddress } from '../../dns/address.ts'
import { typeNumber } from '../../dns/types.ts'
import type { CheckResult, DnsCheck } from '../types.ts'
import { deadline, failure, netErrorText } from './tcp.ts'

const DEFAULT_PORT = 53

/** Header rcodes by number (RFC 1035, 2136); others print as `RCODEn`. */
const RCODE_NAMES = [
  'NOERROR',
  'FORMERR',
  'SERVFAIL',
  'NXDOMAIN',
  'NOTIMP',
  'REFUSED',
  'YXDOMAIN',
  'YXRRSET',
  'NXRRSET',
  'NOTAUTH',
  'NOTZONE',
] as const

function rcodeName(code: number): string {
  return RCODE_NAMES[code] ?? `RCODE${code}`
}

/** What the reply handler decided about one received message. */
type Verdict = { readonly kind: 'ignore' } | { readonly kind: 'done'; readonly result: CheckResult }

const IGNORE: Verdict = { kind: 'ignore' }

/** Sends one query and judges the reply. Never throws. */
export async function dnsCheck(check: DnsCheck, address: string, signal?: AbortSignal): Promise<CheckResult> {
  const qtype = typeNumber(check.qtype)
  if (qtype === undefined) return failure(`bad qtype ${check.qtype}`)
  const expectedRcode = check.rcode.toUpperCase()
  const id = randomInt(0, 0x10000)
  const qname = check.query.replace(/\.$/, '')
  let query: Buffer
  try {
    query = dnsPacket.encode({
      type: 'query',
      id,
      // No RD: the targets are authoritative servers, and a recursive answer would say nothing
      // about the server's own data.
      flags: 0,
      // dns-packet reads `UNKNOWN_<n>` for any type number, which also covers types it has no name for.
      questions: [{ type: `UNKNOWN_${qtype}` as dnsPacket.RecordType, name: qname, class: 'IN' }],
    })
  } catch {
    return failure('bad query name')
  }

  // dns-packet's own spelling of our type (`A`, `AFSDB`, `UNKNOWN_65280`), to compare replies against.
  const qtypeText = dnsPacket.decode(query).questions?.[0]?.type
  const started = performance.now()
  const judge = (message: Buffer): Verdict => {
    let reply: dnsPacket.DecodedPacket
    try {
      reply = dnsPacket.decode(message)
    } catch {
      return IGNORE
    }
    if (reply.id !== id || !reply.flag_qr) return IGNORE
    const q = reply.questions?.[0]
    // A reply for another question (an earlier probe's, a spoof) is not ours, whatever its ID.
    if (q !== undefined && (!sameName(q.name, qname) || q.type !== qtypeText)) return IGNORE
    const latencyMs = performance.now() - started
    const rcode = rcodeName((reply.flags ?? 0) & 0xf)
    if (rcode !== expectedRcode) return done(failure(`rcode ${rcode}`))
    if (check.answer !== undefined && !(reply.answers ?? []).some((a) => answerMatches(a, check.answer!))) {
      return done(failure(reply.flag_tc ? 'answer mismatch (truncated)' : 'answer mismatch'))
    }
    return done({ ok: true, latencyMs, error: undefined, load: undefined })
  }

  const port = check.port ?? DEFAULT_PORT
  const limit = deadline(check.timeoutMs, signal)
  try {
    if (limit.reason()) return failure(limit.reason()!)
    const send = check.transport === 'tcp' ? queryTcp : queryUdp
    return await send(address, port, query, judge, limit.signal, () => limit.reason() ?? 'aborted')
  } finally {
    limit.dispose()
  }
}

function done(result: CheckResult): Verdict {
  return { kind: 'done', result }
}

function queryUdp(
  address: string,
  port: number,
  query: Buffer,
  judge: (message: Buffer) => Verdict,
  signal: AbortSignal,
  abortReason: () => string,
): Promise<CheckResult> {
  return new Promise((resolve) => {
    const socket = createSocket(isIPv6(address) ? 'udp6' : 'udp4')
    let finished = false
    const finish = (result: CheckResult): void => {
      if (finished) return
      finished = true
      signal.removeEventListener('abort', onAbort)
      try {
        socket.close()
      } catch {
        // Already closed by a failed connect: nothing left to release.
      }
      resolve(result)
    }
    const onAbort = (): void => finish(failure(abortReason()))
    signal.addEventListener('abort', onAbort, { once: true })
    // A connected socket only receives datagrams from address:port, and on Linux it reports an
    // ICMP port unreachable as ECONNREFUSED instead of waiting out the timeout.
    socket.on('error', (err) => finish(failure(netErrorText(err))))
    socket.on('message', (message) => {
      const verdict = judge(message)
      if (verdict.kind === 'done') finish(verdict.result)
    })
    socket.connect(port, address, () => {
      if (finished) return
      socket.send(query, (err) => {
        if (err) finish(failure(netErrorText(err)))
      })
    })
  })
}

function queryTcp(
  address: string,
  port: number,
  query: Buffer,
  judge: (message: Buffer) => Verdict,
  signal: AbortSignal,
  abortReason: () => string,
): Promise<CheckResult> {
  return new Promise((resolve) => {
    const socket = connect({ host: address, port, noDelay: true })
    let finished = false
    const finish = (result: CheckResult): void => {
      if (finished) return
      finished = true
      signal.removeEventListener('abort', onAbort)
      socket.destroy()
      resolve(result)
    }
    const onAbort = (): void => finish(failure(abortReason()))
    signal.addEventListener('abort', onAbort, { once: true })
    socket.on('error', (err) => finish(failure(netErrorText(err))))
    socket.once('connect', () => {
      const frame = Buffer.alloc(2 + query.length)
      frame.writeUInt16BE(query.length, 0)
      query.copy(frame, 2)
      socket.write(frame)
    })
    let pending: Buffer = Buffer.alloc(0)
    socket.on('data', (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk])
      // RFC 7766 framing: a 2-byte length, then the message; a server may send several.
      while (pending.length >= 2) {
        const size = pending.readUInt16BE(0)
        if (pending.length < 2 + size) return
        const verdict = judge(pending.subarray(2, 2 + size))
        pending = pending.subarray(2 + size)
        if (verdict.kind === 'done') {
          finish(verdict.result)
          return
        }
      }
    })
    socket.on('end', () => finish(failure('connection closed')))
  })
}

function sameName(a: string, b: string): boolean {
  return a.replace(/\.$/, '').toLowerCase() === b.toLowerCase()
}

/**
 * Whether one answer carries `expected`: addresses are compared as bytes (so `2001:db8::1` equals
 * `2001:0db8:0:0::1`), names without case or trailing dot, TXT as its strings joined.
 */
function answerMatches(answer: dnsPacket.Answer, expected: string): boolean {
  const data: unknown = 'data' in answer ? answer.data : undefined
  const text = rdataText(data)
  if (text === undefined) return false
  const want = parseAddress(expected)
  if (want) {
    const got = parseAddress(text)
    return got?.bytes.equals(want.bytes) === true
  }
  return sameName(text, expected.replace(/\.$/, '')) || text === expected
}

function rdataText(data: unknown): string | undefined {
  if (typeof data === 'string') return data
  if (Buffer.isBuffer(data)) return data.toString('utf8')
  if (Array.isArray(data)) return data.map((part) => rdataText(part) ?? '').join('')
  if (typeof data === 'object' && data !== null) {
    // MX exchange, SRV target: the part of the record a health check would pin.
    if ('exchange' in data && typeof data.exchange === 'string') return data.exchange
    if ('target' in data && typeof data.target === 'string') return data.target
  }
  return undefined
}
