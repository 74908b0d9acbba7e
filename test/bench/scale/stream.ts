/**
 * A steady stream of UDP queries to one server, recording when each answer came back: what
 * `bench:scale` uses to see how long a reload keeps the server from answering.
 *
 * One query leaves every `intervalMs` (a timer, so the pace is the timer's: about 1 ms) whatever
 * came back, so a stalled server shows up as answers that arrive late and in a burst. Each query
 * carries its own ID; an answer's latency is its arrival time minus the send time of that ID.
 */

import { createSocket } from 'node:dgram'

/** A DNS query for `name` (absolute, with or without the trailing dot) and a numeric QTYPE. */
export function encodeQuery(
  id: number,
  name: string,
  qtype: number,
  ecs?: { address: string; prefix: number },
): Buffer {
  const labels = name.replace(/\.$/, '').split('.')
  const parts: Buffer[] = [Buffer.from([id >> 8, id & 0xff, 0, 0, 0, 1, 0, 0, 0, 0, 0, ecs ? 1 : 0])]
  for (const l of labels) parts.push(Buffer.from([l.length]), Buffer.from(l, 'latin1'))
  parts.push(Buffer.from([0, qtype >> 8, qtype & 0xff, 0, 1]))
  if (ecs) {
    const octets = ecs.address
      .split('.')
      .map(Number)
      .slice(0, Math.ceil(ecs.prefix / 8))
    const opt = Buffer.from([0, 8, 0, 4 + octets.length, 0, 1, ecs.prefix, 0, ...octets])
    parts.push(Buffer.from([0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, opt.length]), opt)
  }
  return Buffer.concat(parts)
}

export interface StreamSample {
  /** ms since the stream started (performance.now() based). */
  readonly sentAt: number
  readonly receivedAt: number
  readonly rcode: number
  readonly answers: number
}

export interface StreamResult {
  readonly sent: number
  readonly samples: readonly StreamSample[]
  /** Send times of queries never answered. */
  readonly lost: readonly number[]
}

export interface Stream {
  /** ms since the stream started, on the same clock as the samples. */
  now(): number
  stop(graceMs?: number): Promise<StreamResult>
}

/** Starts sending `queries` in turn to 127.0.0.1:`port`, one every `intervalMs`. */
export function startStream(port: number, queries: readonly { name: string; qtype: number }[], intervalMs = 1): Stream {
  const sock = createSocket('udp4')
  // Answers can back up by thousands during a stall: give the socket room so none are dropped here.
  sock.bind(0, '127.0.0.1', () => {
    try {
      sock.setRecvBufferSize(8 * 1024 * 1024)
    } catch {}
  })
  const t0 = performance.now()
  const now = (): number => performance.now() - t0
  const sentAt = new Float64Array(65536).fill(-1)
  const samples: StreamSample[] = []
  let sent = 0
  let k = 0
  const lost: number[] = []
  const packets = queries.map((q) => encodeQuery(0, q.name, q.qtype))
  sock.on('message', (m) => {
    if (m.length < 12) return
    const id = m.readUInt16BE(0)
    const at = sentAt[id]!
    if (at < 0) return
    sentAt[id] = -1
    samples.push({ sentAt: at, receivedAt: now(), rcode: m[3]! & 0xf, answers: m.readUInt16BE(6) })
  })
  sock.on('error', () => {})
  const tick = setInterval(() => {
    const id = sent & 0xffff
    // An ID still outstanding after 65536 queries is lost.
    if (sentAt[id]! >= 0) lost.push(sentAt[id]!)
    const p = packets[k++ % packets.length]!
    p.writeUInt16BE(id, 0)
    sentAt[id] = now()
    sock.send(p, port, '127.0.0.1')
    sent++
  }, intervalMs)
  return {
    now,
    async stop(graceMs = 2000) {
      clearInterval(tick)
      await new Promise((r) => setTimeout(r, graceMs))
      sock.close()
      for (const at of sentAt) if (at >= 0) lost.push(at)
      return { sent, samples, lost: lost.sort((a, b) => a - b) }
    },
  }
}

export interface StallFigures {
  /** Answers that arrived in the window. */
  readonly answered: number
  /** Queries sent in the window and never answered. */
  readonly lost: number
  readonly maxLatencyMs: number
  readonly p99LatencyMs: number
  /**
   * Longest time the server left a query unanswered while answering nothing else: between two
   * consecutive answers, counted from the later one's query being sent (so a pause of the sender
   * does not count).
   */
  readonly maxGapMs: number
  /** When the answer that ended the longest gap arrived (the stream's clock), NaN without answers. */
  readonly maxGapEndedAt: number
  /** Answers with an rcode other than NOERROR, or without records. */
  readonly bad: number
}

/** Latency and gap figures over the samples sent in [from, to). */
export function stallFigures(r: StreamResult, from: number, to: number): StallFigures {
  const inWindow = r.samples.filter((s) => s.sentAt >= from && s.sentAt < to)
  const lat = inWindow.map((s) => s.receivedAt - s.sentAt).sort((a, b) => a - b)
  const arrivals = r.samples.filter((s) => s.receivedAt >= from && s.receivedAt < to)
  arrivals.sort((a, b) => a.receivedAt - b.receivedAt)
  let maxGap = 0
  let maxGapEndedAt = Number.NaN
  let prev = from
  for (const s of arrivals) {
    const gap = s.receivedAt - Math.max(prev, s.sentAt)
    if (gap > maxGap || Number.isNaN(maxGapEndedAt)) {
      maxGap = Math.max(maxGap, gap)
      maxGapEndedAt = s.receivedAt
    }
    prev = s.receivedAt
  }
  return {
    answered: inWindow.length,
    lost: r.lost.filter((t) => t >= from && t < to).length,
    maxLatencyMs: lat.length ? lat[lat.length - 1]! : Number.NaN,
    p99LatencyMs: lat.length ? lat[Math.min(lat.length - 1, Math.ceil(lat.length * 0.99) - 1)]! : Number.NaN,
    maxGapMs: maxGap,
    maxGapEndedAt,
    bad: inWindow.filter((s) => s.rcode !== 0 || s.answers === 0).length,
  }
}
