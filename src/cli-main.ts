/**
 * @module cli-main
 * `gslb`: the single command operators use. Subcommands:
 *   gslb serve --zones DIR --listen ADDR:PORT [...]   run the DNS server
 *   gslb check DIR                                    validate zone files, exit non-zero on errors
 */

import { readFileSync, watch } from 'node:fs'
import { availableParallelism, hostname, userInfo } from 'node:os'
import { parseArgs } from 'node:util'
import { DEFAULT_ADMIN, parseListen, parseQuorum, resolveServeConfig, type ServeFlags } from './config/server-config.ts'
import { ZoneSet } from './config/zone-set.ts'
import { nameFromKey, nameToString } from './dns/name.ts'
import { ConfigError, GslbError } from './errors.ts'
import { explain } from './explain.ts'
import { GeoDatabase } from './geo/reader.ts'
import { ALL_UP } from './health/state.ts'
import { createLogger } from './log.ts'
import { type Action, applyAction, isAction, parseDuration, parseTime } from './ops/actions.ts'
import { doctorExitCode, formatFindings, runDoctor } from './ops/doctor.ts'
import { servingHeap, tuneHeapForServing } from './ops/heap.ts'
import { formatStatus, type StatusReport, statusReport } from './ops/status.ts'
import { chosenPoolSize, DEFAULT_V8_POOL } from './ops/v8-pool.ts'
import { failoverBudget } from './policy/budget.ts'
import { runGoldenTests } from './policy/golden.ts'
import type { ProbeTarget } from './probe/types.ts'
import { startProber } from './probe/worker.ts'
import { guardedCheck, instanceName, serve as runServe, stateStore } from './serve.ts'
import type { AuditEntry, StateStore } from './state/types.ts'

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string })
  .version

const USAGE = `gslb ${VERSION}: authoritative GSLB DNS server

Usage:
  gslb serve [--zones DIR] [--listen ADDR:PORT ...] [options]
  gslb check [DIR] [--geoip PATH ...]
  gslb explain [--zones DIR] NAME [TYPE] --client IP [--ecs SUBNET] [--down EP,...] [--geoip PATH ...]
  gslb probe --zones DIR (--redis URL | --config FILE) --region NAME [--id ID] [--heartbeat DUR]
  gslb status [--json] [--audit] [--redis URL | --config FILE | --admin ADDR:PORT]
  gslb drain|undrain|force-up|force-down|unforce TARGET [--for 1h] [--from TIME] [--until TIME] [--why TEXT]
  gslb weight TARGET N [--for 1h]
  gslb push-up|push-down TARGET --for 10m [--why TEXT]       (external health input; unpush clears)
  gslb doctor --zone ZONE --parent ADDR:PORT --instance ADDR:PORT ... [--redis URL] [--zones DIR]
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
  --workers N|auto          answer DNS on N threads sharing the listen addresses (SO_REUSEPORT,
                            Linux); auto = one per available core (default 1: no threads)
  --reload-mode MODE        in-place (default): reload zones between queries; handover: answer
                            on worker threads (one with --workers 1) and replace them on a zone
                            change with fresh ones that loaded it, so no answering thread loads
                            (Linux; one more copy of the zones, a third while it runs)
  --udp-io MODE             auto (default): batched recvmmsg/sendmmsg where the addon is built
                            (Linux), else dgram; batched (fail if unavailable); dgram
  --geoip PATH              MaxMind DB for geo policies (City, Country, ASN, ip-location-db),
                            repeatable; default: the bundled CC0 country database
  --redis URL               shared state (redis://, rediss://); default: in-memory, probes in-process
  --redis-prefix P          key prefix, so several deployments share one Redis (default gslb:)
  --region NAME             vantage region of the in-process prober (default local)
  --quorum Q                vantages that must say up: majority (default), any, all or a number
  --slow-start DUR          ramp a recovered endpoint's weight over this long (default 30s, 0 = off)
  --stale-after DUR         how long the view may go without a store read (default 5m) before
  --stale-mode MODE         keep (default) the last view, or fail-open (treat all as up)
  --admin ADDR:PORT|off     admin HTTP endpoint (default 127.0.0.1:5380)
  --admin-token TOKEN       require Authorization: Bearer TOKEN on the admin endpoint
  --probe-allow CIDR        let probes reach this network even if a default deny covers it
  --probe-deny CIDR         never probe this network (also for gslb probe); repeatable
  --webhook URL             POST JSON to URL on every endpoint/pool state change (with retry)
  --rrl N                   response rate limiting over UDP: N responses/s per client network
                            (/24, /56), slip 2; off by default (settings file: rrl: {...})

TARGET is an endpoint name, zone/endpoint, or pool:NAME (all its endpoints). Operator commands
write to Redis with --redis (or the Redis settings of --config FILE: URL, Sentinel or Cluster),
else to the admin endpoint of a running server (--admin). GSLB_REDIS in the environment stands in
for --redis, so a password need not appear in the process list.

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
      workers: { type: 'string' },
      'reload-mode': { type: 'string' },
      'udp-io': { type: 'string' },
      geoip: { type: 'string', multiple: true },
      redis: { type: 'string' },
      'redis-prefix': { type: 'string' },
      region: { type: 'string' },
      quorum: { type: 'string' },
      'slow-start': { type: 'string' },
      'stale-after': { type: 'string' },
      'stale-mode': { type: 'string' },
      admin: { type: 'string' },
      'admin-token': { type: 'string' },
      'probe-allow': { type: 'string', multiple: true },
      'probe-deny': { type: 'string', multiple: true },
      webhook: { type: 'string', multiple: true },
      rrl: { type: 'string' },
    },
    strict: true,
  })
  const cfg = resolveServeConfig(values as ServeFlags)
  // src/cli.ts has sized V8's worker pool to these CPUs by now, re-executing if it had to.
  const cpus = availableParallelism()
  const log = createLogger(cfg.logLevel)
  log.info(
    { cpus, v8PoolSize: chosenPoolSize(process.execArgv, process.env['NODE_OPTIONS']) ?? DEFAULT_V8_POOL },
    'V8 worker pool',
  )
  tuneHeapForServing()
  // The startup load's garbage and fragmentation would otherwise stay committed (ops/heap); a
  // large zone set takes a few hundred ms, spent before the sockets open rather than on queries.
  const running = await runServe(cfg, log, VERSION, undefined, servingHeap(log))
  process.on('SIGHUP', () => running.reload('SIGHUP'))
  return untilSignal(log, () => running.close())
}

/** Waits for SIGTERM/SIGINT, runs `close`, resolves with exit code 0; a second signal exits at once. */
function untilSignal(log: ReturnType<typeof createLogger>, close: () => Promise<void>): Promise<number> {
  return new Promise<number>((resolveExit) => {
    let stopping = false
    const stop = (signal: string): void => {
      if (stopping) {
        log.warn({ signal }, 'second signal; exiting now')
        process.exit(1)
      }
      stopping = true
      log.info({ signal }, 'shutting down: no new connections, finishing open TCP answers')
      void close().then(() => {
        log.info('stopped')
        resolveExit(0)
      })
    }
    process.on('SIGTERM', () => stop('SIGTERM'))
    process.on('SIGINT', () => stop('SIGINT'))
  })
}

/** `gslb probe`: a probing worker for one vantage region, writing to Redis. */
async function probe(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      zones: { type: 'string' },
      redis: { type: 'string' },
      'redis-prefix': { type: 'string' },
      config: { type: 'string' },
      region: { type: 'string' },
      'log-level': { type: 'string' },
      id: { type: 'string' },
      heartbeat: { type: 'string' },
      'probe-allow': { type: 'string', multiple: true },
      'probe-deny': { type: 'string', multiple: true },
    },
  })
  const log = createLogger((values['log-level'] as 'info' | undefined) ?? 'info')
  const store = redisFrom(values, log)
  if (!store)
    throw new ConfigError(
      'gslb probe needs --redis URL, GSLB_REDIS or --config FILE with Redis settings (without Redis, gslb serve probes in-process)',
    )
  const set = new ZoneSet(values.zones ?? 'zones')
  const first = set.reload()
  for (const f of first.files)
    for (const e of f.errors) log.error({ file: e.file, line: e.line, field: e.field }, e.message)
  const region = values.region ?? 'local'
  const proberId = values.id ?? instanceName()
  // Heartbeats follow the fastest check so a dead prober's share moves within a few intervals.
  const targets = (): ProbeTarget[] => set.table.zones.flatMap((z) => z.probes)
  const fastest = Math.min(...targets().map((t) => t.check.intervalMs), 5000)
  const heartbeatMs = values.heartbeat ? parseDuration(values.heartbeat) : Math.max(500, Math.min(5000, fastest * 2))
  const run = guardedCheck(values['probe-allow'] ?? [], values['probe-deny'] ?? [])
  const worker = startProber({ targets, store, vantage: region, prober: proberId, log, heartbeatMs, run })
  log.info({ region, prober: proberId, targets: targets().length, heartbeatMs }, 'prober started')
  const watcher = watch(set.dir, { recursive: true, persistent: false }, () => {
    const r = set.reload()
    if (r.changed) worker.reload()
  })
  process.on('SIGHUP', () => {
    if (set.reload().changed) worker.reload()
  })
  return untilSignal(log, async () => {
    watcher.close()
    await worker.stop()
    await store.close()
  })
}

interface RedisFlags {
  readonly redis?: string | undefined
  readonly 'redis-prefix'?: string | undefined
  readonly config?: string | undefined
}

/**
 * The Redis store a command should use: --redis URL, else GSLB_REDIS from the environment, else
 * the Redis settings (URL, Sentinel or Cluster) of a --config file; undefined when none is given.
 * The same `stateStore` as `gslb serve`, so prefixes and Cluster hash tags always agree.
 */
function redisFrom(values: RedisFlags, log?: ReturnType<typeof createLogger>): StateStore | undefined {
  const url = values.redis ?? process.env['GSLB_REDIS']
  const cfg = resolveServeConfig({
    ...(values.config ? { config: values.config } : {}),
    ...(url ? { redis: url } : {}),
    ...(values['redis-prefix'] ? { 'redis-prefix': values['redis-prefix'] } : {}),
    admin: 'off',
  })
  if (!cfg.redis && !cfg.redisSentinel && !cfg.redisCluster) return undefined
  return stateStore(cfg, log ?? createLogger('silent'))
}

interface OpsTarget {
  readonly store: StateStore | undefined
  readonly admin: string | undefined
  readonly token: string | undefined
}

const OPS_OPTIONS = {
  redis: { type: 'string' },
  'redis-prefix': { type: 'string' },
  config: { type: 'string' },
  admin: { type: 'string' },
  'admin-token': { type: 'string' },
  zones: { type: 'string' },
} as const

function opsTarget(values: RedisFlags & { admin?: string | undefined; 'admin-token'?: string | undefined }): OpsTarget {
  const store = redisFrom(values)
  if (store) return { store, admin: undefined, token: undefined }
  const admin = values.admin ?? `http://${DEFAULT_ADMIN}`
  return { store: undefined, admin: admin.startsWith('http') ? admin : `http://${admin}`, token: values['admin-token'] }
}

async function adminRequest(t: OpsTarget, method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${t.admin}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...(t.token ? { authorization: `Bearer ${t.token}` } : {}) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  }).catch((err: unknown) => {
    throw new ConfigError(
      `cannot reach the admin endpoint ${t.admin}: ${(err as Error).message} (use --redis URL or --admin ADDR:PORT)`,
    )
  })
  const json: unknown = await res.json()
  if (!res.ok) throw new ConfigError(`admin endpoint: ${(json as { error?: string }).error ?? res.status}`)
  return json
}

/** `gslb status [--json] [--audit]`. */
async function status(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: { ...OPS_OPTIONS, json: { type: 'boolean' }, audit: { type: 'boolean' }, quorum: { type: 'string' } },
  })
  const t = opsTarget(values)
  let report: StatusReport
  let audit: AuditEntry[] = []
  if (t.store) {
    const set = new ZoneSet(values.zones ?? 'zones')
    set.reload()
    const data = await t.store.load()
    report = statusReport(data, set.table.zones, await t.store.instances(), parseQuorum(values.quorum ?? 'majority'))
    if (values.audit) audit = await t.store.audit(50)
    await t.store.close()
  } else {
    report = (await adminRequest(t, 'GET', '/status')) as StatusReport
    if (values.audit) audit = (await adminRequest(t, 'GET', '/audit?limit=50')) as AuditEntry[]
  }
  if (values.json) process.stdout.write(`${JSON.stringify(values.audit ? { ...report, audit } : report, null, 2)}\n`)
  else {
    process.stdout.write(`${formatStatus(report)}\n`)
    if (values.audit) {
      process.stdout.write('\naudit (newest first)\n')
      for (const a of audit)
        process.stdout.write(
          `  ${new Date(a.at).toISOString()}  ${a.who}  ${a.target.replace('|', '/')}  ${a.detail}${a.why ? `  (${a.why})` : ''}\n`,
        )
    }
  }
  return 0
}

/** `gslb doctor`: checks a deployment like an operator would by hand; exit 1 on any error. */
async function doctor(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      zone: { type: 'string' },
      parent: { type: 'string' },
      instance: { type: 'string', multiple: true },
      redis: { type: 'string' },
      'redis-prefix': { type: 'string' },
      config: { type: 'string' },
      region: { type: 'string', multiple: true },
      zones: { type: 'string' },
      timeout: { type: 'string' },
      json: { type: 'boolean' },
    },
  })
  if (!values.zone || !values.parent || !values.instance?.length) {
    throw new ConfigError(
      'usage: gslb doctor --zone ZONE --parent ADDR:PORT --instance ADDR:PORT [--instance ...] [--redis URL] [--region NAME ...] [--zones DIR] [--json]',
    )
  }
  const parent = parseListen(values.parent)
  const instances = values.instance.map((i) => parseListen(i))
  const store = redisFrom(values)
  try {
    const findings = await runDoctor({
      zone: values.zone,
      parent: { address: parent.host, port: parent.port },
      instances: instances.map((i) => ({ address: i.host, port: i.port })),
      ...(store ? { redis: store } : {}),
      ...(values.region ? { regions: values.region } : {}),
      ...(values.zones ? { zonesDir: values.zones } : {}),
      ...(values.timeout ? { timeoutMs: parseDuration(values.timeout) } : {}),
    })
    process.stdout.write(values.json ? `${JSON.stringify(findings, null, 2)}\n` : `${formatFindings(findings)}\n`)
    return doctorExitCode(findings)
  } finally {
    await store?.close()
  }
}

/** `gslb drain|undrain|weight|force-up|force-down|unforce|push-up|push-down|unpush TARGET ...`. */
async function operatorAction(action: Action, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      ...OPS_OPTIONS,
      for: { type: 'string' },
      from: { type: 'string' },
      until: { type: 'string' },
      why: { type: 'string' },
      who: { type: 'string' },
    },
  })
  const [target, weightText] = positionals
  if (!target)
    throw new ConfigError(
      `usage: gslb ${action} ENDPOINT|zone/ENDPOINT|pool:NAME${action === 'weight' ? ' N' : ''} [--for 1h] [--from TIME] [--until TIME] [--why TEXT]`,
    )
  const now = Date.now()
  const from = values.from ? parseTime(values.from, now) : undefined
  const until = values.until
    ? parseTime(values.until, now)
    : values.for
      ? (from ?? now) + parseDuration(values.for)
      : undefined
  const who = values.who ?? `${userInfo().username}@${hostname()}`
  const weight = action === 'weight' ? Number(weightText) : undefined
  const t = opsTarget(values)
  let done: string[]
  if (t.store) {
    const set = new ZoneSet(values.zones ?? 'zones')
    set.reload()
    done = await applyAction(
      t.store,
      set.table.zones,
      { action, target, weight, from, until, who, why: values.why ?? '' },
      now,
    )
    await t.store.close()
  } else {
    const r = (await adminRequest(t, 'POST', '/action', {
      action,
      target,
      weight,
      ...(values.from ? { from: values.from } : {}),
      ...(values.until ? { until: values.until } : {}),
      ...(values.for ? { for: values.for } : {}),
      who,
      why: values.why ?? '',
    })) as { done: string[] }
    done = r.done
  }
  for (const d of done) process.stdout.write(`${d}\n`)
  return 0
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
  // Failover-time budget per service; a declared target that is exceeded is a warning.
  for (const zone of set.table.zones) {
    for (const svc of zone.services) {
      const b = failoverBudget(zone, svc)
      const target = svc.config.failoverTarget
      const over = target !== undefined && (b.worstMs === undefined || b.worstMs > target * 1000)
      const where = `${zone.file}:${svc.config.line}`
      if (over)
        process.stdout.write(
          `warning: ${where}: ${nameToString(svc.config.owner)} failover budget ${b.detail} exceeds its target ${target}s\n`,
        )
      else if (b.worstMs !== undefined || target !== undefined)
        process.stdout.write(`budget: ${nameToString(svc.config.owner)} worst case ${b.detail}\n`)
    }
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
    for (const z of set.table.zones) health = health.with([[z.stateKey, ep, { up: false }]])
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
    case 'probe':
      return probe(rest)
    case 'status':
      return status(rest)
    case 'doctor':
      return doctor(rest)
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
      if (isAction(cmd)) return operatorAction(cmd, rest)
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
