import { describe, expect, it } from 'vitest'
import { MemoryStore } from '../../../src/state/memory.ts'
import { auditEntry, runStateStoreCases } from '../../conformance/state-store.case.ts'

runStateStoreCases('MemoryStore', async () => {
  const store = new MemoryStore()
  const isolated = new MemoryStore()
  return {
    store,
    isolated,
    async cleanup() {
      await store.close()
      await isolated.close()
    },
  }
})

describe('MemoryStore', () => {
  it('keeps only the newest auditLimit entries', async () => {
    const store = new MemoryStore({ auditLimit: 20 })
    for (let i = 0; i < 100; i++) {
      await store.setOverride(
        'example.com|eu-1',
        { weight: i },
        auditEntry('weight', 'example.com|eu-1', { detail: `${i}` }),
      )
    }
    const log = await store.audit(1_000)
    expect(log).toHaveLength(20)
    expect(log[0]?.detail).toBe('99')
    expect(log[19]?.detail).toBe('80')
  })

  it('refuses an audit limit that is not a positive integer', () => {
    expect(() => new MemoryStore({ auditLimit: 0 })).toThrow(/auditLimit/)
  })

  it('reports a throwing change listener and still calls the others', async () => {
    const warnings: string[] = []
    const store = new MemoryStore({ log: { warn: (_obj, msg) => warnings.push(msg) } })
    let called = false
    store.onChange(() => {
      throw new Error('boom')
    })
    store.onChange(() => {
      called = true
    })
    await store.setOverride('example.com|eu-1', { drain: true }, auditEntry('drain', 'example.com|eu-1'))
    await Promise.resolve()
    expect(called).toBe(true)
    expect(warnings).toEqual(['state change listener threw'])
  })

  it('never reports a connection change', () => {
    const store = new MemoryStore()
    expect(store.connected).toBe(true)
    expect(store.kind).toBe('memory')
  })

  it('stops notifying after close', async () => {
    const store = new MemoryStore()
    let calls = 0
    store.onChange(() => {
      calls++
    })
    const write = store.setOverride('example.com|eu-1', { drain: true }, auditEntry('drain', 'example.com|eu-1'))
    await store.close()
    await write
    await new Promise((resolve) => setTimeout(resolve, 10))
    expect(calls).toBe(0)
  })
})
