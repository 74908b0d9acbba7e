/**
 * Reloads swap whole zone tables: queries running during a reload see the old zone or the new
 * one, never a mix, never an error, and a broken file never replaces a good one.
 */

import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { answerData, decode, query, udpExchange } from '../helpers/raw.ts'
import { startTestServer, type TestServer } from '../helpers/server.ts'

let s: TestServer
beforeAll(async () => {
  s = await startTestServer()
})
afterAll(async () => {
  await s.stop()
})

describe('live reload', () => {
  it('answers every query during 30 reloads with either the old or the new zone', async () => {
    const file = join(s.zonesDir, 'example.com.yaml')
    const original = readFileSync(file, 'utf8')
    const seen = new Set<string>()
    let failures = 0
    let stop = false
    const client = (async () => {
      let id = 0
      while (!stop) {
        const reply = await udpExchange(s.port, query('www.example.com', 'A', { id: ++id % 65536 }), 1000)
        if (!reply) {
          failures++
          continue
        }
        const m = decode(reply)
        const a = m.answers?.[0]
        if ((m.flags! & 0xf) !== 0 || !a || a.type !== 'A') failures++
        else seen.add(answerData(m)!)
      }
    })()
    for (let i = 0; i < 30; i++) {
      const addr = i % 2 === 0 ? '192.0.2.12' : '192.0.2.11'
      writeFileSync(
        file,
        original.replace('www      A   192.0.2.11', `www      A   ${addr}`).replace(' 1 7200', ` ${i + 2} 7200`),
      )
      const outcomes = s.server.reload('test')
      expect(outcomes.find((o) => o.file.endsWith('example.com.yaml'))?.status).toBe('loaded')
      await new Promise((r) => setTimeout(r, 10))
    }
    stop = true
    await client
    expect(failures).toBe(0)
    expect([...seen].sort()).toEqual(['192.0.2.11', '192.0.2.12'])
  })

  it('keeps serving the last good version of a zone whose new file is invalid, and reports why', async () => {
    const file = join(s.zonesDir, 'example.com.yaml')
    const good = readFileSync(file, 'utf8')
    writeFileSync(file, good.replace(/www {6}A {3}[\d.]+/, 'www      CNAME nowhere\n  www      A 192.0.2.50'))
    const outcomes = s.server.reload('test')
    const o = outcomes.find((x) => x.file.endsWith('example.com.yaml'))!
    expect(o.status).toBe('rejected')
    expect(o.errors.map((e) => e.field)).toContain('CNAME')
    const reply = decode((await udpExchange(s.port, query('www.example.com', 'A')))!)
    expect(reply.answers?.[0]?.type).toBe('A')
    expect(['192.0.2.11', '192.0.2.12']).toContain(answerData(reply))
    // Other zones are untouched by one zone's failure.
    expect(answerData(decode((await udpExchange(s.port, query('host.example.org', 'A')))!))).toBe('192.0.2.70')
    writeFileSync(file, good)
  })

  it('does not recompile a zone whose files did not change', () => {
    const outcomes = s.server.reload('test')
    expect(outcomes.every((o) => o.status === 'unchanged')).toBe(true)
  })
})
