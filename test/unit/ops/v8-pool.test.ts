/**
 * ops/v8-pool: when `gslb serve` re-executes itself to size V8's worker pool, and with what.
 */

import { describe, expect, it } from 'vitest'
import { chosenPoolSize, DEFAULT_V8_POOL, poolReexecArgs } from '../../../src/ops/v8-pool.ts'

const argv = ['/usr/bin/node', '/app/src/cli.ts', 'serve', '--zones', 'zones']

describe('chosenPoolSize', () => {
  it('reads --v8-pool-size from the command line or NODE_OPTIONS, the command line last', () => {
    expect(chosenPoolSize([], undefined)).toBeUndefined()
    expect(chosenPoolSize(['--v8-pool-size=2'], undefined)).toBe(2)
    expect(chosenPoolSize(['--v8-pool-size', '3'], undefined)).toBe(3)
    expect(chosenPoolSize([], '--max-old-space-size=512 --v8-pool-size=1')).toBe(1)
    expect(chosenPoolSize(['--v8-pool-size=2'], '--v8-pool-size=1')).toBe(2)
    expect(chosenPoolSize(['--v8-pool-size=x'], undefined)).toBeUndefined()
    expect(chosenPoolSize(['--v8-pool-size=0'], undefined)).toBe(0)
  })
})

describe('poolReexecArgs', () => {
  it('re-executes with the pool sized to the CPUs, keeping node flags and arguments in order', () => {
    expect(poolReexecArgs({ execArgv: ['--enable-source-maps'], argv, nodeOptions: undefined, cpus: 1 })).toEqual([
      '/usr/bin/node',
      '--v8-pool-size=1',
      '--enable-source-maps',
      '/app/src/cli.ts',
      'serve',
      '--zones',
      'zones',
    ])
    expect(poolReexecArgs({ execArgv: [], argv, nodeOptions: undefined, cpus: 3 })?.[1]).toBe('--v8-pool-size=3')
  })

  it('carries on when the CPUs cover the default pool, or a size was chosen (so never twice)', () => {
    expect(poolReexecArgs({ execArgv: [], argv, nodeOptions: undefined, cpus: DEFAULT_V8_POOL })).toBeUndefined()
    expect(poolReexecArgs({ execArgv: [], argv, nodeOptions: undefined, cpus: 16 })).toBeUndefined()
    const once = poolReexecArgs({ execArgv: [], argv, nodeOptions: undefined, cpus: 2 })!
    expect(poolReexecArgs({ execArgv: once.slice(1, 2), argv, nodeOptions: undefined, cpus: 2 })).toBeUndefined()
    expect(poolReexecArgs({ execArgv: [], argv, nodeOptions: '--v8-pool-size=4', cpus: 1 })).toBeUndefined()
  })
})
