import { afterEach, describe, expect, it } from 'vitest'
import { HealthStore } from '../../../src/health/state.ts'
import { createLogger } from '../../../src/log.ts'
import { type AdminServer, type Readiness, startAdmin } from '../../../src/ops/admin.ts'
import { readiness } from '../../../src/serve.ts'
import { MemoryStore } from '../../../src/state/memory.ts'
import { EMPTY_TABLE } from '../../../src/zone/table.ts'

describe('readiness', () => {
  it.each([
    ['no zone loaded', 0, 'memory', false, 0, { ready: false, reason: 'no zone loaded' }],
    ['zones, memory store', 2, 'memory', false, Number.POSITIVE_INFINITY, { ready: true }],
    ['zones, fresh Redis view', 2, 'redis', false, 1_000, { ready: true }],
    ['zones, Redis view at the limit', 2, 'redis', false, 300_000, { ready: true }],
    // HealthSync's verdict decides: connected to a quiet store, a view not read for longer than the
    // limit is still current.
    ['zones, Redis connected and quiet past the limit', 2, 'redis', false, 301_000, { ready: true }],
    [
      'zones, Redis view too old',
      2,
      'redis',
      true,
      301_000,
      { ready: false, reason: 'health view is 301s old, over the 300s stale limit' },
    ],
    [
      'zones, Redis never read',
      2,
      'redis',
      false,
      Number.POSITIVE_INFINITY,
      { ready: false, reason: 'health view never read from the state store' },
    ],
  ] as const)('%s', (_what, zones, store, stale, staleMs, expected) => {
    expect(readiness(zones, store, stale, staleMs, 300_000)).toEqual(expected)
  })
})

describe('admin /readyz and /metrics', () => {
  let admin: AdminServer | undefined
  afterEach(async () => {
    await admin?.close()
    admin = undefined
  })

  const start = (ready: () => Readiness, withMetrics: boolean) =>
    startAdmin({
      host: '127.0.0.1',
      port: 0,
      token: undefined,
      store: new MemoryStore(),
      health: new HealthStore(),
      table: () => EMPTY_TABLE,
      geo: undefined,
      quorum: 'majority',
      log: createLogger('silent'),
      ready,
      ...(withMetrics
        ? { metrics: async () => ({ contentType: 'text/plain; version=0.0.4; charset=utf-8', text: 'x_total 1\n' }) }
        : {}),
    })

  it('answers 503 with the reason while not ready, 200 once ready', async () => {
    let state: Readiness = { ready: false, reason: 'no zone loaded' }
    admin = await start(() => state, true)
    const url = `http://127.0.0.1:${admin.port}/readyz`
    const notReady = await fetch(url)
    expect(notReady.status).toBe(503)
    expect(await notReady.json()).toEqual({ ready: false, reason: 'no zone loaded' })
    state = { ready: true }
    expect((await fetch(url)).status).toBe(200)
    const m = await fetch(`http://127.0.0.1:${admin.port}/metrics`)
    expect(m.status).toBe(200)
    expect(await m.text()).toBe('x_total 1\n')
  })

  it('has no /metrics route without metrics', async () => {
    admin = await start(() => ({ ready: true }), false)
    expect((await fetch(`http://127.0.0.1:${admin.port}/metrics`)).status).toBe(404)
  })
})
