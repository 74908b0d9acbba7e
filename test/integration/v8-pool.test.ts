/**
 * `gslb serve` confined to one CPU (taskset) re-executes itself, same PID, with V8's worker pool
 * sized to that CPU, and then serves as usual; an explicit --v8-pool-size is left alone.
 */

import { spawn, spawnSync } from 'node:child_process'
import { afterEach, describe, expect, it } from 'vitest'
import { dig } from '../helpers/dig.ts'
import { CLI, freePort, ROOT, waitFor } from '../helpers/process.ts'

const hasTaskset = spawnSync('taskset', ['-c', '0', 'true']).status === 0
const children: ReturnType<typeof spawn>[] = []
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL')
})

async function start(env: NodeJS.ProcessEnv): Promise<{ pid: number; log: () => string; port: number }> {
  const port = await freePort()
  const child = spawn(
    'taskset',
    [
      '-c',
      '0',
      process.execPath,
      CLI,
      'serve',
      '--zones',
      'test/fixtures/zones',
      '--listen',
      `127.0.0.1:${port}`,
      '--admin',
      'off',
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } },
  )
  children.push(child)
  let out = ''
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString()
  })
  child.stderr!.on('data', (d: Buffer) => {
    out += d.toString()
  })
  const ready = await waitFor(
    () => out,
    (o) => o.includes('listening on UDP and TCP'),
    15_000,
  )
  expect(ready.value).toContain('listening on UDP and TCP')
  return { pid: child.pid!, log: () => out, port }
}

function poolLine(log: string): Record<string, unknown> {
  const line = log.split('\n').find((l) => l.includes('"V8 worker pool"'))
  expect(line).toBeDefined()
  return JSON.parse(line!) as Record<string, unknown>
}

describe.skipIf(!hasTaskset)('V8 worker pool sized to the CPUs', () => {
  it('re-executes in place on one CPU and answers', async () => {
    const s = await start({ NODE_OPTIONS: '' })
    const line = poolLine(s.log())
    expect(line['cpus']).toBe(1)
    expect(line['v8PoolSize']).toBe(1)
    // taskset execs node, which execve()s itself: the PID that logs is the one that was spawned.
    expect(line['pid']).toBe(s.pid)
    expect(s.log().match(/"V8 worker pool"/g)).toHaveLength(1)
    const r = await dig('127.0.0.1', s.port, 'www.example.com', 'A')
    expect(r.status).toBe('NOERROR')
    expect(r.answer.length).toBeGreaterThan(0)
  }, 30_000)

  it('leaves a size chosen in NODE_OPTIONS alone', async () => {
    const s = await start({ NODE_OPTIONS: '--v8-pool-size=3' })
    const line = poolLine(s.log())
    expect(line['cpus']).toBe(1)
    expect(line['v8PoolSize']).toBe(3)
  }, 30_000)
})
