/**
 * Child-process helpers shared by the benchmark scripts (run.ts, scale.ts, gdnsd.ts): quoting a
 * command for the report, waiting for an exit, and waiting until a server answers DNS on
 * 127.0.0.1. Free ports come from test/helpers/process.ts like everywhere else in the tests.
 */

import type { ChildProcess } from 'node:child_process'
import { createSocket } from 'node:dgram'

const HOST = '127.0.0.1'

/** The command as a shell line, quoting only what needs it. */
export function shellQuote(args: readonly string[]): string {
  return args.map((a) => (/^[\w@%+=:,./[\]-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ')
}

export function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null
}

/** Resolves true once `child` has exited, false if it is still running after `ms`. */
export function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (exited(child)) return Promise.resolve(true)
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms)
    child.once('exit', () => {
      clearTimeout(timer)
      resolve(true)
    })
  })
}

/**
 * Sends `qname A` to 127.0.0.1:`port` every 100 ms until any reply arrives; rejects when `child`
 * exits first or `timeoutMs` passes.
 */
export function waitReady(port: number, child: ChildProcess, timeoutMs: number, qname: string): Promise<void> {
  const q = Buffer.concat([
    Buffer.from([0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]),
    ...qname.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])),
    Buffer.from([0, 0, 1, 0, 1]),
  ])
  return new Promise((resolve, reject) => {
    const sock = createSocket('udp4')
    const done = (err?: Error): void => {
      clearInterval(tick)
      clearTimeout(timer)
      child.off('exit', onExit)
      sock.close()
      if (err) reject(err)
      else resolve()
    }
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void =>
      done(new Error(`exited (${signal ?? `code ${code}`}) before answering`))
    child.once('exit', onExit)
    sock.on('message', (m) => {
      if (m.length >= 12 && m[0] === 0x12 && m[1] === 0x34) done()
    })
    // ICMP port unreachable before the server binds surfaces here; keep polling.
    sock.on('error', () => {})
    const send = (): void => sock.send(q, port, HOST)
    const tick = setInterval(send, 100)
    const timer = setTimeout(() => done(new Error(`no answer on ${HOST}:${port} within ${timeoutMs} ms`)), timeoutMs)
    send()
  })
}
