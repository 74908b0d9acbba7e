/**
 * ZoneSet.fingerprint: what a lazy handover compares between the main thread and its fresh worker
 * (serve.ts), so equal only when both loaded the same bytes of the same files.
 */

import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ZoneSet } from '../../../src/config/zone-set.ts'

const zone = (origin: string, serial: number, address: string): string => `$ORIGIN ${origin}.
@    3600 SOA ns1 hostmaster ${serial} 7200 3600 1209600 60
@    3600 NS  ns1
ns1  3600 A   192.0.2.53
www    60 A   ${address}
`

describe('ZoneSet.fingerprint', () => {
  let dir: string
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'gslb-fingerprint-'))
    writeFileSync(join(dir, 'a.example.zone'), zone('a.example', 1, '192.0.2.1'))
    writeFileSync(join(dir, 'b.example.zone'), zone('b.example', 1, '192.0.2.2'))
  })
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  it('agrees between two sets that read the same files, and tells a changed or removed file apart', () => {
    const one = new ZoneSet(dir)
    const two = new ZoneSet(dir)
    one.reload()
    two.reload()
    const first = one.fingerprint()
    expect(first).toMatch(/^[0-9a-f]{64}$/)
    expect(two.fingerprint()).toBe(first)

    writeFileSync(join(dir, 'b.example.zone'), zone('b.example', 2, '192.0.2.3'))
    one.reload()
    expect(one.fingerprint()).not.toBe(first)
    expect(two.fingerprint()).toBe(first)
    two.reload()
    expect(two.fingerprint()).toBe(one.fingerprint())

    unlinkSync(join(dir, 'a.example.zone'))
    const beforeRemoval = one.fingerprint()
    one.reload()
    expect(one.fingerprint()).not.toBe(beforeRemoval)
  })

  it('is the same for an empty set whatever its directory', () => {
    const empty = mkdtempSync(join(tmpdir(), 'gslb-fingerprint-empty-'))
    try {
      expect(new ZoneSet(dir).fingerprint()).toBe(new ZoneSet(empty).fingerprint())
    } finally {
      rmSync(empty, { recursive: true, force: true })
    }
  })
})
