/**
 * The heap settings of `gslb serve` (src/ops/heap.ts) on a real process: the startup load may grow
 * V8's new space (fewer scavenges of a load that keeps everything), the compaction after it takes
 * it back to its initial size, and from then on it stays there, a live reload included (a grown
 * new space made every scavenge of a reload copy up to 64 MiB of new table).
 */

import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generateZones } from '../bench/scale/generate.ts'
import { dig } from '../helpers/dig.ts'
import { type ServeCli, startServeCli, waitFor } from '../helpers/process.ts'

const SIZES = { records: 20_000, services: 400, endpoints: 2_000 }
const MIB = 1048576

let stage: string
let zones: string
let s: ServeCli | undefined

beforeAll(async () => {
  stage = mkdtempSync(join(tmpdir(), 'gslb-heap-'))
  zones = join(stage, 'zones')
  generateZones(zones, SIZES, 1)
  generateZones(join(stage, 'v2'), SIZES, 2)
  s = await startServeCli(zones, ['--no-watch'])
}, 60_000)

afterAll(async () => {
  s?.proc.child.kill('SIGKILL')
  await s?.proc.exited
  rmSync(stage, { recursive: true, force: true })
})

function logLine(log: string, msg: string): Record<string, unknown> {
  const line = log.split('\n').find((l) => l.includes(`"msg":"${msg}"`))
  expect(line, msg).toBeDefined()
  return JSON.parse(line!) as Record<string, unknown>
}

async function newSpaceBytes(admin: string): Promise<number> {
  const text = await (await fetch(`${admin}/metrics`)).text()
  const m = /^nodejs_heap_space_size_total_bytes\{space="new"\} (\d+)/m.exec(text)
  expect(m, 'new_space size in /metrics').not.toBeNull()
  return Number(m![1])
}

describe('gslb serve heap', () => {
  it('grows the new space for the startup load only, and keeps it small through a live reload', async () => {
    const { proc, admin, dns } = s!
    const compacted = logLine(proc.log(), 'heap compacted after startup')
    expect(compacted['loadNewSpaceMb']).toBeGreaterThan(16)
    expect(compacted['newSpaceMb']).toBeLessThanOrEqual(2)
    expect(await newSpaceBytes(admin)).toBeLessThanOrEqual(2 * MIB)

    for (const f of readdirSync(join(stage, 'v2'))) writeFileSync(join(zones, f), readFileSync(join(stage, 'v2', f)))
    proc.child.kill('SIGHUP')
    const reloaded = await waitFor(
      proc.log,
      (l) => l.includes('"reason":"SIGHUP"') && l.includes('"msg":"zones reloaded"'),
      30_000,
    )
    expect(reloaded.value).toContain('"msg":"zones reloaded"')
    const soa = await dig('127.0.0.1', dns, 'corp.example', 'SOA')
    expect(soa.answer[0]?.data).toMatch(/ 2 /)
    // The reload kept nearly all it allocated (the new table): an unpinned new space grows here.
    expect(await newSpaceBytes(admin)).toBeLessThanOrEqual(2 * MIB)
  }, 60_000)
})
