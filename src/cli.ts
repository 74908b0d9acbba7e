#!/usr/bin/env node
/**
 * @module cli
 * `gslb`: the single command operators use. Subcommands:
 *   gslb serve --zones DIR --listen ADDR:PORT [...]   run the DNS server
 *   gslb check DIR                                    validate zone files, exit non-zero on errors
 */

import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { resolveServeConfig, type ServeFlags } from './config/server-config.ts'
import { ZoneSet } from './config/zone-set.ts'
import { nameFromKey, nameFromWire, nameToString } from './dns/name.ts'
import { typeName } from './dns/types.ts'
import { ConfigError, GslbError } from './errors.ts'
import { explain } from './explain.ts'
import { GeoDatabase } from './geo/reader.ts'
import { ALL_UP } from './health/state.ts'
import { createLogger } from './log.ts'
import { runGoldenTests } from './policy/golden.ts'
import { startServer } from './server/index.ts'
import type { QueryObserver } from './server/observer.ts'

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string })
  .version

const USAGE = `gslb ${VERSION}: authoritative GSLB DNS server

Usage:
  gslb serve [--zones DIR] [--listen ADDR:PORT ...] [options]
  gslb check [DIR] [--geoip PATH ...]
  gslb explain [--zones DIR] NAME [TYPE] --client IP [--ecs SUBNET] [--down EP,...] [--geoip PATH ...]
  gslb version

serve options:
  --zones DIR               zone files directory (default: zones)
  --listen ADDR:PORT        UDP and TCP listen address, repeatable; IPv6 as [::1]:5300
                            (default: 127.0.0.1:5300)
  --config FILE             YAML settings file; flags override it
  --log-level LEVEL         fatal, error, warn, info (default), debug, trace, silent
  --query-log-sample N      log this fraction (0..1) of queries (default 0)
  --nsid TEXT|0xHEX         answer NSID (RFC 5001) requests with this identifier
  --chaos-id TEXT           answer CH TXT id.server / hostname.bind (off by default)
  --chaos-version TEXT      answer CH TXT version.bind / version.server (off by default)
  --no-watch                reload zones only on SIGHUP, not on file changes
  --geoip PATH              MaxMind DB for geo policies (City, Country, ASN, ip-location-db),
                            repeatable; default: the bundled CC0 country database

check runs every zone's golden tests (services.*.tests) after validating it.
explain prints the decision trace for one query: geo data, each policy step, answer, TTL, scope.
`

async function serve(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: 'string' },
      zones: { type: 'string' },
      listen: { type: 'string', multiple: true },
      'log-level': { type: 'string' },
      'query-log-sample': { type: 'string' },
      nsid: { type: 'string' },
      'chaos-id': { type: 'string' },
      'chaos-version': { type: 'string' },
      'no-watch': { type: 'boolean' },
      geoip: { type: 'string', multiple: true },
    },
    strict: true,
  })
  const cfg = resolveServeConfig(values as ServeFlags)
  const log = createLogger(cfg.logLevel)
  const geo = await GeoDatabase.open(cfg.geoip, log)
  for (const d of geo.describe())
    log.info({ path: d.path, schema: d.schema, built: d.buildDate }, 'geo database loaded')
  geo.watch()
  const observe = cfg.queryLogSample > 0 ? queryLogger(log, cfg.queryLogSample) : undefined
  const server = await startServer({
    zonesDir: cfg.zones,
    listen: cfg.listen,
    log,
    watch: cfg.watch,
    tcp: cfg.tcp,
    ...(observe ? { observe } : {}),
    answer: {
      nsid: cfg.nsid,
      chaos: { id: cfg.chaosId, version: cfg.chaosVersion },
      maxUdpSize: cfg.maxUdpSize,
      geo,
    },
  })
  process.on('SIGHUP', () => server.reload('SIGHUP'))
  return new Promise<number>((resolveExit) => {
    let stopping = false
    const stop = (signal: string): void => {
      geo.close()
      if (stopping) {
        log.warn({ signal }, 'second signal; exiting now')
        process.exit(1)
      }
      stopping = true
      log.info({ signal }, 'shutting down: no new connections, finishing open TCP answers')
      void server.close().then(() => {
        log.info('stopped')
        resolveExit(0)
      })
    }
    process.on('SIGTERM', () => stop('SIGTERM'))
    process.on('SIGINT', () => stop('SIGINT'))
  })
}

function queryLogger(log: ReturnType<typeof createLogger>, rate: number): QueryObserver {
  const qlog = log.child({ log: 'query' })
  return (query, response, transport, client) => {
    if (Math.random() >= rate) return
    let end = 12
    while (end < query.length && query[end] !== 0) end += query[end]! + 1
    const qname = end < query.length ? nameToString(nameFromWire(Buffer.from(query.subarray(12, end + 1)))) : '?'
    const qtype = end + 3 <= query.length ? typeName(query.readUInt16BE(end + 1)) : '?'
    qlog.info({ client, transport, qname, qtype, rcode: response[3]! & 0xf, size: response.length }, 'query')
  }
}

async function check(args: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: { geoip: { type: 'string', multiple: true } },
  })
  const dir = positionals[0] ?? 'zones'
  const set = new ZoneSet(dir)
  const report = set.reload()
  let errors = 0
  for (const f of report.files) {
    for (const w of f.warnings) process.stdout.write(`warning: ${w.message}\n`)
    if (f.errors.length > 0) {
      errors += f.errors.length
      for (const e of f.errors) process.stdout.write(`error: ${e.message}\n`)
    } else {
      process.stdout.write(`ok: ${f.file}: ${f.zone} serial ${f.serial}\n`)
    }
  }
  if (report.files.length === 0) {
    process.stdout.write(`error: no zone files (*.zone, *.yaml, *.yml) in ${dir}\n`)
    return 1
  }
  const zones = set.table.zones.filter((z) => z.services.some((s) => s.config.tests.length > 0))
  if (zones.length > 0) {
    const geo = await GeoDatabase.open(values.geoip ?? [])
    let passed = 0
    for (const zone of zones) {
      for (const t of runGoldenTests(zone, geo)) {
        if (t.ok) passed++
        else {
          errors++
          process.stdout.write(
            `error: ${t.file}:${t.line}: test of ${nameToString(nameFromKey(t.service))}: ${t.problem}, got ${t.got}\n`,
          )
        }
      }
    }
    process.stdout.write(`golden tests: ${passed} passed\n`)
  }
  if (errors > 0) {
    process.stdout.write(`${errors} error(s); the server would refuse these files and keep their last good version\n`)
    return 1
  }
  return 0
}

async function explainCommand(args: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      zones: { type: 'string' },
      client: { type: 'string' },
      ecs: { type: 'string' },
      down: { type: 'string' },
      seed: { type: 'string' },
      geoip: { type: 'string', multiple: true },
    },
  })
  const [name, qtype = 'A'] = positionals
  if (!name || !values.client)
    throw new ConfigError('usage: gslb explain [--zones DIR] NAME [TYPE] --client IP [--ecs SUBNET]')
  const set = new ZoneSet(values.zones ?? 'zones')
  for (const f of set.reload().files) for (const e of f.errors) process.stderr.write(`error: ${e.message}\n`)
  const geo = await GeoDatabase.open(values.geoip ?? [])
  let health = ALL_UP
  for (const ep of (values.down ?? '').split(',').filter(Boolean)) {
    for (const z of set.table.zones) health = health.with([[z.apex.key, ep, { up: false }]])
  }
  const seed = values.seed === undefined ? undefined : Number(values.seed)
  process.stdout.write(
    `${explain(set.table, geo, health, { name, qtype, client: values.client, ecs: values.ecs, seed })}\n`,
  )
  return 0
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv
  switch (cmd) {
    case 'serve':
      return serve(rest)
    case 'check':
      return check(rest)
    case 'explain':
      return explainCommand(rest)
    case 'version':
    case '--version':
      process.stdout.write(`${VERSION}\n`)
      return 0
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE)
      return cmd === undefined ? 2 : 0
    default:
      process.stderr.write(`gslb: unknown command "${cmd}"\n\n${USAGE}`)
      return 2
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    // Bad flags and unloadable zones are the operator's to fix: say what, without a stack trace.
    const known =
      err instanceof GslbError ||
      (err instanceof Error && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS'))
    process.stderr.write(`gslb: ${known || err instanceof Error ? (err as Error).message : String(err)}\n`)
    if (!known && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`)
    process.exitCode = 1
  },
)
