/**
 * `gslb` turns on Node's module compile cache (src/cli.ts): the second start of a command reads
 * the type-stripped source and V8's code cache of its modules from disk, in worker threads too.
 * Node's own debug output (NODE_DEBUG_NATIVE=COMPILE_CACHE) says what it read; the cache lands in
 * the OS temp dir, pointed at a fresh directory here through TMPDIR.
 */

import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { dig } from '../helpers/dig.ts'
import { CLI, freePort, ROOT, waitFor } from '../helpers/process.ts'

const dirs: string[] = []
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

function freshTmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'gslb-ccache-'))
  dirs.push(d)
  return d
}

/** Runs `gslb ARGS` with its temp dir at `tmp` and Node's compile-cache debug output on. */
async function run(
  tmp: string,
  args: readonly string[],
  until?: (out: string) => Promise<boolean> | boolean,
): Promise<string> {
  const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: tmp, NODE_DEBUG_NATIVE: 'COMPILE_CACHE' }
  delete env['NODE_COMPILE_CACHE']
  delete env['NODE_DISABLE_COMPILE_CACHE']
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString()
  })
  child.stderr.on('data', (d: Buffer) => {
    out += d.toString()
  })
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)))
  if (until) {
    const done = await waitFor(
      async () => child.exitCode === null && (await until(out)),
      (ok) => ok,
      20_000,
      100,
    )
    child.kill('SIGTERM')
    await exited
    expect(done.value, out.slice(-2000)).toBe(true)
  } else {
    expect(await exited, out.slice(-2000)).toBe(0)
  }
  return out
}

const hit = (module: string) =>
  new RegExp(`retrieving transpile cache for StrippedTypeScript file://\\S*/src/${module}\\.\\.\\.success`)
const accepted = (module: string) => new RegExp(`V8 code cache for ESM file://\\S*/src/${module} was accepted`)

describe('module compile cache', () => {
  it('is written by the first run of a command and read by the second', async () => {
    const tmp = freshTmp()
    const first = await run(tmp, ['check', 'zones'])
    expect(first).not.toMatch(hit('cli-main.ts'))
    const cache = join(tmp, 'node-compile-cache')
    expect(existsSync(cache)).toBe(true)
    expect(readdirSync(cache).length).toBeGreaterThan(0)
    const second = await run(tmp, ['check', 'zones'])
    expect(second).toMatch(hit('cli-main.ts'))
    expect(second).toMatch(accepted('cli-main.ts'))
    expect(second).toMatch(hit('zone/compile.ts'))
  }, 60_000)

  it('reaches the worker threads of gslb serve --workers 2', async () => {
    const tmp = freshTmp()
    const answers = async (port: number, out: string): Promise<boolean> =>
      out.includes('worker threads answering') &&
      (await dig('127.0.0.1', port, 'www.example.com', 'A')).answer.length > 0
    const serve = async (): Promise<string> => {
      const port = await freePort()
      const args = ['serve', '--zones', 'test/fixtures/zones', '--listen', `127.0.0.1:${port}`, '--admin', 'off']
      return run(tmp, [...args, '--workers', '2'], (out) => answers(port, out))
    }
    await serve()
    const second = await serve()
    expect(second).toMatch(hit('workers/worker.ts'))
    expect(second).toMatch(accepted('workers/worker.ts'))
  }, 60_000)
})
