/**
 * `gslb serve --reload-mode handover`: answering runs on a worker thread (one, by default), and a
 * zone change is loaded by a fresh worker that then takes over the listen address; the old one
 * stops. The real command, real sockets, `dig` and a raw UDP stream; everything on 127.0.0.1.
 */

import { createSocket } from 'node:dgram'
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { dig } from '../helpers/dig.ts'
import { type ServeCli, startServeCli, waitFor } from '../helpers/process.ts'
import { answerData, decode, fromManyPorts, query } from '../helpers/raw.ts'
import { FIXTURES } from '../helpers/server.ts'

const ZONE_FILE = 'workers.example.yaml'
const SECOND = 'second.example.zone'
const SECOND_ZONE = (serial: number, address: string) => `$ORIGIN second.example.
@    3600 SOA ns1 hostmaster ${serial} 7200 3600 1209600 60
@    3600 NS  ns1
ns1  3600 A   192.0.2.53
www    60 A   ${address}
`

type Server = ServeCli

function startServer(dir: string, ...extra: string[]): Promise<Server> {
  return startServeCli(dir, ['--reload-mode', 'handover', ...extra])
}

async function address(s: Server, name: string): Promise<string | undefined> {
  const r = await dig('127.0.0.1', s.dns, name, 'A')
  return r.answer[0]?.data
}

/**
 * One UDP socket (one flow, so one listener at a time) sending a query every `everyMs` until
 * stopped; returns each query's answer address in sending order, and how many got no answer
 * within a second (those are asked again once, as a resolver would).
 */
function stream(port: number, name: string, everyMs = 5) {
  const sock = createSocket('udp4')
  const answers: string[] = []
  let retried = 0
  const waiting = new Map<number, (a: string) => void>()
  sock.on('message', (msg) => {
    const d = decode(msg)
    waiting.get(d.id ?? -1)?.(answerData(d) ?? 'no answer')
  })
  const ask = (id: number): Promise<string> =>
    new Promise((resolve) => {
      const timer = setTimeout(() => {
        waiting.delete(id)
        resolve('lost')
      }, 1000)
      waiting.set(id, (a) => {
        clearTimeout(timer)
        waiting.delete(id)
        resolve(a)
      })
      sock.send(query(name, 'A', { id }), port, '127.0.0.1')
    })
  let running = true
  const done = (async () => {
    const pending: Promise<void>[] = []
    for (let id = 1; running; id++) {
      const slot = answers.length
      answers.push('pending')
      pending.push(
        (async () => {
          let a = await ask(id)
          if (a === 'lost') {
            retried++
            a = await ask(id + 30_000)
          }
          answers[slot] = a
        })(),
      )
      await new Promise((r) => setTimeout(r, everyMs))
    }
    await Promise.all(pending)
    sock.close()
    return { answers, retried }
  })()
  return {
    stop: () => {
      running = false
      return done
    },
  }
}

/**
 * A stream's answers across a change from `before` to `after`: every query answered the first
 * time, only those two addresses, old data until the switch and new after it.
 */
function expectSwitched(flow: { answers: string[]; retried: number }, before: string, after: string): void {
  expect(flow.retried).toBe(0)
  expect(flow.answers.filter((a) => a !== before && a !== after)).toEqual([])
  const firstNew = flow.answers.indexOf(after)
  expect(firstNew).toBeGreaterThan(0)
  expect(flow.answers.slice(firstNew).every((a) => a === after)).toBe(true)
}

async function metric(s: Server, pattern: RegExp): Promise<number> {
  const text = await (await fetch(`${s.admin}/metrics`)).text()
  return Number(pattern.exec(text)?.[1] ?? Number.NaN)
}

/** Every query answered so far, by whichever thread (gslb_queries_total over all its series). */
async function queries(s: Server): Promise<number> {
  const text = await (await fetch(`${s.admin}/metrics`)).text()
  return [...text.matchAll(/^gslb_queries_total\{[^}]*\} (\d+)$/gm)].reduce((sum, m) => sum + Number(m[1]), 0)
}

/**
 * A server of its own for the enclosing describe: the workers fixture plus SECOND in a temporary
 * directory, started before its tests and killed after them.
 */
function serverForSuite(prefix: string, ...extra: string[]): { readonly dir: string; readonly s: Server } {
  const suite = { dir: '', s: undefined as unknown as Server }
  beforeAll(async () => {
    suite.dir = mkdtempSync(join(tmpdir(), prefix))
    cpSync(join(FIXTURES, 'workers'), suite.dir, { recursive: true })
    writeFileSync(join(suite.dir, SECOND), SECOND_ZONE(1, '192.0.2.90'))
    suite.s = await startServer(suite.dir, ...extra)
  }, 20_000)
  afterAll(() => {
    suite.s?.proc.child.kill('SIGKILL')
    if (suite.dir) rmSync(suite.dir, { recursive: true, force: true })
  })
  return suite
}

/**
 * Breaks SECOND (serial 2, a bad address) and moves static.workers.example from `from` to `to`
 * in the same change; resolves once the server answers `to` for it.
 */
async function brokenChange(t: { readonly dir: string; readonly s: Server }, from: string, to: string): Promise<void> {
  writeFileSync(join(t.dir, SECOND), `${SECOND_ZONE(2, '192.0.2.91')}www 60 A not-an-address\n`)
  const file = join(t.dir, ZONE_FILE)
  writeFileSync(file, readFileSync(file, 'utf8').replace(from, to))
  const { value } = await waitFor(
    () => address(t.s, 'static.workers.example'),
    (a) => a === to,
    15_000,
    100,
  )
  expect(value).toBe(to)
}

describe('serve --reload-mode handover', () => {
  const t = serverForSuite('gslb-handover-')

  it('answers from the main thread until the first zone change: startup loads the zones once', async () => {
    expect(await address(t.s, 'static.workers.example')).toBe('192.0.2.80')
    expect((await dig('127.0.0.1', t.s.dns, '+tcp', 'www.second.example', 'A')).answer[0]?.data).toBe('192.0.2.90')
    const log = t.s.proc.log()
    expect(log).toMatch(/"pid":\d+,"host"[^\n]*"listening on UDP and TCP"/)
    expect(log).not.toMatch(/"worker":0,/)
    expect(log).not.toContain('worker threads answering')
    expect(await queries(t.s)).toBeGreaterThan(0)
  })

  it('moves answering to a worker at the first change, answering throughout and never going back', async () => {
    const queriesBefore = await queries(t.s)
    const flow = stream(t.s.dns, 'static.workers.example')
    await new Promise((r) => setTimeout(r, 300))
    const file = join(t.dir, ZONE_FILE)
    writeFileSync(file, readFileSync(file, 'utf8').replace('192.0.2.80', '192.0.2.81'))
    await waitFor(t.s.proc.log, (l) => l.includes('zones handed over to a fresh worker'), 15_000)
    await new Promise((r) => setTimeout(r, 300))
    const seen = await flow.stop()
    // Every query answered the first time (the worker steers the flow to itself before this
    // thread closes its socket), old data until the switch, new after.
    expectSwitched(seen, '192.0.2.80', '192.0.2.81')
    expect(await address(t.s, 'static.workers.example')).toBe('192.0.2.81')
    expect((await dig('127.0.0.1', t.s.dns, '+tcp', 'static.workers.example', 'A')).answer[0]?.data).toBe('192.0.2.81')
    // The worker answers now, and the main thread reloaded its own copy after the switch: it read
    // what the worker had read, so no second handover follows.
    await waitFor(t.s.proc.log, (l) => l.includes('heap compacted after a zone change'), 15_000)
    const log = t.s.proc.log()
    expect(log).toMatch(/"worker":0,[^\n]*"listening on UDP and TCP"/)
    expect(log).toContain('worker threads answering')
    expect(log.indexOf('zones handed over to a fresh worker')).toBeLessThan(
      log.search(/"reason":"file change"[^\n]*"msg":"zones reloaded"/),
    )
    await new Promise((r) => setTimeout(r, 500))
    expect((t.s.proc.log().match(/zones handed over to a fresh worker/g) ?? []).length).toBe(1)
    // The main thread's answers before the switch stay counted next to the worker's.
    expect(await queries(t.s)).toBeGreaterThanOrEqual(queriesBefore + seen.answers.length)
    expect(await metric(t.s, /^gslb_worker_queries_total\{worker="0"\} (\d+)$/m)).toBeGreaterThan(0)
  }, 30_000)

  it('hands the next change to a fresh worker, answering throughout and never going back', async () => {
    const queriesBefore = await metric(t.s, /^gslb_worker_queries_total\{worker="0"\} (\d+)$/m)
    expect(queriesBefore).toBeGreaterThan(0)
    const handovers = (t.s.proc.log().match(/zones handed over to a fresh worker/g) ?? []).length
    const compactions = (t.s.proc.log().match(/heap compacted after a zone change/g) ?? []).length
    const flow = stream(t.s.dns, 'static.workers.example')
    await new Promise((r) => setTimeout(r, 300))
    const file = join(t.dir, ZONE_FILE)
    writeFileSync(file, readFileSync(file, 'utf8').replace('192.0.2.81', '192.0.2.84'))
    await waitFor(
      t.s.proc.log,
      (l) => (l.match(/zones handed over to a fresh worker/g) ?? []).length > handovers,
      15_000,
    )
    await new Promise((r) => setTimeout(r, 300))
    const seen = await flow.stop()
    expectSwitched(seen, '192.0.2.81', '192.0.2.84')
    expect(await address(t.s, 'static.workers.example')).toBe('192.0.2.84')
    // The main thread compacted its heap before the fresh worker loaded, not after it took over.
    const log = t.s.proc.log()
    expect((log.match(/heap compacted after a zone change/g) ?? []).length).toBe(compactions + 1)
    expect(log.lastIndexOf('"msg":"heap compacted after a zone change"')).toBeLessThan(
      log.lastIndexOf('zones handed over to a fresh worker'),
    )
    expect(log).toMatch(/"ms":\d+,"rssMb":\d+,"newSpaceMb":\d+,"msg":"heap compacted after a zone change"/)
    // The main thread's live reload says how long its longest slice held its event loop.
    expect(log).toMatch(
      /"reason":"file change"[^\n]*"pauses":\d+,"longestSliceMs":[\d.]+,"backoffs":\d+,"msg":"zones reloaded"/,
    )
    // The counters carry on over incarnations: the old worker's queries stay counted.
    const queriesAfter = await metric(t.s, /^gslb_worker_queries_total\{worker="0"\} (\d+)$/m)
    expect(queriesAfter).toBeGreaterThanOrEqual(queriesBefore + seen.answers.length)
    expect(await metric(t.s, /^gslb_worker_restarts_total\{worker="0"\} (\d+)$/m)).toBe(0)
  }, 30_000)

  it('reloads in place when a file is broken, keeping its last good version', async () => {
    const handovers = (t.s.proc.log().match(/zones handed over to a fresh worker/g) ?? []).length
    const compactions = (t.s.proc.log().match(/heap compacted after a zone change/g) ?? []).length
    await brokenChange(t, '192.0.2.84', '192.0.2.82')
    // A fresh worker would have no version of the broken zone at all: the old one reloaded instead.
    expect(await address(t.s, 'www.second.example')).toBe('192.0.2.90')
    expect((t.s.proc.log().match(/zones handed over to a fresh worker/g) ?? []).length).toBe(handovers)
    // Nothing handed over, nothing to compact for.
    expect((t.s.proc.log().match(/heap compacted after a zone change/g) ?? []).length).toBe(compactions)
    // Fixed again: handed over, with the fixed file's data.
    writeFileSync(join(t.dir, SECOND), SECOND_ZONE(3, '192.0.2.92'))
    await waitFor(
      () => address(t.s, 'www.second.example'),
      (a) => a === '192.0.2.92',
      15_000,
      100,
    )
    expect((t.s.proc.log().match(/zones handed over to a fresh worker/g) ?? []).length).toBe(handovers + 1)
    expect(await address(t.s, 'static.workers.example')).toBe('192.0.2.82')
  }, 40_000)

  it('stops the current worker and exits 0 on SIGTERM', async () => {
    t.s.proc.child.kill('SIGTERM')
    expect(await t.s.proc.exited).toBe(0)
    expect(t.s.proc.log()).toContain('"msg":"stopped"')
    expect(t.s.proc.log()).not.toContain('worker thread stopped unexpectedly')
    expect(t.s.proc.log()).not.toContain('did not stop in time')
  })
})

describe('serve --reload-mode handover: a broken first change', () => {
  const t = serverForSuite('gslb-handover-broken-')

  it('keeps answering on the main thread, which reloads in place; the fixed file is handed over', async () => {
    await brokenChange(t, '192.0.2.80', '192.0.2.85')
    // The worker could not load the broken file, so it never answered: the main thread did, and
    // kept the last good version of that zone.
    expect(await address(t.s, 'www.second.example')).toBe('192.0.2.90')
    let log = t.s.proc.log()
    expect(log).toMatch(
      /"problem":"[^"]*zone file\(s\) rejected[^"]*","msg":"zone handover not possible; reloading in place"/,
    )
    expect(log).not.toContain('zones handed over to a fresh worker')
    expect(log).not.toMatch(/"worker":0,[^\n]*"listening on UDP and TCP"/)
    writeFileSync(join(t.dir, SECOND), SECOND_ZONE(3, '192.0.2.92'))
    await waitFor(t.s.proc.log, (l) => l.includes('zones handed over to a fresh worker'), 15_000)
    expect(await address(t.s, 'www.second.example')).toBe('192.0.2.92')
    expect(await address(t.s, 'static.workers.example')).toBe('192.0.2.85')
    log = t.s.proc.log()
    expect(log).toMatch(/"worker":0,[^\n]*"listening on UDP and TCP"/)
    t.s.proc.child.kill('SIGTERM')
    expect(await t.s.proc.exited).toBe(0)
    expect(t.s.proc.log()).not.toContain('did not stop in time')
  }, 40_000)
})

describe('serve --reload-mode handover: SIGTERM while the first worker loads', () => {
  const t = serverForSuite('gslb-handover-term-')

  it('stops the loading worker with the server and exits 0', async () => {
    const file = join(t.dir, ZONE_FILE)
    writeFileSync(file, readFileSync(file, 'utf8').replace('192.0.2.80', '192.0.2.86'))
    await waitFor(t.s.proc.log, (l) => l.includes('a fresh worker loads the zones to take over answering'), 10_000)
    t.s.proc.child.kill('SIGTERM')
    expect(await t.s.proc.exited).toBe(0)
    const log = t.s.proc.log()
    expect(log).toContain('"msg":"stopped"')
    expect(log).not.toContain('zones handed over to a fresh worker')
    expect(log).not.toContain('zone handover not possible')
    expect(log).not.toContain('did not stop in time')
  }, 20_000)
})

describe('serve --reload-mode handover --workers 2', () => {
  const t = serverForSuite('gslb-handover2-', '--workers', '2')

  it('hands both slots over in turn, and afterwards the kernel spreads flows over both again', async () => {
    const file = join(t.dir, ZONE_FILE)
    writeFileSync(file, readFileSync(file, 'utf8').replace('192.0.2.80', '192.0.2.83'))
    await waitFor(t.s.proc.log, (l) => (l.match(/zones handed over to a fresh worker/g) ?? []).length >= 2, 20_000)
    expect(t.s.proc.log()).toMatch(/"worker":0,[^\n]*"zones handed over to a fresh worker"/)
    expect(t.s.proc.log()).toMatch(/"worker":1,[^\n]*"zones handed over to a fresh worker"/)
    const perWorker = async (): Promise<number[]> => [
      await metric(t.s, /^gslb_worker_queries_total\{worker="0"\} (\d+)$/m),
      await metric(t.s, /^gslb_worker_queries_total\{worker="1"\} (\d+)$/m),
    ]
    const before = await perWorker()
    // Each query from its own socket, so from its own source port: the steering program of the
    // handovers points past the last socket now, and the flow hash spreads the flows again.
    const answers = await fromManyPorts(t.s.dns, 'static.workers.example')
    expect(new Set(answers)).toEqual(new Set(['192.0.2.83']))
    const after = await perWorker()
    expect(after[0]! - before[0]!).toBeGreaterThan(0)
    expect(after[1]! - before[1]!).toBeGreaterThan(0)
    t.s.proc.child.kill('SIGTERM')
    expect(await t.s.proc.exited).toBe(0)
    expect(t.s.proc.log()).not.toContain('worker thread stopped unexpectedly')
  }, 40_000)
})
