/**
 * HealthSync's stale limit: a connected store that is merely quiet (no change signals) never makes
 * the view stale; an unreachable store does after `staleAfterMs`, and so does a reachable one whose
 * reads keep failing for that long. Ticks run every second, so each case takes a few seconds.
 */

import { Writable } from 'node:stream'
import pino from 'pino'
import { describe, expect, it } from 'vitest'
import { ALL_UP, HealthStore } from '../../../src/health/state.ts'
import { HealthSync } from '../../../src/health/sync.ts'
import { MemoryStore } from '../../../src/state/memory.ts'
import type { StateStore } from '../../../src/state/types.ts'

/** A memory store whose reachability and reads the test controls. */
function controlled(): { store: StateStore; set: (s: { connected?: boolean; failing?: boolean }) => void } {
  const mem = new MemoryStore()
  let connected = true
  let failing = false
  const store = new Proxy(mem, {
    get(target, key) {
      if (key === 'connected') return connected
      if (key === 'kind') return 'memory'
      if (key === 'load' && failing) return () => Promise.reject(new Error('read failed'))
      const v = Reflect.get(target, key) as unknown
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v
    },
  }) as unknown as StateStore
  return {
    store,
    set(s) {
      if (s.connected !== undefined) connected = s.connected
      if (s.failing !== undefined) failing = s.failing
    },
  }
}

async function run(
  staleAfterMs: number,
  during: (c: ReturnType<typeof controlled>) => void,
  waitMs: number,
): Promise<{ failedOpen: boolean; messages: string[] }> {
  const messages: string[] = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      messages.push(String(JSON.parse(chunk.toString()).msg))
      done()
    },
  })
  const log = pino({ level: 'info' }, sink)
  const c = controlled()
  const health = new HealthStore()
  const sync = new HealthSync(
    c.store,
    health,
    () => [],
    { quorum: 'majority', slowStartMs: 0, staleAfterMs, staleMode: 'fail-open', instanceId: 'test', version: '0' },
    log,
  )
  await sync.start()
  expect(health.current).not.toBe(ALL_UP)
  during(c)
  await new Promise((r) => setTimeout(r, waitMs))
  sync.stop()
  return { failedOpen: health.current === ALL_UP, messages }
}

const FAIL_OPEN = 'health view too stale; failing open (every endpoint counts as up)'

describe('HealthSync stale limit', () => {
  it('keeps a connected, quiet store fresh however short the limit', async () => {
    const r = await run(300, () => {}, 3_300)
    expect(r.messages).not.toContain(FAIL_OPEN)
    expect(r.failedOpen).toBe(false)
  }, 10_000)

  it('fails open once an unreachable store has not been read for the limit', async () => {
    const r = await run(300, (c) => c.set({ connected: false }), 2_300)
    expect(r.messages).toContain(FAIL_OPEN)
    expect(r.failedOpen).toBe(true)
  }, 10_000)

  it('fails open when a reachable store keeps failing its reads for the limit', async () => {
    const r = await run(400, (c) => c.set({ failing: true }), 3_300)
    expect(r.messages).toContain(FAIL_OPEN)
    expect(r.failedOpen).toBe(true)
  }, 10_000)
})
