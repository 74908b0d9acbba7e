/**
 * What every StateStore does, whatever it stores in (hono's common.case.test.ts pattern): the
 * memory store's and the Redis store's test files both call `runStateStoreCases`; vitest only
 * collects `*.test.ts`, so this file never runs alone. Expiry is tested with real time and short
 * ttls (tens of ms), so the suite stays fast.
 */

import { setTimeout as sleep } from 'node:timers/promises'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { AuditEntry, InstanceInfo, ProbeStatus, StateStore, TargetId } from '../../src/state/types.ts'

export interface StoreFixture {
  readonly store: StateStore
  /** Another instance on the same backend (a second DNS instance); defaults to `store`. */
  readonly peer?: StateStore
  /** A store on the same backend that must share nothing with `store` (another key prefix). */
  readonly isolated?: StateStore
  cleanup(): Promise<void>
}

export function probeStatus(fields: Partial<ProbeStatus> = {}): ProbeStatus {
  const now = Date.now()
  return {
    up: true,
    since: now - 60_000,
    rttMs: 12.5,
    lastRttMs: 11,
    error: undefined,
    load: 0.25,
    at: now,
    expiresAt: now + 60_000,
    prober: 'eu-central-1',
    ...fields,
  }
}

export function auditEntry(action: string, target: TargetId, fields: Partial<AuditEntry> = {}): AuditEntry {
  return { at: Date.now(), who: 'alice@ops-1', action, target, detail: '', why: 'maintenance', ...fields }
}

export function instanceInfo(id: string, fields: Partial<InstanceInfo> = {}): InstanceInfo {
  return { id, host: `${id}.dns.test`, generation: 3, staleMs: 0, version: '0.1.0', at: Date.now(), ...fields }
}

/** Polls `check` until it holds or `timeoutMs` passes; returns whether it held. */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 1_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await check()) return true
    if (Date.now() > deadline) return false
    await sleep(10)
  }
}

/** Long enough that a loaded CI machine reads an entry before it expires, short enough to keep the suite fast. */
const SHORT_TTL_MS = 150

const EU1 = 'example.com|eu-1'
const EU2 = 'example.com|eu-2'
const US1 = 'example.com|us-1'

export function runStateStoreCases(name: string, make: () => Promise<StoreFixture>): void {
  describe(`${name} (StateStore conformance)`, () => {
    let fx: StoreFixture
    let store: StateStore
    let peer: StateStore

    beforeEach(async () => {
      fx = await make()
      store = fx.store
      peer = fx.peer ?? fx.store
    })
    afterEach(async () => {
      await fx.cleanup()
    })

    it('a fresh store is connected and loads empty state at generation 0', async () => {
      expect(store.connected).toBe(true)
      const data = await store.load()
      expect(data.probes.size).toBe(0)
      expect(data.overrides.size).toBe(0)
      expect(data.pushed.size).toBe(0)
      expect(data.generation).toBe(0)
      expect(await store.audit(10)).toEqual([])
      expect(await store.instances()).toEqual([])
    })

    it('probe reports load back unchanged, per vantage and target', async () => {
      const eu1 = probeStatus({ rttMs: 3.25, load: undefined })
      const eu2 = probeStatus({ up: false, error: 'connect ECONNREFUSED', rttMs: undefined, lastRttMs: undefined })
      const us = probeStatus({ prober: 'us-east-1', rttMs: 80 })
      await store.writeProbes('eu-central', [
        [EU1, eu1],
        [EU2, eu2],
      ])
      await store.writeProbes('us-east', [[US1, us]])
      const data = await peer.load()
      expect([...data.probes.keys()].sort()).toEqual(['eu-central', 'us-east'])
      expect(data.probes.get('eu-central')?.get(EU1)).toEqual(eu1)
      expect(data.probes.get('eu-central')?.get(EU2)).toEqual(eu2)
      expect(data.probes.get('us-east')?.get(US1)).toEqual(us)
    })

    it('a later probe write replaces only the targets it reports', async () => {
      await store.writeProbes('eu-central', [
        [EU1, probeStatus()],
        [EU2, probeStatus()],
      ])
      const down = probeStatus({ up: false, error: 'timeout' })
      await store.writeProbes('eu-central', [[EU2, down]])
      const vantage = (await store.load()).probes.get('eu-central')
      expect(vantage?.get(EU1)?.up).toBe(true)
      expect(vantage?.get(EU2)).toEqual(down)
    })

    it('an empty probe write changes nothing', async () => {
      await store.writeProbes('eu-central', [])
      const data = await store.load()
      expect(data.probes.size).toBe(0)
      expect(data.generation).toBe(0)
    })

    it('every write increases the generation and equal generations load equal views', async () => {
      const g0 = (await store.load()).generation
      await store.writeProbes('eu-central', [[EU1, probeStatus()]])
      const g1 = (await store.load()).generation
      await store.setOverride(EU1, { drain: true }, auditEntry('drain', EU1))
      const g2 = (await store.load()).generation
      await store.pushState(
        EU2,
        { up: false, until: Date.now() + 60_000, source: 'alertmanager' },
        auditEntry('push', EU2),
      )
      const a = await store.load()
      const b = await peer.load()
      expect(g1).toBeGreaterThan(g0)
      expect(g2).toBeGreaterThan(g1)
      expect(a.generation).toBeGreaterThan(g2)
      expect(b).toEqual(a)
    })

    it('keeps the generation when probe reports are only refreshed, and moves it when health changes', async () => {
      await store.writeProbes('eu-central', [[EU1, probeStatus({ up: true })]])
      const g1 = (await store.load()).generation
      await store.writeProbes('eu-central', [[EU1, probeStatus({ up: true, at: Date.now() + 1 })]])
      const refreshed = await store.load()
      expect(refreshed.generation).toBe(g1)
      expect(refreshed.probes.get('eu-central')?.get(EU1)?.at).toBeGreaterThan(0)
      await store.writeProbes('eu-central', [[EU1, probeStatus({ up: false })]])
      expect((await store.load()).generation).toBeGreaterThan(g1)
    })

    it('a loaded view does not change when the store is written afterwards', async () => {
      await store.writeProbes('eu-central', [[EU1, probeStatus()]])
      await store.setOverride(EU1, { weight: 5 }, auditEntry('weight', EU1))
      const before = await store.load()
      await store.writeProbes('eu-central', [[EU2, probeStatus()]])
      await store.writeProbes('us-east', [[US1, probeStatus()]])
      await store.setOverride(EU2, { drain: true }, auditEntry('drain', EU2))
      expect(before.probes.size).toBe(1)
      expect(before.probes.get('eu-central')?.size).toBe(1)
      expect(before.overrides.size).toBe(1)
    })

    it('probe reports past expiresAt are not loaded', async () => {
      const now = Date.now()
      await store.writeProbes('eu-central', [
        [EU1, probeStatus({ at: now, expiresAt: now + SHORT_TTL_MS })],
        [EU2, probeStatus({ at: now, expiresAt: now + 60_000 })],
      ])
      await store.writeProbes('ap-south', [[US1, probeStatus({ at: now, expiresAt: now + SHORT_TTL_MS })]])
      expect((await store.load()).probes.get('eu-central')?.size).toBe(2)
      await sleep(SHORT_TTL_MS + 30)
      const data = await store.load()
      expect([...(data.probes.get('eu-central')?.keys() ?? [])]).toEqual([EU2])
      expect(data.probes.has('ap-south')).toBe(false)
    })

    it('an override is set, replaced and cleared, with an audit entry for each, newest first', async () => {
      await store.setOverride(EU1, { drain: true }, auditEntry('drain', EU1, { at: 1_000 }))
      expect((await peer.load()).overrides.get(EU1)).toEqual({ drain: true })

      const weighted = { weight: 7, force: 'up', from: 1_000, until: Date.now() + 60_000 } as const
      await store.setOverride(EU1, weighted, auditEntry('weight', EU1, { at: 2_000, detail: 'weight=7' }))
      expect((await peer.load()).overrides.get(EU1)).toEqual(weighted)

      await store.setOverride(EU1, undefined, auditEntry('undrain', EU1, { at: 3_000, who: 'bob@ops-2', why: '' }))
      expect((await peer.load()).overrides.has(EU1)).toBe(false)

      const log = await peer.audit(10)
      expect(log.map((e) => e.action)).toEqual(['undrain', 'weight', 'drain'])
      expect(log[0]).toEqual(auditEntry('undrain', EU1, { at: 3_000, who: 'bob@ops-2', why: '' }))
      expect(log[1]).toEqual(auditEntry('weight', EU1, { at: 2_000, detail: 'weight=7' }))
    })

    it('overrides of different targets are independent', async () => {
      await store.setOverride(EU1, { drain: true }, auditEntry('drain', EU1))
      await store.setOverride(EU2, { force: 'down' }, auditEntry('force-down', EU2))
      await store.setOverride(EU1, undefined, auditEntry('undrain', EU1))
      const { overrides } = await store.load()
      expect([...overrides]).toEqual([[EU2, { force: 'down' }]])
    })

    it('an override past its until is returned as stored; the reader decides', async () => {
      const expired = { drain: true, until: Date.now() - 1_000 }
      await store.setOverride(EU1, expired, auditEntry('drain', EU1))
      expect((await store.load()).overrides.get(EU1)).toEqual(expired)
    })

    it('pushed state is stored and cleared with audit entries', async () => {
      const state = { up: false, until: Date.now() + 30_000, source: 'alertmanager', reason: 'HighErrorRate' }
      await store.pushState(US1, state, auditEntry('push', US1, { who: 'alertmanager' }))
      expect((await peer.load()).pushed.get(US1)).toEqual(state)
      const noReason = { up: true, until: Date.now() + 30_000, source: 'cli' }
      await store.pushState(US1, noReason, auditEntry('push', US1))
      expect((await peer.load()).pushed.get(US1)).toEqual(noReason)
      await store.pushState(US1, undefined, auditEntry('unpush', US1))
      expect((await peer.load()).pushed.size).toBe(0)
      expect((await store.audit(2)).map((e) => e.action)).toEqual(['unpush', 'push'])
    })

    it('audit returns at most limit entries and nothing for a limit of 0', async () => {
      for (let i = 0; i < 5; i++)
        await store.setOverride(EU1, { weight: i }, auditEntry('weight', EU1, { detail: `${i}` }))
      expect((await store.audit(3)).map((e) => e.detail)).toEqual(['4', '3', '2'])
      expect(await store.audit(0)).toEqual([])
      expect(await store.audit(100)).toHaveLength(5)
    })

    it('a write by another instance triggers onChange within one second', async () => {
      let calls = 0
      const off = store.onChange(() => {
        calls++
      })
      await peer.setOverride(EU1, { drain: true }, auditEntry('drain', EU1))
      expect(await eventually(() => calls >= 1, 1_000)).toBe(true)
      const seen = calls
      await peer.writeProbes('eu-central', [[EU1, probeStatus()]])
      expect(await eventually(() => calls > seen, 1_000)).toBe(true)
      expect((await store.load()).probes.get('eu-central')?.has(EU1)).toBe(true)
      off()
      const after = calls
      await peer.pushState(EU2, { up: true, until: Date.now() + 1_000, source: 'cli' }, auditEntry('push', EU2))
      await sleep(100)
      expect(calls).toBe(after)
    })

    it('onChange is called asynchronously, never inside the writer', async () => {
      let called = false
      const off = store.onChange(() => {
        called = true
      })
      const write = store.setOverride(EU1, { drain: true }, auditEntry('drain', EU1))
      expect(called).toBe(false)
      await write
      expect(await eventually(() => called)).toBe(true)
      off()
    })

    it('prober heartbeats return the live probers of the vantage, sorted, and drop those whose ttl ran out', async () => {
      expect(await store.proberHeartbeat('eu-central', 'prober-b', 60_000)).toEqual(['prober-b'])
      expect(await peer.proberHeartbeat('eu-central', 'prober-a', 60_000)).toEqual(['prober-a', 'prober-b'])
      expect(await store.proberHeartbeat('us-east', 'prober-z', 60_000)).toEqual(['prober-z'])
      expect(await store.proberHeartbeat('eu-central', 'prober-c', SHORT_TTL_MS)).toEqual([
        'prober-a',
        'prober-b',
        'prober-c',
      ])
      await sleep(SHORT_TTL_MS + 30)
      expect(await store.proberHeartbeat('eu-central', 'prober-b', 60_000)).toEqual(['prober-a', 'prober-b'])
      // A heartbeat brings a prober back.
      expect(await store.proberHeartbeat('eu-central', 'prober-c', 60_000)).toEqual([
        'prober-a',
        'prober-b',
        'prober-c',
      ])
    })

    it('instance heartbeats are listed until their ttl runs out', async () => {
      const a = instanceInfo('dns-a', { generation: 7, staleMs: 120 })
      const b = instanceInfo('dns-b')
      await store.instanceHeartbeat(b, 60_000)
      await peer.instanceHeartbeat(a, SHORT_TTL_MS)
      expect(await store.instances()).toEqual([a, b])
      await sleep(SHORT_TTL_MS + 30)
      expect(await peer.instances()).toEqual([b])
      const b2 = instanceInfo('dns-b', { generation: 8 })
      await peer.instanceHeartbeat(b2, 60_000)
      expect(await store.instances()).toEqual([b2])
    })

    it('stores on different prefixes share nothing', async (ctx) => {
      const other = fx.isolated
      if (other === undefined) {
        ctx.skip()
        return
      }
      let otherCalls = 0
      const off = other.onChange(() => {
        otherCalls++
      })
      await store.writeProbes('eu-central', [[EU1, probeStatus()]])
      await store.setOverride(EU1, { drain: true }, auditEntry('drain', EU1))
      await store.pushState(EU1, { up: false, until: Date.now() + 1_000, source: 'cli' }, auditEntry('push', EU1))
      await store.proberHeartbeat('eu-central', 'prober-a', 60_000)
      await store.instanceHeartbeat(instanceInfo('dns-a'), 60_000)
      await sleep(100)
      const data = await other.load()
      expect(data.probes.size).toBe(0)
      expect(data.overrides.size).toBe(0)
      expect(data.pushed.size).toBe(0)
      expect(data.generation).toBe(0)
      expect(await other.audit(10)).toEqual([])
      expect(await other.instances()).toEqual([])
      expect(await other.proberHeartbeat('eu-central', 'prober-x', 60_000)).toEqual(['prober-x'])
      expect(otherCalls).toBe(0)
      off()
    })
  })
}
