/**
 * @module server/udp
 * UDP listener. Each datagram is answered synchronously from memory; a bug while answering turns
 * into SERVFAIL for that one query (CoreDNS's recover) and never stops the socket.
 *
 * Two ways to move the datagrams, same answers:
 * - batched (Linux, the default where the addon is built): recvmmsg/sendmmsg through
 *   src/native/udp_batch.c, one call into JavaScript per batch of up to 64 datagrams. Node's own
 *   per-datagram system calls and C++/JS crossings were most of the CPU per query.
 * - dgram: Node's sockets, one system call each way per datagram; everywhere else, and on request.
 */

import { createSocket } from 'node:dgram'
import { lookup as dnsLookup } from 'node:dns'
import { isIP, isIPv4, isIPv6 } from 'node:net'
import { parseAddress } from '../dns/address.ts'
import { type ResponseRateLimiter, truncatedResponse } from '../dns/rrl.ts'
import { GslbError } from '../errors.ts'
import type { Logger } from '../log.ts'
import {
  loadUdpBatch,
  META_ADDR,
  META_FAMILY,
  META_LEN,
  META_OUT_LEN,
  META_OUT_OFFSET,
  type UdpBatchAddon,
} from '../native/udp-batch.ts'
import { ipv4Value } from '../query/context.ts'
import type { Answerer } from '../query/handle.ts'
import type { BatchLayout } from '../query/read-ahead.ts'
import type { QueryObserver } from './observer.ts'
import { PeerNames } from './peer-names.ts'
import { servfail } from './servfail.ts'

/** How datagrams are moved: `auto` is batched where the addon loads, else dgram. */
export type UdpIo = 'auto' | 'batched' | 'dgram'
export const UDP_IO_MODES: readonly UdpIo[] = ['auto', 'batched', 'dgram']

export class UdpIoUnavailableError extends GslbError {
  override readonly code = 'GSLB_ERR_UDP_IO'
}

/**
 * RRL accounting of one response (UDP only: TCP proves the source address, so spoofed floods cannot
 * use it). Answers are accounted per question name; NXDOMAIN and errors per client network alone,
 * since their names are chosen by whoever floods.
 */
function limit(
  rrl: ResponseRateLimiter,
  answerer: Answerer,
  out: Buffer,
  bytes: Uint8Array,
  family: 4 | 6,
): 'send' | 'drop' | 'slip' {
  const rcode = out[3]! & 0xf
  const kind = rcode === 0 ? 'answer' : rcode === 3 ? 'nxdomain' : 'error'
  return rrl.check(bytes, family, kind, kind === 'answer' ? answerer.lastQuery.key : '', Date.now())
}

export interface UdpStats {
  /** Datagrams read from the socket. */
  readonly received: number
  /** Reads they took: received / batches is the mean batch size (dgram: one each). */
  readonly batches: number
  /** Responses the kernel refused to send (batched path; dgram reports its send errors as log lines). */
  readonly dropped: number
}

export const NO_UDP_STATS: UdpStats = Object.freeze({ received: 0, batches: 0, dropped: 0 })

/** Two listeners' (or threads') figures as one. */
export function addUdpStats(a: UdpStats, b: UdpStats): UdpStats {
  return { received: a.received + b.received, batches: a.batches + b.batches, dropped: a.dropped + b.dropped }
}

export interface UdpListener {
  readonly port: number
  /** Which I/O path this listener uses (never 'auto'). */
  readonly io: 'batched' | 'dgram'
  stats(): UdpStats
  /**
   * Sends every datagram of this address's SO_REUSEPORT group to the group's socket `index`
   * (native/udp_batch.c `steer`); batched path only. Whether it took.
   */
  steer(index: number): boolean
  close(): Promise<void>
}

export interface UdpOptions {
  /** SO_REUSEPORT: several sockets (worker threads) share the port; the kernel spreads the flows. */
  readonly reusePort?: boolean | undefined
  readonly io?: UdpIo | undefined
  /**
   * Bytes of response space per batch (batched path; default 256 KiB, at least 64 KiB). A batch
   * whose responses need more is sent in parts. Tests lower it to exercise that.
   */
  readonly outputBytes?: number | undefined
}

/** What answering a datagram needs, whichever path moved it. */
interface Responder {
  readonly answerer: Answerer
  readonly log: Logger
  readonly observe: QueryObserver
  readonly rrl: ResponseRateLimiter | undefined
}

/**
 * Answers one datagram: the answer, SERVFAIL if answering threw, a slipped or no response under
 * RRL, or null for silence. Shared by both I/O paths so they cannot drift apart.
 */
function respond(
  msg: Buffer,
  source: string,
  { answerer, log, observe, rrl }: Responder,
  peer: (source: string) => { bytes: Uint8Array; family: 4 | 6 } | undefined,
): Buffer | null {
  let out: Buffer | null
  try {
    out = answerer.answer(msg, 'udp', source)
  } catch (err) {
    log.error({ err, client: source }, 'query failed; answered SERVFAIL')
    out = servfail(msg)
  }
  if (out === null) return null
  if (rrl !== undefined) {
    const p = peer(source)
    const verdict = p === undefined ? 'send' : limit(rrl, answerer, out, p.bytes, p.family)
    if (verdict === 'drop') return null
    if (verdict === 'slip') out = truncatedResponse(msg)
  }
  observe(msg, out, 'udp', source)
  return out
}

const RECV_BUFFER = 4 * 1024 * 1024

export function listenUdp(
  host: string,
  port: number,
  answerer: Answerer,
  log: Logger,
  observe: QueryObserver,
  rrl?: ResponseRateLimiter,
  options: UdpOptions = {},
): Promise<UdpListener> {
  const io = options.io ?? 'auto'
  // A scoped IPv6 address (fe80::1%eth0) is left to dgram, which resolves the scope name.
  if (io === 'batched' || (io === 'auto' && !host.includes('%'))) {
    const addon = loadUdpBatch()
    if (typeof addon !== 'string') {
      // A bind error (EADDRINUSE, ...) is thrown by open(); callers expect a rejection, as from dgram.
      try {
        return Promise.resolve(listenBatched(addon, host, port, { answerer, log, observe, rrl }, options))
      } catch (err) {
        return Promise.reject(err)
      }
    }
    if (io === 'batched') return Promise.reject(new UdpIoUnavailableError(`--udp-io batched: ${addon}`))
    warnFallback(log, addon)
  }
  return listenDgram(host, port, { answerer, log, observe, rrl }, options)
}

let warned = false
function warnFallback(log: Logger, why: string): void {
  if (warned) return
  warned = true
  log.warn({ reason: why }, 'batched UDP I/O unavailable; answering UDP through dgram (same answers, less throughput)')
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

/** The peer's address bytes for RRL, from dgram's text (an IPv4-mapped address counts as IPv4). */
function peerFromText(source: string): { bytes: Uint8Array; family: 4 | 6 } | undefined {
  return parseAddress(source.startsWith('::ffff:') && isIPv4(source.slice(7)) ? source.slice(7) : source)
}

function listenDgram(host: string, port: number, r: Responder, options: UdpOptions): Promise<UdpListener> {
  // A larger receive buffer absorbs bursts that would otherwise be dropped by the kernel (capped by
  // net.core.rmem_max); answering is fast, queues only form while the event loop is busy.
  const socket = createSocket({
    type: isIPv6(host) ? 'udp6' : 'udp4',
    ipv6Only: isIPv6(host),
    recvBufferSize: RECV_BUFFER,
    lookup: literalLookup,
    reusePort: options.reusePort === true,
  })
  let received = 0
  socket.on('message', (msg, rinfo) => {
    received++
    const source = rinfo.address
    const out = respond(msg, source, r, peerFromText)
    if (out !== null) socket.send(out, rinfo.port, source)
  })
  // A send error (ICMP unreachable on some platforms, ENOBUFS) concerns one client only.
  socket.on('error', (err) => r.log.warn({ err }, 'UDP socket error'))
  return new Promise((resolveListen, reject) => {
    const onError = (err: Error): void => reject(err)
    socket.once('error', onError)
    socket.bind(port, host, () => {
      socket.off('error', onError)
      resolveListen({
        port: socket.address().port,
        io: 'dgram',
        stats: () => ({ received, batches: received, dropped: 0 }),
        // Node's dgram does not give the socket to attach a program to.
        steer: () => false,
        close: () => new Promise<void>((r) => socket.close(() => r())),
      })
    })
  })
}

/** Room for the responses of one batch; a batch that needs more is sent in parts (flush). */
const OUT_BYTES = 256 * 1024

function listenBatched(
  addon: UdpBatchAddon,
  host: string,
  port: number,
  r: Responder,
  options: UdpOptions,
): UdpListener {
  const batch = addon.BATCH
  const slot = addon.IN_SLOT
  const words = addon.META >> 2
  // allocUnsafeSlow: buffers of their own, never slices of Node's shared pool, since C keeps
  // pointers into them for the socket's lifetime.
  const input = Buffer.allocUnsafeSlow(batch * slot)
  const metaBytes = Buffer.alloc(batch * addon.META)
  const output = Buffer.allocUnsafeSlow(Math.max(options.outputBytes ?? OUT_BYTES, addon.MIN_OUT))
  const meta = new Int32Array(metaBytes.buffer, metaBytes.byteOffset, metaBytes.length >> 2)
  // Per-slot views made once, so RRL and the address cache never allocate per datagram.
  const addr4: Uint8Array[] = []
  const addr6: Uint8Array[] = []
  for (let i = 0; i < batch; i++) {
    const at = metaBytes.byteOffset + i * addon.META + META_ADDR
    addr4.push(new Uint8Array(metaBytes.buffer, at, 4))
    addr6.push(new Uint8Array(metaBytes.buffer, at, 16))
  }
  const names = new PeerNames()
  const peer = { bytes: addr4[0]!, family: 4 as 4 | 6 }
  let current = 0
  const peerOfCurrent = (): { bytes: Uint8Array; family: 4 | 6 } => {
    const v6 = meta[current * words + META_FAMILY] === 6
    peer.family = v6 ? 6 : 4
    peer.bytes = v6 ? addr6[current]! : addr4[current]!
    return peer
  }
  let handle: ReturnType<UdpBatchAddon['open']>[0] | undefined

  const layout: BatchLayout = {
    slot,
    words,
    lengthAt: META_LEN,
    familyAt: META_FAMILY,
    addressAt: META_ADDR,
  }
  let readAheadFailed = false
  const onBatch = (count: number): void => {
    let pos = 0
    // A batch's answers read a few scattered objects each; read ahead for all of them first so
    // their cache misses overlap (query/read-ahead.ts). Only an optimization: if it ever threw,
    // answering goes on without it (a throw here would reach the addon's fatal-exception path).
    if (count > 1 && !readAheadFailed) {
      try {
        r.answerer.readAhead(input, meta, metaBytes, layout, count)
      } catch (err) {
        readAheadFailed = true
        r.log.error({ err }, 'batch read-ahead failed; answering without it')
      }
    }
    for (let i = 0; i < count; i++) {
      const m = i * words
      const len = meta[m + META_LEN]!
      // -1: the kernel truncated it (a slot holds any UDP payload, so this should not happen).
      if (len < 0) continue
      const a = m + (META_ADDR >> 2)
      const source = meta[m + META_FAMILY] === 6 ? names.v6(meta, a, addr6[i]!) : names.v4(meta[a]!, addr4[i]!)
      current = i
      const msg = input.subarray(i * slot, i * slot + len)
      const out = respond(msg, source, r, peerOfCurrent)
      if (out === null) continue
      if (pos + out.length > output.length) {
        addon.flush(handle!, i)
        pos = 0
      }
      output.set(out, pos)
      meta[m + META_OUT_OFFSET] = pos
      meta[m + META_OUT_LEN] = out.length
      pos += out.length
    }
  }

  const family = isIPv6(host) ? 6 : 4
  const [h, bound] = addon.open(
    family,
    host,
    port,
    options.reusePort === true,
    RECV_BUFFER,
    input,
    metaBytes,
    output,
    onBatch,
  )
  handle = h
  let closed = false
  // A closed listener's totals stay counted: a serve that handed its answering over to a worker
  // thread keeps reporting them next to the worker's.
  let final: readonly [number, number, number] = [0, 0, 0]
  return {
    port: bound,
    io: 'batched',
    stats: () => {
      const [batches, received, dropped] = closed ? final : addon.stats(h)
      return { received, batches, dropped }
    },
    steer: (index) => !closed && addon.steer(h, index),
    close: () => {
      if (!closed) {
        final = addon.stats(h)
        closed = true
        addon.close(h)
      }
      return Promise.resolve()
    },
  }
}
