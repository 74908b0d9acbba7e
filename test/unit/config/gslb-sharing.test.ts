import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { readZoneFile } from '../../../src/config/zone-file.ts'
import { makeSteps } from '../../../src/policy/registry.ts'
import { makeContext } from '../../helpers/policy-context.ts'

// What a loaded zone file shares between its pools and services (fewer live objects, see
// config/yaml-util Interner), and that sharing changes nothing a service reads.
const ZONE = `zone: share.example
records: |
  @ 3600 SOA ns1 hostmaster 1 7200 3600 1209600 60
  @ 3600 NS ns1
  ns1 3600 A 192.0.2.53
pools:
  a-eu:
    region: eu
    location: [50.11, 8.68]
    endpoints:
      a-eu-1: { address: [192.0.2.10, "2001:db8::10"] }
      a-eu-2: 192.0.2.11
  a-us:
    location: [37.34, -121.89]
    endpoints:
      a-us-1: 192.0.2.20
  b-eu:
    region: eu
    location: [50.11, 8.68]
    endpoints:
      b-eu-1: 192.0.2.30
services:
  a:
    pools: [a-eu, a-us]
    chain:
      - geo: { continents: { EU: a-eu, AF: a-eu, NA: a-us }, default: a-us }
      - weighted
  b:
    pools: [b-eu]
    chain: [weighted]
  c:
    pools: [b-eu]
    chain: [weighted]
    allDown: nodata
  d:
    pools: [b-eu]
    chain: [{ weighted: { mode: smooth } }]
`

const dirs: string[] = []
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

function load() {
  const dir = mkdtempSync(join(tmpdir(), 'gslb-sharing-'))
  dirs.push(dir)
  const file = join(dir, 'share.example.yaml')
  writeFileSync(file, ZONE)
  const r = readZoneFile(file)
  expect(r.errors).toEqual([])
  const pools = new Map(r.gslb.pools.map((p) => [p.name, p]))
  return { ...r.gslb, pool: (n: string) => pools.get(n)! }
}

describe('values shared within a zone file', () => {
  it('keeps each endpoint address as rdata bytes, made once', () => {
    const { endpoints } = load()
    const e = endpoints.find((x) => x.name === 'a-eu-1')!
    expect([...e.rdata4!]).toEqual([192, 0, 2, 10])
    expect(e.rdata6!.toString('hex')).toBe('20010db8000000000000000000000010')
    expect(e.rdata4).toBe(e.rdata4)
    expect(endpoints.find((x) => x.name === 'a-eu-2')!.rdata6).toBeUndefined()
    expect(Object.isFrozen(e)).toBe(true)
    expect(Object.keys(e)).toEqual(['index', 'name', 'pool', 'address4', 'address6', 'cname', 'weight'])
  })

  it('shares equal locations, pool lists, step settings and chains', () => {
    const z = load()
    expect(z.pool('a-eu').location).toBe(z.pool('b-eu').location)
    expect(z.pool('a-eu').location).toEqual({ lat: 50.11, lon: 8.68 })
    const [a, b, c, d] = z.services
    // A one-pool service answers from its pool's own list.
    expect(b!.endpoints).toBe(z.pool('b-eu').endpoints)
    expect(b!.steps).toBe(c!.steps)
    expect(a!.steps[1]).toBe(b!.steps[0])
    expect(d!.steps).not.toBe(b!.steps)
    const geo = a!.steps[0]!
    if (geo.kind !== 'geo') throw new Error('expected a geo step')
    expect(geo.rules[0]!.pools).toBe(geo.rules[1]!.pools)
    expect(geo.rules.map((r) => r.pools.map((p) => p.name))).toEqual([['a-eu'], ['a-eu'], ['a-us']])
    expect(b!.allDown).toBe(a!.allDown)
    expect(c!.allDown).toEqual({ kind: 'nodata' })
  })

  it('gives stateless chains one set of steps and stateful ones their own', () => {
    const [, b, c, d] = load().services
    expect(makeSteps(b!.steps)).toBe(makeSteps(c!.steps))
    expect(makeSteps(d!.steps)).not.toBe(makeSteps(d!.steps))
  })

  it('answers a one-endpoint pick with a list made once per endpoint, never changed', () => {
    const z = load()
    const members = z.pool('a-eu').endpoints
    const [random] = makeSteps(z.services[1]!.steps)
    const [smooth] = makeSteps(z.services[3]!.steps)
    const ctx = makeContext({ seed: 3, trace: false })
    for (const step of [random!, smooth!]) {
      for (let i = 0; i < 20; i++) {
        const out = step.run(members, ctx)
        expect(out).toHaveLength(1)
        expect(out).toBe(out[0]!.alone)
        expect(Object.isFrozen(out)).toBe(true)
      }
    }
    const e = members[0]!
    expect(e.alone).toEqual([e])
  })
})
