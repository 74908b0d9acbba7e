/**
 * Running the real `gslb` command in tests: spawning it with its output captured, finding free
 * loopback ports, and waiting for a condition with a deadline.
 */

import { type ChildProcess, spawn } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { createServer } from 'node:net'

export const CLI = new URL('../../src/cli.ts', import.meta.url).pathname
export const ROOT = new URL('../../', import.meta.url).pathname

export interface CliProcess {
  readonly child: ChildProcess
  /** Everything written to stdout and stderr so far. */
  log(): string
  readonly exited: Promise<number | null>
}

/** `node src/cli.ts ARGS` with Node 24 (this process's), run from the repository root. */
export function spawnCli(args: readonly string[]): CliProcess {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString()
  })
  child.stderr!.on('data', (d: Buffer) => {
    out += d.toString()
  })
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)))
  return { child, log: () => out, exited }
}

/** A port free for both UDP and TCP on 127.0.0.1 at the time of asking. */
export async function freePort(): Promise<number> {
  for (;;) {
    const tcp = createServer()
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r))
    const port = (tcp.address() as { port: number }).port
    const udp = createSocket('udp4')
    const ok = await new Promise<boolean>((r) => {
      udp.once('error', () => r(false))
      udp.bind(port, '127.0.0.1', () => r(true))
    })
    udp.close()
    await new Promise((r) => tcp.close(r))
    if (ok) return port
  }
}

/** Polls `what` until `ok` holds or `timeoutMs` passes; returns the last value and how long it took. */
export async function waitFor<T>(
  what: () => Promise<T> | T,
  ok: (v: T) => boolean,
  timeoutMs = 5000,
  everyMs = 50,
): Promise<{ value: T; ms: number }> {
  const t0 = Date.now()
  for (;;) {
    const value = await what()
    if (ok(value) || Date.now() - t0 > timeoutMs) return { value, ms: Date.now() - t0 }
    await new Promise((r) => setTimeout(r, everyMs))
  }
}

export interface ServeCli {
  readonly proc: CliProcess
  readonly dns: number
  /** Base URL of the admin endpoint. */
  readonly admin: string
}

/** `gslb serve` on `dir` with DNS and admin on free 127.0.0.1 ports, once its admin endpoint listens. */
export async function startServeCli(dir: string, extra: readonly string[] = []): Promise<ServeCli> {
  const dns = await freePort()
  const adminPort = await freePort()
  const proc = spawnCli([
    'serve',
    '--zones',
    dir,
    '--listen',
    `127.0.0.1:${dns}`,
    '--admin',
    `127.0.0.1:${adminPort}`,
    ...extra,
  ])
  const { value } = await waitFor(
    proc.log,
    (l) => l.includes('admin endpoint listening') || proc.child.exitCode !== null,
    15_000,
  )
  if (!value.includes('admin endpoint listening')) throw new Error(`server did not start:\n${value}`)
  return { proc, dns, admin: `http://127.0.0.1:${adminPort}` }
}
