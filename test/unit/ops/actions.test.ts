import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { ZoneSet } from '../../../src/config/zone-set.ts'
import { ConfigError } from '../../../src/errors.ts'
import { applyAction, mergeOverride, parseDuration, parseTime, resolveTarget } from '../../../src/ops/actions.ts'
import { failoverBudget } from '../../../src/policy/budget.ts'
import { MemoryStore } from '../../../src/state/memory.ts'

const dir = mkdtempSync(join(tmpdir(), 'gslb-ops-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const zone = (name: string, extra = '') => `zone: ${name}
records: |
  @ 3600 SOA ns1 h 1 2 3 4 5
  @ 3600 NS ns1
  ns1 A 192.0.2.1
checks:
  web: { type: tcp, address: 127.0.0.1, port: 9, interval: 4s, timeout: 1s, fall: 3, jitter: 0.1 }
pools:
  eu: { check: web, ttl: 40, endpoints: { eu-1: 192.0.2.11, eu-2: 192.0.2.12, shared: 192.0.2.13 } }
  us: { endpoints: { us-1: 192.0.2.21 } }
services:
  www: { ttl: 30, pools: [eu], chain: [weighted]${extra} }
  all: { pools: [eu, us], chain: [weighted] }
`
writeFileSync(join(dir, 'a.example.yaml'), zone('a.example'))
writeFileSync(join(dir, 'b.example.yaml'), zone('b.example'))
const set = new ZoneSet(dir)
set.reload()
const zones = set.table.zones

describe('resolveTarget', () => {
  it.each([
    ['a.example/eu-1', ['a.example|eu-1']],
    ['b.example/pool:eu', ['b.example|eu-1', 'b.example|eu-2', 'b.example|shared']],
    ['pool:us', ['a.example|us-1', 'b.example|us-1']],
  ])('resolves %s', (target, expected) => {
    expect(resolveTarget(target, zones).sort()).toEqual(expected)
  })

  it.each([
    ['eu-1', 'exists in several zones'],
    ['nope', 'no endpoint "nope"'],
    ['c.example/eu-1', 'no zone c.example'],
    ['pool:ap', 'no pool "ap"'],
  ])('refuses %s with a message saying why', (target, message) => {
    expect(() => resolveTarget(target, zones)).toThrow(message)
  })
})

describe('mergeOverride', () => {
  const req = { target: 'x', who: 'me', why: '' }
  it('keeps other actions fields and drops an override that no longer says anything', () => {
    const drained = mergeOverride(undefined, { ...req, action: 'drain' })
    expect(drained).toEqual({ drain: true })
    const both = mergeOverride(drained, { ...req, action: 'weight', weight: 4 })
    expect(both).toEqual({ drain: true, weight: 4 })
    expect(mergeOverride(both, { ...req, action: 'undrain' })).toEqual({ weight: 4 })
    expect(mergeOverride({ force: 'down' }, { ...req, action: 'unforce' })).toBeUndefined()
  })

  it('rejects a weight outside 0..1000', () => {
    expect(() => mergeOverride(undefined, { ...req, action: 'weight', weight: 1001 })).toThrow(ConfigError)
  })
})

describe('applyAction', () => {
  it('writes overrides and pushed state for every endpoint of a pool, with audit entries', async () => {
    const store = new MemoryStore()
    const done = await applyAction(
      store,
      zones,
      { action: 'drain', target: 'a.example/pool:eu', until: 5000, who: 'ops', why: 'move' },
      1000,
    )
    expect(done).toHaveLength(3)
    const data = await store.load()
    expect(data.overrides.get('a.example|eu-2')).toEqual({ drain: true, until: 5000 })
    await expect(
      applyAction(store, zones, { action: 'push-down', target: 'a.example/eu-1', who: 'hook', why: '' }),
    ).rejects.toThrow('needs an expiry')
    await applyAction(
      store,
      zones,
      { action: 'push-down', target: 'a.example/eu-1', until: 9000, who: 'hook', why: 'alert' },
      1000,
    )
    expect((await store.load()).pushed.get('a.example|eu-1')).toMatchObject({ up: false, until: 9000, source: 'hook' })
    const audit = await store.audit(10)
    expect(audit[0]).toMatchObject({ action: 'push-down', target: 'a.example|eu-1', why: 'alert' })
    expect(audit).toHaveLength(4)
  })
})

describe('durations and times', () => {
  it('parses durations and absolute or relative times', () => {
    expect(parseDuration('90s')).toBe(90_000)
    expect(parseDuration('2h')).toBe(7_200_000)
    expect(parseTime('+10m', 1000)).toBe(601_000)
    expect(parseTime('2026-12-01T02:00:00Z')).toBe(Date.UTC(2026, 11, 1, 2))
    expect(() => parseDuration('soon')).toThrow(ConfigError)
    expect(() => parseTime('tomorrow')).toThrow(ConfigError)
  })
})

describe('failoverBudget', () => {
  it('adds detection (interval with jitter x fall + timeout), propagation and the longest TTL', () => {
    const z = zones.find((x) => x.stateKey === 'a.example')!
    const www = z.services.find((s) => s.config.owner.key.startsWith('\x03www'))!
    const b = failoverBudget(z, www)
    // 4400 ms x 3 + 1000 = 14.2 s; propagation 1.5 s; pool TTL 40 s beats the service's 30 s.
    expect(b.worstMs).toBe(14_200 + 1_500 + 40_000)
    expect(b.detail).toContain('TTL 40s')
  })

  it('says when some endpoint has no check, since it would never be taken out', () => {
    const z = zones.find((x) => x.stateKey === 'a.example')!
    const all = z.services.find((s) => s.config.owner.key.startsWith('\x03all'))!
    const b = failoverBudget(z, all)
    expect(b.worstMs).toBeUndefined()
    expect(b.unchecked).toEqual(['us-1'])
  })
})
