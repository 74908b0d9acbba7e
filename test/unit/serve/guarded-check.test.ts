import { describe, expect, it } from 'vitest'
import { ConfigError } from '../../../src/errors.ts'
import type { ProbeTarget } from '../../../src/probe/types.ts'
import { guardedCheck } from '../../../src/serve.ts'

const target = (address: string): ProbeTarget => ({
  id: 'example.com|t',
  zone: 'example.com',
  endpoint: 't',
  address,
  check: {
    kind: 'tcp',
    name: 'c',
    intervalMs: 1000,
    jitter: 0,
    timeoutMs: 200,
    rise: 1,
    fall: 1,
    address: undefined,
    port: 9,
  },
})

describe('guardedCheck', () => {
  it('refuses targets in an operator deny list without sending anything', async () => {
    const run = guardedCheck([], ['127.0.0.0/8'])
    const r = await run(target('127.0.0.1'), AbortSignal.timeout(1000))
    expect(r.ok).toBe(false)
    expect(r.error).toMatch(/refused by probe guard/)
  })

  it('keeps the built-in denials (cloud metadata) whatever the operator allows elsewhere', async () => {
    const run = guardedCheck(['10.0.0.0/8'], [])
    const r = await run(target('169.254.169.254'), AbortSignal.timeout(1000))
    expect(r.error).toMatch(/refused by probe guard/)
  })

  it('rejects a malformed CIDR at startup', () => {
    expect(() => guardedCheck([], ['10.0.0.0/33'])).toThrow(ConfigError)
  })
})
