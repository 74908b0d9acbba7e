import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { owned, owner, ProberMembership } from '../../../src/probe/sharding.ts'
import type { CheckResult, ProbeTarget } from '../../../src/probe/types.ts'
import { type Prober, startProber } from '../../../src/probe/worker.ts'
import { MemoryStore } from '../../../src/state/memory.ts'
import type { TargetId } from '../../../src/state/types.ts'

function target(endpoint: string): ProbeTarget {
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
      rise: 1,
      fall: 1,
      address: undefined,
      port: 80,
    },
  }
}

const TARGETS = Array.from({ length: 3000 }, (_, i) => target(`ep-${i}`))
const ids = (ts: readonly ProbeTarget[]) => ts.map((t) => t.id)

function makeLog() {
  return { info: vi.fn(), warn: vi.fn(), error: vi.fn() }
}

describe('rendezvous sharding', () => {
  it('gives each target to exactly one live prober, in a fair share', () => {
    const probers = ['p-a', 'p-b', 'p-c', 'p-d']
    const shares = probers.map((p) => owned(TARGETS, probers, p))
    const seen = new Map<TargetId, number>()
    for (const share of shares) for (const t of share) seen.set(t.id, (seen.get(t.id) ?? 0) + 1)
    expect(seen.size).toBe(TARGETS.length)
    expect([...seen.values()].every((n) => n === 1)).toBe(true)
    for (const share of shares) {
      expect(share.length).toBeGreaterThan(750 * 0.85)
      expect(share.length).toBeLessThan(750 * 1.15)
    }
  })

  it('moves only the leaving prober’s targets when one of N leaves', () => {
    const before = ['p1', 'p2', 'p3', 'p4', 'p5']
    const after = before.filter((p) => p !== 'p3')
    let moved = 0
    for (const t of TARGETS) {
      const was = owner(t.id, before)
      const is = owner(t.id, after)
      if (was === 'p3') {
        moved++
        expect(is).not.toBe('p3')
      } else expect(is).toBe(was)
    }
    expect(moved).toBeGreaterThan(0)
  })

  it('moves only targets to a joining prober', () => {
    const before = ['p1', 'p2', 'p3']
    const after = [...before, 'p4']
    for (const t of TARGETS) {
      const is = owner(t.id, after)
      if (is !== 'p4') expect(is).toBe(owner(t.id, before))
    }
  })

  it('does not depend on the order of the prober list', () => {
    for (const t of TARGETS.slice(0, 200)) expect(owner(t.id, ['x', 'y', 'z'])).toBe(owner(t.id, ['z', 'x', 'y']))
  })

  it('counts itself in when its own heartbeat is missing from the list', () => {
    const mine = owned(TARGETS, ['p1', 'p2'], 'p3')
    expect(ids(mine)).toEqual(ids(owned(TARGETS, ['p1', 'p2', 'p3'], 'p3')))
    expect(owned(TARGETS, [], 'solo')).toHaveLength(TARGETS.length)
  })
})

describe('ProberMembership', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 1_700_000_000_000 })
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  it('reports joins, graceful leaves and crashed probers within about one TTL', async () => {
    const store = new MemoryStore()
    const seenByA: string[][] = []
    const a = new ProberMembership({
      store,
      vantage: 'eu',
      self: 'a',
      ttlMs: 3000,
      onChange: (live) => seenByA.push([...live]),
    })
    const mk = (self: string) => new ProberMembership({ store, vantage: 'eu', self, ttlMs: 3000, onChange: () => {} })
    expect(await a.start()).toEqual(['a'])
    const b = mk('b')
    const c = mk('c')
    expect(await b.start()).toEqual(['a', 'b'])
    await c.start()
    // a learns of b and c at its next heartbeat, a third of the TTL later.
    await vi.advanceTimersByTimeAsync(1000)
    expect(a.live).toEqual(['a', 'b', 'c'])
    expect(seenByA).toEqual([['a', 'b', 'c']])

    // b leaves cleanly: gone at a's next heartbeat.
    await b.stop()
    await vi.advanceTimersByTimeAsync(1000)
    expect(a.live).toEqual(['a', 'c'])

    // c crashes (no leave): gone once its TTL runs out, at most TTL + one heartbeat later.
    await c.stop(false)
    await vi.advanceTimersByTimeAsync(2900)
    expect(a.live).toContain('c')
    await vi.advanceTimersByTimeAsync(1100)
    expect(a.live).toEqual(['a'])
    expect(seenByA).toEqual([['a', 'b', 'c'], ['a', 'c'], ['a']])
    await a.stop()
  })

  it('keeps the last known list while heartbeats fail, logging once per outage', async () => {
    const log = makeLog()
    let down = false
    let beats = 0
    const store = {
      async proberHeartbeat(): Promise<string[]> {
        beats++
        if (down) throw new Error('store down')
        return ['a', 'b']
      },
    }
    const changes: string[][] = []
    const a = new ProberMembership({
      store,
      vantage: 'eu',
      self: 'a',
      ttlMs: 300,
      log,
      onChange: (l) => changes.push([...l]),
    })
    await a.start()
    expect(a.live).toEqual(['a', 'b'])
    down = true
    await vi.advanceTimersByTimeAsync(1000)
    expect(beats).toBeGreaterThan(5)
    expect(a.live).toEqual(['a', 'b'])
    expect(log.warn).toHaveBeenCalledTimes(1)
    down = false
    await vi.advanceTimersByTimeAsync(100)
    expect(log.info).toHaveBeenCalledTimes(1)
    expect(changes).toEqual([['a', 'b']])
    await a.stop(false)
    const after = beats
    await vi.advanceTimersByTimeAsync(1000)
    expect(beats).toBe(after)
  })

  it('never sends two heartbeats at once to a slow store', async () => {
    let inFlight = 0
    let most = 0
    const store = {
      proberHeartbeat: (): Promise<string[]> => {
        inFlight++
        most = Math.max(most, inFlight)
        return new Promise((resolve) =>
          setTimeout(() => {
            inFlight--
            resolve(['a'])
          }, 250),
        )
      },
    }
    const a = new ProberMembership({ store, vantage: 'eu', self: 'a', ttlMs: 300, onChange: () => {} })
    const started = a.start()
    await vi.advanceTimersByTimeAsync(250)
    await started
    void a.beat()
    void a.beat()
    await vi.advanceTimersByTimeAsync(2000)
    expect(most).toBe(1)
    await a.stop(false)
    await vi.advanceTimersByTimeAsync(300)
  })
})

describe('startProber', () => {
  const OK: CheckResult = { ok: true, latencyMs: 1, error: undefined, load: undefined }
  let probers: Prober[]

  beforeEach(() => {
    vi.useFakeTimers({ now: 1_700_000_000_000 })
    probers = []
  })
  afterEach(async () => {
    for (const p of probers) await p.stop()
    vi.useRealTimers()
  })

  it('splits the targets between probers and hands a stopped prober’s share to the others', async () => {
    const store = new MemoryStore()
    const targets = TARGETS.slice(0, 300)
    const probed = new Map<string, Set<TargetId>>()
    const start = (name: string) => {
      const seen = new Set<TargetId>()
      probed.set(name, seen)
      const p = startProber({
        targets: () => targets,
        store,
        vantage: 'eu',
        prober: name,
        heartbeatMs: 1000,
        log: makeLog(),
        run: async (t) => {
          seen.add(t.id)
          return OK
        },
      })
      probers.push(p)
      return p
    }
    const a = start('a')
    const b = start('b')
    const c = start('c')
    await vi.advanceTimersByTimeAsync(1100)
    for (const p of [a, b, c]) expect(p.stats()).toMatchObject({ probers: 3, allTargets: 300 })
    expect(a.stats().targets + b.stats().targets + c.stats().targets).toBe(300)

    for (const s of probed.values()) s.clear()
    await vi.advanceTimersByTimeAsync(2000)
    const shares = [...probed.values()]
    expect(shares.reduce((n, s) => n + s.size, 0)).toBe(300)
    for (const id of ids(targets)) expect(shares.filter((s) => s.has(id))).toHaveLength(1)

    const stoppedAt = Date.now()
    await b.stop()
    probers.splice(probers.indexOf(b), 1)
    // a and c see b gone at their next heartbeat and pick up its targets within an interval.
    await vi.advanceTimersByTimeAsync(1000)
    expect(a.stats().probers).toBe(2)
    expect(a.stats().targets + c.stats().targets).toBe(300)
    probed.get('a')!.clear()
    probed.get('c')!.clear()
    await vi.advanceTimersByTimeAsync(1200)
    expect(probed.get('a')!.size + probed.get('c')!.size).toBe(300)

    // Every report now comes from a live prober, and b's targets carried their UP state over
    // (their `since` predates the hand-over) instead of starting again from unknown.
    await vi.advanceTimersByTimeAsync(300)
    const reports = (await store.load()).probes.get('eu')!
    expect(reports.size).toBe(300)
    for (const r of reports.values()) {
      expect(r.prober).not.toBe('b')
      expect(r.up).toBe(true)
      expect(r.since).toBeLessThan(stoppedAt)
    }
  })

  it('reload() reads the targets again and re-shards', async () => {
    const store = new MemoryStore()
    let targets = TARGETS.slice(0, 10)
    const p = startProber({
      targets: () => targets,
      store,
      vantage: 'eu',
      prober: 'solo',
      log: makeLog(),
      run: async () => OK,
    })
    probers.push(p)
    await vi.advanceTimersByTimeAsync(10)
    expect(p.stats().targets).toBe(10)
    targets = TARGETS.slice(5, 25)
    await p.reshard()
    expect(p.stats().targets).toBe(10)
    await p.reload()
    expect(p.stats()).toMatchObject({ targets: 20, allTargets: 20 })
  })
})
