/**
 * Starts a private `redis-server` on 127.0.0.1 with a free port, for tests of the Redis state
 * store. Nothing is persisted and nothing outside loopback is touched; every server started here
 * is killed when the test process exits, even if a test forgot to stop it.
 */

import { type ChildProcess, spawn } from 'node:child_process'
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs'
import { createConnection, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

export interface TestRedis {
  readonly port: number
  /** `redis://127.0.0.1:<port>` */
  readonly url: string
  /** SIGTERM (no save is configured) and wait for the process to exit; idempotent. */
  stop(): Promise<void>
  /** SIGKILL and wait for exit: the server vanishes without closing anything cleanly. */
  kill(): Promise<void>
  /** Start again on the same port (after stop or kill), resolved once PING answers. */
  restart(): Promise<void>
}

export interface StartRedisOptions {
  /** Run as a one-node Redis Cluster owning every slot (to test cross-slot safety). */
  readonly cluster?: boolean
}

/** Whether `redis-server` is on PATH; integration suites use `describe.skipIf(!hasRedis)`. */
export const hasRedis: boolean = onPath('redis-server')

const live = new Set<ChildProcess>()
const dirs = new Set<string>()
function cleanUp(): void {
  for (const child of live) child.kill('SIGKILL')
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
  dirs.clear()
}
process.once('exit', cleanUp)
// Vitest's fork pool ends a test file's process without an 'exit' event, which left every data
// directory behind (~25 per test run); under Vitest the file's own afterAll does it. The demo
// (test/demo/cluster.ts) runs outside Vitest and keeps the 'exit' handler.
if (process.env['VITEST'] !== undefined) {
  const { afterAll } = await import('vitest')
  afterAll(cleanUp)
}

export async function startRedis(options: StartRedisOptions = {}): Promise<TestRedis> {
  // Kept until the test file (or process) ends: a restart after stop() still needs it (cluster mode keeps nodes.conf there).
  const dir = mkdtempSync(join(tmpdir(), 'gslb-redis-'))
  dirs.add(dir)
  let child: ChildProcess | undefined
  let port = 0
  // The free port is only free until someone else takes it; try a few before giving up.
  for (let attempt = 1; ; attempt++) {
    port = await freePort()
    try {
      child = await launch(port, dir, options)
      break
    } catch (err) {
      if (attempt >= 5) throw err
    }
  }
  let current: ChildProcess | undefined = child

  async function end(signal: NodeJS.Signals): Promise<void> {
    const proc = current
    current = undefined
    if (proc === undefined) return
    await terminate(proc, signal)
  }

  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stop: () => end('SIGTERM'),
    kill: () => end('SIGKILL'),
    restart: async () => {
      await end('SIGTERM')
      current = await launch(port, dir, options)
    },
  }
}

async function launch(port: number, dir: string, options: StartRedisOptions): Promise<ChildProcess> {
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
    '--protected-mode',
    'no',
    '--dir',
    dir,
    '--loglevel',
    'warning',
  ]
  if (options.cluster) {
    args.push('--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-announce-ip', '127.0.0.1')
  }
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] })
  live.add(child)
  let output = ''
  const collect = (chunk: Buffer) => {
    // Keep only the tail: enough to explain a failed start.
    output = (output + chunk.toString()).slice(-4000)
  }
  child.stdout?.on('data', collect)
  child.stderr?.on('data', collect)
  let exited = false
  child.once('exit', () => {
    exited = true
    live.delete(child)
  })

  const deadline = Date.now() + 10_000
  while (!(await command(port, 'PING')).startsWith('+PONG')) {
    if (exited || Date.now() > deadline) {
      await terminate(child, 'SIGKILL')
      throw new Error(`redis-server on port ${port} did not answer PING:\n${output}`)
    }
    await sleep(20)
  }
  if (options.cluster) {
    // A restarted node keeps its slots in nodes.conf; adding them again just errors harmlessly.
    await command(port, 'CLUSTER ADDSLOTSRANGE 0 16383')
    while (!(await command(port, 'CLUSTER INFO')).includes('cluster_state:ok')) {
      if (exited || Date.now() > deadline) {
        await terminate(child, 'SIGKILL')
        throw new Error(`redis-server on port ${port} did not reach cluster_state:ok:\n${output}`)
      }
      await sleep(20)
    }
  }
  return child
}

async function terminate(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill(signal)
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000)
  await exited
  clearTimeout(timer)
}

/** Sends one inline command, then QUIT, and returns everything the server replied ('' if refused). */
function command(port: number, line: string): Promise<string> {
  return new Promise((resolve) => {
    let reply = ''
    const socket = createConnection({ host: '127.0.0.1', port })
    socket.setTimeout(2_000, () => socket.destroy())
    socket.on('connect', () => socket.write(`${line}\r\nQUIT\r\n`))
    socket.on('data', (chunk) => {
      reply += chunk.toString()
    })
    socket.on('error', () => {})
    socket.on('close', () => resolve(reply))
  })
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

/** Whether an executable of that name is on PATH. */
export function onPath(bin: string): boolean {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (dir === '') continue
    try {
      accessSync(join(dir, bin), constants.X_OK)
      return true
    } catch {
      // not in this directory
    }
  }
  return false
}
