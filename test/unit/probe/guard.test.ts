/**
 * DestinationGuard verdicts as a table, plus the proof that `runCheck` sends nothing to a refused
 * target: a real listener on loopback is denied and must never see a connection.
 */

import { type AddressInfo, createServer } from 'node:net'
import { describe, expect, it } from 'vitest'
import { ConfigError } from '../../../src/errors.ts'
import { runCheck } from '../../../src/probe/checks/index.ts'
import { DestinationGuard, type GuardOptions } from '../../../src/probe/guard.ts'
import type { ProbeTarget } from '../../../src/probe/types.ts'

interface Case {
  readonly name: string
  readonly options?: GuardOptions
  readonly address: string
  /** undefined: allowed; a string: the refusal must contain it. */
  readonly refused: string | undefined
}

const cases: Case[] = [
  { name: 'an ordinary public address is allowed by default', address: '198.51.100.7', refused: undefined },
  { name: 'loopback is allowed by default', address: '127.0.0.1', refused: undefined },
  { name: 'IPv6 loopback is allowed by default', address: '::1', refused: undefined },
  { name: 'the AWS/GCP/Azure metadata address is refused', address: '169.254.169.254', refused: 'cloud metadata' },
  { name: 'the AWS IPv6 metadata address is refused', address: 'fd00:ec2::254', refused: 'cloud metadata' },
  { name: 'the Alibaba metadata address is refused', address: '100.100.100.200', refused: 'cloud metadata' },
  { name: 'IPv4 link-local is refused', address: '169.254.10.1', refused: '169.254.0.0/16 (link-local)' },
  { name: 'IPv6 link-local is refused', address: 'fe80::1', refused: 'fe80::/10 (link-local)' },
  { name: 'the IPv4 unspecified address is refused', address: '0.0.0.0', refused: 'unspecified' },
  { name: 'the IPv6 unspecified address is refused', address: '::', refused: 'unspecified' },
  { name: 'IPv4 multicast is refused', address: '239.1.2.3', refused: 'multicast' },
  { name: 'IPv6 multicast is refused', address: 'ff02::1', refused: 'multicast' },
  { name: 'the broadcast address is refused', address: '255.255.255.255', refused: 'broadcast' },
  {
    name: 'an IPv4-mapped IPv6 form of a metadata address is refused like the IPv4 one',
    address: '::ffff:169.254.169.254',
    refused: 'cloud metadata',
  },
  {
    name: 'a host name is refused, since resolving it would bypass the guard',
    address: 'metadata.google.internal',
    refused: 'not an IP address',
  },
  {
    name: 'an operator deny entry refuses its range',
    options: { deny: ['10.0.0.0/8'] },
    address: '10.1.2.3',
    refused: 'denied 10.0.0.0/8',
  },
  {
    name: 'a more specific allow entry beats a broader deny',
    options: { deny: ['10.0.0.0/8'], allow: ['10.1.0.0/16'] },
    address: '10.1.2.3',
    refused: undefined,
  },
  {
    name: 'a more specific deny entry beats a broader allow',
    options: { allow: ['10.0.0.0/8'], deny: ['10.1.0.0/16'] },
    address: '10.1.2.3',
    refused: 'denied 10.1.0.0/16',
  },
  {
    name: 'deny wins when allow and deny have the same prefix',
    options: { allow: ['10.1.0.0/16'], deny: ['10.1.0.0/16'] },
    address: '10.1.2.3',
    refused: 'denied 10.1.0.0/16',
  },
  {
    name: 'an allow entry more specific than a built-in deny opens that range',
    options: { allow: ['169.254.10.0/24'] },
    address: '169.254.10.1',
    refused: undefined,
  },
  {
    name: 'allowing the whole link-local range still leaves the metadata host refused',
    options: { allow: ['169.254.0.0/16'] },
    address: '169.254.169.254',
    refused: 'cloud metadata',
  },
  {
    name: 'with an allow list, addresses outside it are refused',
    options: { allow: ['192.0.2.0/24'] },
    address: '198.51.100.7',
    refused: 'not in the allow list',
  },
  {
    name: 'with an allow list, addresses inside it are allowed',
    options: { allow: ['192.0.2.0/24', '2001:db8::/32'] },
    address: '2001:db8::5',
    refused: undefined,
  },
  {
    name: 'an IPv4 entry never matches an IPv6 address',
    options: { allow: ['0.0.0.0/0'] },
    address: '2001:db8::5',
    refused: 'not in the allow list',
  },
]

describe('DestinationGuard.check', () => {
  for (const c of cases) {
    it(c.name, () => {
      const verdict = new DestinationGuard(c.options).check(c.address)
      if (c.refused === undefined) expect(verdict).toBeUndefined()
      else expect(verdict).toContain(c.refused)
    })
  }

  it('rejects invalid entries with one ConfigError naming each of them', () => {
    let thrown: unknown
    try {
      new DestinationGuard({ allow: ['10.0.0.1/8'], deny: ['not-a-cidr'] })
    } catch (err) {
      thrown = err
    }
    expect(thrown).toBeInstanceOf(ConfigError)
    expect((thrown as Error).message).toContain('probe guard allow: "10.0.0.1/8" has bits set beyond /8')
    expect((thrown as Error).message).toContain('probe guard deny: expected an IPv4 or IPv6 network')
  })
})

describe('runCheck and the guard', () => {
  it('refuses a denied target without sending any traffic to it', async () => {
    let connections = 0
    const server = createServer((s) => {
      connections++
      s.destroy()
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const port = (server.address() as AddressInfo).port
    const target: ProbeTarget = {
      id: 'example.test|a',
      zone: 'example.test',
      endpoint: 'a',
      address: '127.0.0.1',
      check: {
        name: 'tcp',
        kind: 'tcp',
        intervalMs: 1000,
        jitter: 0,
        timeoutMs: 500,
        rise: 1,
        fall: 1,
        address: undefined,
        port,
      },
    }
    try {
      const denied = await runCheck(target, undefined, new DestinationGuard({ deny: ['127.0.0.0/8'] }))
      expect(denied).toEqual({
        ok: false,
        latencyMs: undefined,
        error: 'refused by probe guard: 127.0.0.1 is in denied 127.0.0.0/8',
        load: undefined,
      })
      await new Promise((resolve) => setTimeout(resolve, 50))
      expect(connections).toBe(0)
      // The same target through the default guard does reach the listener.
      expect((await runCheck(target)).ok).toBe(true)
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  })
})
