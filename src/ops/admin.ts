/**
 * @module ops/admin
 * The admin HTTP listener (`--admin`, 127.0.0.1 by default): health, status, operator actions and
 * pushed health for an instance, and the decision trace. It is how operators reach an embedded
 * server's in-memory state; with Redis the CLI can write the store directly instead.
 *
 *   GET  /healthz                 process alive
 *   GET  /readyz                  200 when ready to answer (zones loaded, health view fresh), else 503 + reason
 *   GET  /metrics                 Prometheus text format
 *   GET  /status                  the `gslb status --json` report
 *   GET  /audit?limit=N           operator actions, newest first
 *   GET  /explain?name=&type=&client=&ecs=   decision trace (text)
 *   POST /action                  { action, target, weight?, for?, from?, until?, who?, why? }
 *
 * With `--admin-token`, every route needs the bearer token, probes and scrapes included (both
 * Kubernetes probes and Prometheus can send the header).
 */

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { ConfigError } from '../errors.ts'
import { explain } from '../explain.ts'
import type { Quorum } from '../health/builder.ts'
import type { HealthStore } from '../health/state.ts'
import type { Logger } from '../log.ts'
import type { GeoLookup } from '../query/context.ts'
import type { StateStore } from '../state/types.ts'
import type { ZoneTable } from '../zone/table.ts'
import { applyAction, isAction, parseDuration, parseTime } from './actions.ts'
import { statusReport } from './status.ts'

export interface AdminOptions {
  readonly host: string
  readonly port: number
  /** When set, every request needs `Authorization: Bearer <token>`. */
  readonly token: string | undefined
  readonly store: StateStore
  readonly health: HealthStore
  readonly table: () => ZoneTable
  readonly geo: GeoLookup | undefined
  readonly quorum: Quorum
  readonly log: Logger
  /** This instance's own sync state, shown by /status: how stale its view is, which generation. */
  readonly self?:
    | (() => { instance: string; store: string; connected: boolean; generation: number; staleMs: number })
    | undefined
  /** For /readyz; without it the instance counts as ready once the admin endpoint is up. */
  readonly ready?: (() => Readiness) | undefined
  /** For /metrics; without it /metrics is 404. */
  readonly metrics?: (() => Promise<{ contentType: string; text: string }>) | undefined
}

/** Whether the instance should get traffic; `reason` says why not. */
export type Readiness = { readonly ready: true } | { readonly ready: false; readonly reason: string }

export interface AdminServer {
  readonly port: number
  close(): Promise<void>
}

const MAX_BODY = 64 * 1024

export function startAdmin(opts: AdminOptions): Promise<AdminServer> {
  const server: Server = createServer((req, res) => {
    handle(req, res, opts).catch((err: unknown) => {
      const status = err instanceof ConfigError ? 400 : 500
      if (status === 500) opts.log.error({ err }, 'admin request failed')
      send(res, status, { error: (err as Error).message })
    })
  })
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port, opts.host, () => {
      const addr = server.address()
      resolve({
        port: typeof addr === 'object' && addr ? addr.port : opts.port,
        close: () => new Promise<void>((r) => server.close(() => r())),
      })
    })
  })
}

async function handle(req: IncomingMessage, res: ServerResponse, opts: AdminOptions): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://admin')
  if (opts.token !== undefined && req.headers.authorization !== `Bearer ${opts.token}`) {
    send(res, 401, { error: 'missing or wrong bearer token' })
    return
  }
  const route = `${req.method} ${url.pathname}`
  switch (route) {
    case 'GET /healthz':
      send(res, 200, { ok: true })
      return
    case 'GET /readyz': {
      const r = opts.ready?.() ?? { ready: true }
      send(res, r.ready ? 200 : 503, r)
      return
    }
    case 'GET /metrics': {
      if (!opts.metrics) break
      const m = await opts.metrics()
      res.writeHead(200, { 'content-type': m.contentType }).end(m.text)
      return
    }
    case 'GET /status': {
      const data = await opts.store.load()
      const instances = await opts.store.instances().catch(() => [])
      send(res, 200, { ...statusReport(data, opts.table().zones, instances, opts.quorum), self: opts.self?.() })
      return
    }
    case 'GET /audit':
      send(res, 200, await opts.store.audit(Number(url.searchParams.get('limit') ?? 100)))
      return
    case 'GET /explain': {
      const p = url.searchParams
      const text = explain(opts.table(), opts.geo, opts.health.current, {
        name: p.get('name') ?? '',
        qtype: p.get('type') ?? 'A',
        client: p.get('client') ?? '127.0.0.1',
        ecs: p.get('ecs') ?? undefined,
      })
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end(`${text}\n`)
      return
    }
    case 'POST /action': {
      const body = await readJson(req)
      const action = String(body['action'] ?? '')
      if (!isAction(action)) throw new ConfigError(`unknown action "${action}"`)
      const now = Date.now()
      const from = typeof body['from'] === 'string' ? parseTime(body['from'], now) : undefined
      const until =
        typeof body['until'] === 'string'
          ? parseTime(body['until'], now)
          : typeof body['for'] === 'string'
            ? (from ?? now) + parseDuration(body['for'])
            : undefined
      const done = await applyAction(opts.store, opts.table().zones, {
        action,
        target: String(body['target'] ?? ''),
        weight: typeof body['weight'] === 'number' ? body['weight'] : undefined,
        from,
        until,
        who: String(body['who'] ?? `admin@${req.socket.remoteAddress ?? '?'}`),
        why: String(body['why'] ?? ''),
      })
      send(res, 200, { done })
      return
    }
  }
  send(res, 404, { error: `no route ${route}` })
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  let size = 0
  const chunks: Buffer[] = []
  for await (const c of req) {
    size += (c as Buffer).length
    if (size > MAX_BODY) throw new ConfigError('request body too large')
    chunks.push(c as Buffer)
  }
  try {
    const v: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}')
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object')
    return v as Record<string, unknown>
  } catch {
    throw new ConfigError('expected a JSON object body')
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body, null, 2)}\n`)
}
