/**
 * Starts the real server in-process on 127.0.0.1 (and optionally ::1) with a free port, for
 * tests that query it with dig, kdig or raw sockets.
 */

import { cpSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ResponseRateLimiter } from '../../src/dns/rrl.ts'
import { createLogger } from '../../src/log.ts'
import type { AnswerConfig } from '../../src/query/handle.ts'
import { type RunningServer, startServer } from '../../src/server/index.ts'
import type { TcpLimits } from '../../src/server/tcp.ts'

export interface TestServer {
  readonly server: RunningServer
  readonly port: number
  /** A private copy of the zones, safe to edit for reload tests. */
  readonly zonesDir: string
  stop(): Promise<void>
}

export const FIXTURES = new URL('../fixtures/', import.meta.url).pathname

export async function startTestServer(
  opts: {
    zones?: string
    answer?: AnswerConfig
    tcp?: Partial<TcpLimits>
    watch?: boolean
    ipv6?: boolean
    rrl?: ResponseRateLimiter
  } = {},
): Promise<TestServer> {
  const zonesDir = mkdtempSync(join(tmpdir(), 'gslb-zones-'))
  cpSync(opts.zones ?? join(FIXTURES, 'zones'), zonesDir, { recursive: true })
  const listen = [{ host: '127.0.0.1', port: 0 }]
  const server = await startServer({
    zonesDir,
    listen,
    log: createLogger('silent'),
    watch: opts.watch ?? false,
    ...(opts.answer ? { answer: opts.answer } : {}),
    ...(opts.tcp ? { tcp: opts.tcp } : {}),
    ...(opts.rrl ? { rrl: opts.rrl } : {}),
  })
  const port = server.addresses[0]!.port
  return {
    server,
    port,
    zonesDir,
    async stop() {
      await server.close(100)
      rmSync(zonesDir, { recursive: true, force: true })
    },
  }
}
