/**
 * Live reloads of a large zone set run in slices: queries are answered while the reload is still
 * running, and what is served afterwards is exactly what a one-piece reload would serve. The
 * server runs in this process, so with a reload that never yielded not a single answer could
 * arrive before it finished; no assertion here depends on timing.
 */

import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ZoneSet } from '../../src/config/zone-set.ts'
import { runSliced } from '../../src/zone/cooperative.ts'
import { generateZones } from '../bench/scale/generate.ts'
import { answerData, decode, query, udpExchange } from '../helpers/raw.ts'
import { startTestServer, type TestServer } from '../helpers/server.ts'

const SIZES = { records: 20_000, services: 400, endpoints: 2_000 }

let s: TestServer
let stage: string
let staticName: string
let serviceName: string

beforeAll(async () => {
  // The generated set (4 master files, 10 gslb YAML files) is copied by the helper into its own dir.
  stage = mkdtempSync(join(tmpdir(), 'gslb-sliced-'))
  const z = generateZones(join(stage, 'v1'), SIZES, 1)
  generateZones(join(stage, 'v2'), SIZES, 2)
  staticName = z.readyStatic.name
  serviceName = z.readyService
  s = await startTestServer({ zones: join(stage, 'v1') })
}, 60_000)

afterAll(async () => {
  await s?.stop()
  rmSync(stage, { recursive: true, force: true })
})

async function soaSerial(zone: string): Promise<number> {
  const reply = decode((await udpExchange(s.port, query(zone, 'SOA'), 2000))!)
  const soa = reply.answers?.[0] as { data?: { serial?: number } } | undefined
  return soa?.data?.serial ?? Number.NaN
}

function install(version: 'v1' | 'v2'): void {
  for (const f of readdirSync(join(stage, version))) {
    writeFileSync(join(s.zonesDir, f), readFileSync(join(stage, version, f)))
  }
}

describe('sliced live reload', () => {
  it('answers queries while a large reload is running, then serves the new zones', async () => {
    expect(await soaSerial('corp.example')).toBe(1)
    install('v2')
    let finished = false
    const reload = s.server.reloadLive('test').then((outcomes) => {
      finished = true
      return outcomes
    })
    let answeredDuring = 0
    let bad = 0
    for (let i = 0; !finished; i++) {
      const name = i % 2 === 0 ? staticName : serviceName
      const reply = await udpExchange(s.port, query(name, 'A', { id: i % 65536 }), 5000)
      if (finished) break
      if (reply === null) {
        bad++
        continue
      }
      const m = decode(reply)
      if ((m.flags! & 0xf) !== 0 || !answerData(m)) bad++
      else answeredDuring++
    }
    const outcomes = await reload
    expect(answeredDuring).toBeGreaterThan(0)
    expect(bad).toBe(0)
    expect(outcomes.filter((o) => o.status === 'loaded')).toHaveLength(readdirSync(s.zonesDir).length)
    expect(await soaSerial('corp.example')).toBe(2)
    expect(await soaSerial('payments.gslb.example')).toBe(2)
    expect(answerData(decode((await udpExchange(s.port, query(staticName, 'A')))!))).toBe('192.0.2.1')
  }, 60_000)

  it('keeps the last good version of a file that fails to load, as a one-piece reload does', async () => {
    const file = join(s.zonesDir, 'media.example.zone')
    const good = readFileSync(file, 'utf8')
    writeFileSync(file, good.replace('$TTL 3600', '$TTL 3600\nbroken IN A 192.0.2.999'))
    const outcomes = await s.server.reloadLive('test')
    const o = outcomes.find((x) => x.file === file)!
    expect(o.status).toBe('rejected')
    expect(o.serial).toBe(2)
    expect(o.errors[0]?.line).toBe(3)
    expect(await soaSerial('media.example')).toBe(2)
    writeFileSync(file, good)
    expect((await s.server.reloadLive('test')).every((x) => x.status === 'unchanged')).toBe(true)
  }, 60_000)

  it('reports and serves the same as a one-piece reload, with every concurrent caller served', async () => {
    install('v1')
    const sliced = new ZoneSet(s.zonesDir)
    const whole = new ZoneSet(s.zonesDir)
    let pauses = 0
    const [a, b] = await Promise.all([
      sliced.reloadSliced({ sliceMs: 1, onPause: () => pauses++ }),
      sliced.reloadSliced({ sliceMs: 1 }),
    ])
    const c = whole.reload()
    expect(pauses).toBeGreaterThan(0)
    // The report carries what the slicing measured (logged with "zones reloaded"); a whole reload has none.
    expect(a.slices?.pauses).toBe(pauses)
    expect(a.slices?.longestSliceMs).toBeGreaterThanOrEqual(1)
    expect(c.slices).toBeUndefined()
    const summary = (r: typeof c) => r.files.map((f) => [f.file, f.status, f.zone, f.serial, f.errors.length])
    expect(summary(a)).toEqual(summary(c))
    // The second call ran after the first one and found nothing new.
    expect(b.files.every((f) => f.status === 'unchanged')).toBe(true)
    expect([...sliced.table.nodes.keys()].sort()).toEqual([...whole.table.nodes.keys()].sort())
    expect(sliced.table.zones.map((z) => z.serial)).toEqual(whole.table.zones.map((z) => z.serial))
  }, 60_000)

  it('starts over when a one-piece reload ran in the middle of a sliced one', async () => {
    const set = new ZoneSet(s.zonesDir)
    set.reload()
    install('v2')
    let interrupted = false
    const sliced = set.reloadSliced({
      sliceMs: 0,
      onPause: () => {
        if (interrupted) return
        interrupted = true
        // A SIGHUP-style reload sees serial 2 first; the sliced one must not put back older data.
        set.reload()
      },
    })
    const report = await sliced
    expect(interrupted).toBe(true)
    expect(report.files.every((f) => f.status === 'unchanged')).toBe(true)
    expect(set.table.zones.every((z) => z.serial === 2)).toBe(true)
  }, 60_000)
})

describe('runSliced', () => {
  it('lets the event loop run between slices and returns the stage result', async () => {
    function* stage(): Generator<void, number, void> {
      let n = 0
      for (let i = 0; i < 50; i++) {
        n += i
        yield
      }
      return n
    }
    // Other work on the loop: a task that queues itself again on every turn.
    let ticks = 0
    let running = true
    const tick = (): void => {
      ticks++
      if (running) setImmediate(tick)
    }
    setImmediate(tick)
    let pauses = 0
    const result = await runSliced(stage(), 0, () => pauses++)
    running = false
    expect(result).toBe(1225)
    expect(pauses).toBe(50)
    expect(ticks).toBeGreaterThanOrEqual(50)
  })

  it('measures its longest slice, which a step that overruns makes long', async () => {
    function* stage(): Generator<void, string, void> {
      for (let i = 0; i < 10; i++) yield
      // A step that keeps the loop 30 ms, as a garbage collection inside it would.
      const until = performance.now() + 30
      while (performance.now() < until) {}
      yield
      for (let i = 0; i < 10; i++) yield
      return 'done'
    }
    const stats = { pauses: 0, longestSliceMs: 0, backoffs: 0 }
    expect(await runSliced(stage(), 2, undefined, stats)).toBe('done')
    expect(stats.longestSliceMs).toBeGreaterThanOrEqual(30)
    expect(stats.pauses).toBeGreaterThanOrEqual(1)
    const quick = { pauses: 0, longestSliceMs: 0, backoffs: 0 }
    function* short(): Generator<void, void, void> {
      for (let i = 0; i < 10; i++) yield
    }
    await runSliced(short(), 50, undefined, quick)
    expect(quick).toMatchObject({ pauses: 0, backoffs: 0 })
    expect(quick.longestSliceMs).toBeLessThan(30)
  })

  it('after a slice that overran, waits on a timer about as long before the next one, answering meanwhile', async () => {
    let overranAt = 0
    let nextAt = 0
    function* stage(): Generator<void, void, void> {
      for (let i = 0; i < 5; i++) yield
      const until = performance.now() + 30
      while (performance.now() < until) {}
      overranAt = performance.now()
      yield
      nextAt = performance.now()
      for (let i = 0; i < 5; i++) yield
    }
    // What the loop does during the wait: an I/O-like task that queues itself again on every turn
    // keeps running, as queries do (a wait made of setImmediate turns would also let it run, but
    // would end within the first idle turn).
    let ticks = 0
    let running = true
    const tick = (): void => {
      ticks++
      if (running) setImmediate(tick)
    }
    const stats = { pauses: 0, longestSliceMs: 0, backoffs: 0 }
    const ticksBefore = ticks
    setImmediate(tick)
    await runSliced(stage(), 2, undefined, stats)
    running = false
    // At least the overrun's (a loaded machine may stretch one of the quick slices past 4 ms too).
    expect(stats.backoffs).toBeGreaterThanOrEqual(1)
    // setTimeout(30) fires no earlier than ~29 ms later by performance.now (libuv's ms clock).
    expect(nextAt - overranAt).toBeGreaterThanOrEqual(25)
    expect(ticks - ticksBefore).toBeGreaterThan(5)
    // Slices of 0 ms (tests that pause at every step) never wait on a timer.
    const zero = { pauses: 0, longestSliceMs: 0, backoffs: 0 }
    function* few(): Generator<void, void, void> {
      for (let i = 0; i < 5; i++) yield
    }
    await runSliced(few(), 0, undefined, zero)
    expect(zero).toMatchObject({ pauses: 5, backoffs: 0 })
  })
})
