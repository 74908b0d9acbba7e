import { runInNewContext } from 'node:vm'
import { describe, expect, it } from 'vitest'
import { compactHeap } from '../../../src/ops/heap.ts'

describe('compactHeap', () => {
  it('runs a full collection that frees dropped garbage, and leaves gc unexposed', () => {
    let garbage: number[][] | undefined = Array.from({ length: 200 }, () => Array.from({ length: 25_000 }, (_, i) => i))
    const held = process.memoryUsage().heapUsed
    expect(garbage.length).toBe(200)
    garbage = undefined
    const ms = compactHeap()
    expect(ms).toBeGreaterThan(0)
    // ~40 MB of arrays were dropped; a full collection must give most of it back.
    expect(held - process.memoryUsage().heapUsed).toBeGreaterThan(20 * 1024 * 1024)
    expect(runInNewContext('typeof gc')).toBe('undefined')
  })
})
