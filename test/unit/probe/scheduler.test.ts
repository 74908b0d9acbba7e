import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { seededRandom } from '../../../src/policy/random.ts'
import { ProbeScheduler, type ProbeSchedulerOptions } from '../../../src/probe/scheduler.ts'
import type { CheckResult, ProbeTarget, TcpCheck } from '../../../src/probe/types.ts'
import type { ProbeStatus, TargetId } from '../../../src/state/types.ts'

function target(endpoint: string, check: Partial<TcpCheck> = {}): ProbeTarget {
  return {
    id: `example.com|${endpoint}`,
    zone: 'example.com',
    endpoint,
    address: '127.0.0.1',
    check: {
      kind: 'tcp',
      name: 'tcp',
      intervalMs: 1000,
      jitter: 0.1,
      timeoutMs: 500,
      rise: 2,
      fall: 3,
      address: undefined,
      port: 80,
      ...check,
    },
  }
}

const OK: CheckResult = { ok: true, latencyMs: 5, error: undefined, load: undefined }
const FAIL: CheckResult = { ok: false, latencyMs: undefined, error: 'connection refused', load: undefined }

interface Call {
  readonly id: TargetId
  readonly at: number
  readonly signal: AbortSignal
}

/**
 * A check that answers after `delayMs` (fake time) with the result `healthy` says for the target,
 * and records every call; `hang` ids never answer until aborted.
 */
class FakeCheck {
  readonly calls: Call[] = []
  readonly healthy = new Map<TargetId, boolean>()
  readonly hang = new Set<TargetId>()
  delayMs = 0
  running = 0
  maxRunning = 0

  readonly run = (t: ProbeTarget, signal: AbortSignal): Promise<CheckResult> => {
    this.calls.push({ id: t.id, at: Date.now(), signal })
    this.running++
    this.maxRunning = Math.max(this.maxRunning, this.running)
    return new Promise<CheckResult>((resolve) => {
      const done = (r: CheckResult) => {
        this.running--
        resolve(r)
      }
      signal.addEventListener('abort', () => done({ ...FAIL, error: 'aborted' }), { once: true })
      if (this.hang.has(t.id)) return
      const answer = () => done((this.healthy.get(t.id) ?? true) ? OK : FAIL)
      if (this.delayMs > 0) setTimeout(answer, this.delayMs)
      else queueMicrotask(answer)
    })
  }

  startsOf(id: TargetId): number[] {
    return this.calls.filter((c) => c.id === id).map((c) => c.at)
  }
}

interface Write {
  readonly at: number
  readonly batch: ReadonlyArray<readonly [TargetId, ProbeStatus]>
}

class FakeStore {
  readonly writes: Write[] = []
  failing = false
  attempts = 0

  async writeProbes(_vantage: string, batch: ReadonlyArray<readonly [TargetId, ProbeStatus]>): Promise<void> {
    this.attempts++
    if (this.failing) throw new Error('store down')
    this.writes.push({ at: Date.now(), batch })
  }

  /** The last report written for each target. */
  latest(): Map<TargetId, ProbeStatus> {
    const out = new Map<TargetId, ProbeStatus>()
    for (const w of this.writes) for (const [id, s] of w.batch) out.set(id, s)
    return out
  }

  reportsOf(id: TargetId): ProbeStatus[] {
    return this.writes.flatMap((w) => w.batch.filter(([t]) => t === id).map(([, s]) => s))
  }
}

function makeLog() {
  return { info: vi.fn(), warn: vi.fn(), error: vi.fn() }
}

let check: FakeCheck
let store: FakeStore
let schedulers: ProbeScheduler[]

function scheduler(options: Partial<ProbeSchedulerOptions> = {}): ProbeScheduler {
  const s = new ProbeScheduler({
    vantage: 'eu',
    prober: 'p1',
    store,
    run: check.run,
    now: () => Date.now(),
    random: seededRandom(42),
    ...options,
  })
  schedulers.push(s)
  return s
}

const T0 = 1_700_000_000_000

beforeEach(() => {
  vi.useFakeTimers({ now: T0 })
  check = new FakeCheck()
  store = new FakeStore()
  schedulers = []
})

afterEach(async () => {
  for (const s of schedulers) await s.stop()
  vi.useRealTimers()
})

describe('ProbeScheduler timing', () => {
  it('probes every target at its interval, each gap within the jitter bounds', async () => {
    const s = scheduler()
    const targets = Array.from({ length: 20 }, (_, i) => target(`e${i}`, { intervalMs: 1000, jitter: 0.2 }))
    s.setTargets(targets)
    await vi.advanceTimersByTimeAsync(30_000)
    const gaps: number[] = []
    for (const t of targets) {
      const starts = check.startsOf(t.id)
      expect(starts.length).toBeGreaterThanOrEqual(25)
      expect(starts.length).toBeLessThanOrEqual(38)
      for (let i = 1; i < starts.length; i++) gaps.push(starts[i]! - starts[i - 1]!)
    }
    // A wake-up may start a probe up to 5 ms early (coalescing), and the timer rounds up to whole ms.
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(800 - 5)
    expect(Math.max(...gaps)).toBeLessThanOrEqual(1200 + 5 + 1)
    // Jitter is really applied: the gaps spread over most of the allowed range.
    expect(Math.max(...gaps) - Math.min(...gaps)).toBeGreaterThan(250)
    expect(s.stats().lateMsP99).toBeLessThanOrEqual(1)
  })

  it('spreads the first probes of new targets uniformly over one interval', async () => {
    const s = scheduler()
    const targets = Array.from({ length: 1000 }, (_, i) => target(`e${i}`, { intervalMs: 10_000, jitter: 0 }))
    s.setTargets(targets)
    await vi.advanceTimersByTimeAsync(10_000)
    const first = new Map<TargetId, number>()
    for (const c of check.calls) if (!first.has(c.id)) first.set(c.id, c.at - T0)
    expect(first.size).toBe(1000)
    const buckets = new Array<number>(10).fill(0)
    for (const ms of first.values()) {
      expect(ms).toBeGreaterThanOrEqual(0)
      expect(ms).toBeLessThanOrEqual(10_000)
      buckets[Math.min(9, Math.floor(ms / 1000))]!++
    }
    // 100 expected per second; a burst would put most of them in the first bucket.
    for (const b of buckets) {
      expect(b).toBeGreaterThan(60)
      expect(b).toBeLessThan(140)
    }
  })

  it('runs at most maxInFlight probes at once and counts the wait as lateness', async () => {
    const s = scheduler({ maxInFlight: 5 })
    check.delayMs = 200
    s.setTargets(Array.from({ length: 50 }, (_, i) => target(`e${i}`, { intervalMs: 1000, timeoutMs: 900 })))
    for (let i = 0; i < 100; i++) {
      await vi.advanceTimersByTimeAsync(50)
      expect(s.stats().inFlight).toBeLessThanOrEqual(5)
    }
    expect(check.maxRunning).toBe(5)
    const st = s.stats()
    // 5 slots × 200 ms probes = 25 probes/s for a demand of 50/s.
    expect(st.probesDone).toBeGreaterThan(110)
    expect(st.probesDone).toBeLessThanOrEqual(130)
    expect(st.queued).toBeGreaterThan(0)
    expect(st.lateMsP99).toBeGreaterThan(200)
  })

  it('aborts a probe that outlives its timeout with a TimeoutError and counts it as a failure', async () => {
    const s = scheduler()
    const t = target('slow', { timeoutMs: 300, fall: 1 })
    check.hang.add(t.id)
    s.setTargets([t])
    await vi.advanceTimersByTimeAsync(1000)
    const first = check.calls[0]!
    expect(first.signal.aborted).toBe(true)
    expect((first.signal.reason as DOMException).name).toBe('TimeoutError')
    expect(s.stats()).toMatchObject({ timeouts: 1, inFlight: 0, probesFailed: 1 })
    await vi.advanceTimersByTimeAsync(300)
    expect(store.latest().get(t.id)).toMatchObject({ up: false, error: 'timeout' })
  })

  it('turns a check that throws into a failed probe', async () => {
    const s = scheduler({
      run: () => {
        throw new Error('boom')
      },
    })
    const t = target('bug', { fall: 1 })
    s.setTargets([t])
    await vi.advanceTimersByTimeAsync(1500)
    expect(s.health(t.id)).toMatchObject({ status: 'down', lastError: 'check threw: boom' })
    expect(s.stats().inFlight).toBe(0)
  })
})

describe('ProbeScheduler reports', () => {
  it('writes a rise or fall transition on the next tick, without waiting for the flush interval', async () => {
    const s = scheduler({ flushMs: 60_000 })
    const t = target('a', { intervalMs: 1000, jitter: 0, rise: 2, fall: 3 })
    s.setTargets([t])
    // rise = 2: the second success makes it UP.
    for (let i = 0; i < 2000 && check.calls.length < 2; i++) await vi.advanceTimersByTimeAsync(1)
    await vi.advanceTimersByTimeAsync(1)
    expect(store.writes).toHaveLength(1)
    const up = store.writes[0]!
    expect(up.at - check.calls[1]!.at).toBeLessThanOrEqual(1)
    expect(up.batch).toEqual([[t.id, expect.objectContaining({ up: true, since: check.calls[1]!.at })]])

    check.healthy.set(t.id, false)
    for (let i = 0; i < 4000 && check.calls.length < 5; i++) await vi.advanceTimersByTimeAsync(1)
    await vi.advanceTimersByTimeAsync(1)
    // Third and fourth probes fail without a transition: reported by the (far-off) flush only.
    expect(store.writes).toHaveLength(2)
    const down = store.writes[1]!
    expect(down.at - check.calls[4]!.at).toBeLessThanOrEqual(1)
    expect(down.batch).toEqual([[t.id, expect.objectContaining({ up: false, error: 'connection refused' })]])
  })

  it('batches reports without a transition and writes them every flushMs', async () => {
    const s = scheduler({ flushMs: 500 })
    const targets = Array.from({ length: 10 }, (_, i) => target(`e${i}`, { intervalMs: 1000, rise: 1 }))
    s.setTargets(targets)
    await vi.advanceTimersByTimeAsync(1000)
    const before = store.writes.length
    await vi.advanceTimersByTimeAsync(5000)
    const steady = store.writes.slice(before)
    // Nothing changes after the first probes: about 50 reports in at most one write per flush
    // interval, and no report waits longer than that interval.
    expect(steady.length).toBeGreaterThanOrEqual(7)
    expect(steady.length).toBeLessThanOrEqual(10)
    expect(steady.reduce((n, w) => n + w.batch.length, 0)).toBeGreaterThanOrEqual(45)
    for (let i = 1; i < steady.length; i++) expect(steady[i]!.at - steady[i - 1]!.at).toBeGreaterThanOrEqual(500)
    for (const w of steady) for (const [, r] of w.batch) expect(w.at - r.at).toBeLessThanOrEqual(500)
  })

  it('stamps every report with its time, an expiry of three intervals, and the prober id', async () => {
    const s = scheduler({ prober: 'probe-7', flushMs: 100 })
    const t = target('a', { intervalMs: 2000, rise: 1 })
    s.setTargets([t])
    await vi.advanceTimersByTimeAsync(10_000)
    const reports = store.reportsOf(t.id)
    expect(reports.length).toBeGreaterThanOrEqual(4)
    const starts = check.startsOf(t.id)
    for (const r of reports) {
      expect(r.prober).toBe('probe-7')
      expect(r.expiresAt).toBe(r.at + 6000)
      expect(starts).toContain(r.at)
      expect(r).toMatchObject({ up: true, rttMs: 5, lastRttMs: 5, error: undefined })
    }
  })

  it('writes nothing while a target is still unknown', async () => {
    const s = scheduler({ flushMs: 100 })
    const t = target('a', { intervalMs: 1000, jitter: 0, rise: 3, fall: 3 })
    s.setTargets([t])
    for (let i = 0; i < 3000 && check.calls.length < 2; i++) await vi.advanceTimersByTimeAsync(1)
    await vi.advanceTimersByTimeAsync(500)
    expect(s.health(t.id)?.status).toBe('unknown')
    expect(store.writes).toHaveLength(0)
  })

  it('keeps the latest report per target while the store is down, and writes it on recovery', async () => {
    const log = makeLog()
    const s = scheduler({ flushMs: 200, log })
    const targets = [target('a', { rise: 1, fall: 1 }), target('b', { rise: 1, fall: 1 })]
    s.setTargets(targets)
    await vi.advanceTimersByTimeAsync(1500)
    store.failing = true
    const attempts = store.attempts
    check.healthy.set(targets[0]!.id, false)
    await vi.advanceTimersByTimeAsync(3000)
    check.healthy.set(targets[0]!.id, true)
    await vi.advanceTimersByTimeAsync(1500)
    check.healthy.set(targets[0]!.id, false)
    await vi.advanceTimersByTimeAsync(1500)
    expect(store.attempts - attempts).toBeGreaterThan(5)
    expect(s.stats().writeErrors).toBe(store.attempts - attempts)
    expect(log.error).toHaveBeenCalledTimes(1)
    expect(s.stats().pending).toBe(2)

    const written = store.writes.length
    store.failing = false
    await vi.advanceTimersByTimeAsync(250)
    expect(log.info).toHaveBeenCalledWith(expect.anything(), 'probe report writes recovered')
    const recovered = store.writes.slice(written).flatMap((w) => w.batch)
    expect(recovered.length).toBe(2)
    for (const [id, status] of recovered) {
      const h = s.health(id)!
      expect(status).toMatchObject({ up: h.up, since: h.since, at: h.lastCheck })
    }
    expect(store.latest().get(targets[0]!.id)).toMatchObject({ up: false })
    expect(store.latest().get(targets[1]!.id)).toMatchObject({ up: true })
  })

  it('continues from a live report of another prober for a target it takes over', async () => {
    const s = scheduler()
    const now = Date.now()
    const report = (up: boolean, expiresAt: number): ProbeStatus => ({
      up,
      since: now - 60_000,
      rttMs: 12,
      lastRttMs: 11,
      error: up ? undefined : 'timeout',
      load: undefined,
      at: now - 1000,
      expiresAt,
      prober: 'p0',
    })
    const known = new Map([
      ['example.com|live', report(false, now + 2000)],
      ['example.com|stale', report(false, now - 1)],
    ])
    s.setTargets([target('live'), target('stale'), target('new')], known)
    expect(s.health('example.com|live')).toMatchObject({ status: 'down', up: false, since: now - 60_000, rttMs: 12 })
    expect(s.health('example.com|stale')?.status).toBe('unknown')
    expect(s.health('example.com|new')?.status).toBe('unknown')
  })
})

describe('ProbeScheduler target changes and stop', () => {
  it('keeps the state and schedule of kept targets, drops removed ones and spreads new ones', async () => {
    const s = scheduler({ flushMs: 100 })
    const a = target('a', { rise: 1, jitter: 0.1 })
    const b = target('b', { rise: 1, jitter: 0.1 })
    s.setTargets([a, b])
    await vi.advanceTimersByTimeAsync(5_000)
    const stateA = s.health(a.id)
    expect(stateA?.status).toBe('up')
    const lastA = check.startsOf(a.id).at(-1)!

    const c = target('c', { intervalMs: 1000 })
    s.setTargets([a, c])
    const changedAt = Date.now()
    expect(s.health(a.id)?.since).toBe(stateA?.since)
    expect(s.health(b.id)).toBeUndefined()
    expect(s.stats().targets).toBe(2)

    await vi.advanceTimersByTimeAsync(5_000)
    const startsA = check.startsOf(a.id).filter((t) => t > lastA)
    // a's next probe keeps to its old schedule (one jittered interval after its last one).
    expect(startsA[0]! - lastA).toBeGreaterThanOrEqual(900 - 5)
    expect(startsA[0]! - lastA).toBeLessThanOrEqual(1100 + 5 + 1)
    expect(check.startsOf(b.id).filter((t) => t > changedAt)).toEqual([])
    expect(store.writes.filter((w) => w.at > changedAt + 100).flatMap((w) => w.batch.map(([id]) => id))).not.toContain(
      b.id,
    )
    expect(check.startsOf(c.id)[0]! - changedAt).toBeLessThanOrEqual(1000)
  })

  it('aborts the running probe of a removed target and frees its slot', async () => {
    const s = scheduler({ maxInFlight: 1 })
    const a = target('a', { timeoutMs: 10_000, intervalMs: 20_000 })
    const b = target('b', { intervalMs: 1000 })
    check.hang.add(a.id)
    s.setTargets([a])
    await vi.advanceTimersByTimeAsync(20_000)
    expect(s.stats().inFlight).toBe(1)
    s.setTargets([b])
    const call = check.calls.find((c) => c.id === a.id)!
    expect(call.signal.aborted).toBe(true)
    await vi.advanceTimersByTimeAsync(1000)
    expect(check.startsOf(b.id).length).toBeGreaterThanOrEqual(1)
  })

  it('stop() aborts running probes, flushes what is pending and probes no more', async () => {
    const s = scheduler({ flushMs: 60_000 })
    const a = target('a', { rise: 1, timeoutMs: 5000, intervalMs: 1000, jitter: 0 })
    const b = target('b', { rise: 1, timeoutMs: 5000, intervalMs: 1000, jitter: 0 })
    s.setTargets([a, b])
    await vi.advanceTimersByTimeAsync(2500)
    // Both have been UP for a while: their latest reports wait for the 60 s flush.
    const pending = s.stats().pending
    expect(pending).toBe(2)
    check.hang.add(a.id)
    check.hang.add(b.id)
    await vi.advanceTimersByTimeAsync(1000)
    expect(s.stats().inFlight).toBe(2)
    const running = check.calls.slice(-2)
    const writes = store.writes.length
    await s.stop()
    for (const c of running) {
      expect(c.signal.aborted).toBe(true)
      expect((c.signal.reason as DOMException).name).toBe('AbortError')
    }
    expect(store.writes.length).toBe(writes + 1)
    expect(
      store.writes
        .at(-1)!
        .batch.map(([id]) => id)
        .sort(),
    ).toEqual([a.id, b.id])
    const calls = check.calls.length
    await vi.advanceTimersByTimeAsync(10_000)
    expect(check.calls.length).toBe(calls)
    expect(s.stats()).toMatchObject({ inFlight: 0, targets: 2 })
  })
})
