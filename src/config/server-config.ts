/**
 * @module config/server-config
 * Server settings from flags and an optional YAML file (`--config`), validated once at startup.
 * Flags win over the file; the file wins over defaults. Every problem is a ConfigError naming the
 * flag or key and what it accepts.
 */

import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { availableParallelism } from 'node:os'
import { parseDocument } from 'yaml'
import type { RrlConfig } from '../dns/rrl.ts'
import { ConfigError } from '../errors.ts'
import type { Quorum } from '../health/builder.ts'
import { LOG_LEVELS } from '../log.ts'
import type { ListenAddress } from '../server/index.ts'
import { DEFAULT_TCP_LIMITS, type TcpLimits } from '../server/tcp.ts'
import { UDP_IO_MODES, type UdpIo } from '../server/udp.ts'

export interface ServeConfig {
  readonly zones: string
  readonly listen: readonly ListenAddress[]
  readonly logLevel: (typeof LOG_LEVELS)[number]
  /** Fraction of queries logged, 0 (off) to 1. */
  readonly queryLogSample: number
  readonly nsid: Buffer | undefined
  readonly chaosId: string | undefined
  readonly chaosVersion: string | undefined
  readonly maxUdpSize: number
  /** How UDP datagrams are moved: batched (recvmmsg/sendmmsg addon), dgram, or auto (batched if built). */
  readonly udpIo: UdpIo
  readonly tcp: TcpLimits
  readonly watch: boolean
  /**
   * Data-plane threads: 1 answers on the main thread (no threads at all); N >= 2 runs N worker
   * threads sharing the listen addresses with SO_REUSEPORT while the main thread keeps the rest.
   */
  readonly workers: number
  /**
   * How a zone change reaches the answering threads. `in-place`: each one reloads its own table in
   * slices between queries (V8's collections during that can hold answers back for tens of ms on
   * a large zone set). `handover`: answering always runs on worker threads (one with `workers` 1),
   * and a change starts fresh ones that load the new zones on their own heaps, join the listen
   * addresses, then replace the old ones, so no thread that answers ever loads.
   */
  readonly reloadMode: ReloadMode
  /** MaxMind DB files for geo policies; empty = the bundled country database. */
  readonly geoip: readonly string[]
  /** Shared state; undefined = embedded mode (in-memory state, probes run in-process). */
  readonly redis: string | undefined
  /** Redis Sentinel (config file `redisSentinel: { sentinels: [host:port, ...], name, password? }`). */
  readonly redisSentinel: RedisSentinel | undefined
  /** Redis Cluster seed nodes (config file `redisCluster: [host:port, ...]`). */
  readonly redisCluster: ReadonlyArray<{ readonly host: string; readonly port: number }> | undefined
  readonly redisPrefix: string
  /** Vantage region of the in-process prober (embedded mode). */
  readonly region: string
  readonly quorum: Quorum
  readonly slowStartMs: number
  readonly staleAfterMs: number
  readonly staleMode: 'keep' | 'fail-open'
  /** Response rate limiting over UDP (BIND/Knot RRL); undefined = off (the default). */
  readonly rrl: RrlConfig | undefined
  /** URLs told (POST, JSON) of every endpoint and pool state change. */
  readonly webhooks: readonly string[]
  /** Extra CIDRs the prober may (allow) or must not (deny) probe, on top of the built-in deny list. */
  readonly probeAllow: readonly string[]
  readonly probeDeny: readonly string[]
  /** Admin HTTP listener, or undefined when turned off. */
  readonly admin: ListenAddress | undefined
  readonly adminToken: string | undefined
}

export const DEFAULT_ADMIN = '127.0.0.1:5380'

export interface RedisSentinel {
  readonly sentinels: ReadonlyArray<{ readonly host: string; readonly port: number }>
  readonly name: string
  readonly password: string | undefined
}

function hostPorts(v: unknown, what: string): Array<{ host: string; port: number }> {
  if (!Array.isArray(v) || v.length === 0) throw new ConfigError(`${what}: expected a list of host:port`)
  return v.map((x) => {
    const m = typeof x === 'string' ? /^(.+):(\d+)$/.exec(x) : null
    const port = Number(m?.[2])
    if (!m || !Number.isInteger(port) || port < 1 || port > 65535)
      throw new ConfigError(`${what}: expected host:port, got ${JSON.stringify(x)}`)
    return { host: m[1]!.replace(/^\[|\]$/g, ''), port }
  })
}

function sentinel(v: unknown, where: string): RedisSentinel | undefined {
  if (v === undefined) return undefined
  if (!isObj(v)) throw new ConfigError(`${where}: redisSentinel: expected { sentinels: [host:port], name }`)
  for (const k of Object.keys(v)) {
    if (!['sentinels', 'name', 'password'].includes(k))
      throw new ConfigError(`${where}: redisSentinel.${k}: unknown; known: sentinels, name, password`)
  }
  const name = v['name']
  if (typeof name !== 'string' || name === '')
    throw new ConfigError(`${where}: redisSentinel.name: expected the master name`)
  const password = v['password']
  if (password !== undefined && typeof password !== 'string')
    throw new ConfigError(`${where}: redisSentinel.password: expected text`)
  return { sentinels: hostPorts(v['sentinels'], `${where}: redisSentinel.sentinels`), name, password }
}

/** `majority` (default), `any`, `all`, or a number of vantages. */
export function parseQuorum(text: string): Quorum {
  if (text === 'majority' || text === 'any' || text === 'all') return text
  const n = Number(text)
  if (!Number.isInteger(n) || n < 1 || n > 100)
    throw new ConfigError(`quorum: expected majority, any, all or a number of vantages, got "${text}"`)
  return n
}

/** `30s`, `5m`, `500ms`, `0`. */
export function parseDurationMs(text: string, what: string): number {
  if (text === '0') return 0
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text.trim())
  if (!m) throw new ConfigError(`${what}: expected a duration like 30s, 5m or 500ms, got "${text}"`)
  return Math.round(Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'])
}

export const DEFAULT_LISTEN = '127.0.0.1:5300'

/** More threads than this buys nothing on any machine we know of and multiplies the zone memory. */
export const MAX_WORKERS = 64

/**
 * `--workers N` or `auto` (one per core the process may use, `os.availableParallelism()`).
 * SO_REUSEPORT is what spreads the traffic, and only Linux and FreeBSD balance it across sockets
 * (macOS and others let the last socket bound take everything), so N > 1 is refused elsewhere.
 */
export function parseWorkers(v: unknown, what = '--workers', platform: string = process.platform): number {
  let n: number
  if (v === 'auto') n = Math.min(availableParallelism(), MAX_WORKERS)
  else {
    n = typeof v === 'string' && v.trim() !== '' ? Number(v) : typeof v === 'number' ? v : Number.NaN
    if (!Number.isInteger(n) || n < 1 || n > MAX_WORKERS)
      throw new ConfigError(
        `${what}: expected a whole number of threads from 1 to ${MAX_WORKERS}, or auto, got ${JSON.stringify(v)}`,
      )
  }
  if (n > 1 && platform !== 'linux' && platform !== 'freebsd')
    throw new ConfigError(
      `${what}: ${n} workers need SO_REUSEPORT load balancing (Linux, FreeBSD), which ${platform} lacks; use 1`,
    )
  return n
}

export type ReloadMode = 'in-place' | 'handover'
export const RELOAD_MODES: readonly ReloadMode[] = ['in-place', 'handover']

/**
 * `--reload-mode` / `reloadMode`: in-place (default) or handover. Handover binds the new threads'
 * sockets next to the old ones', which takes SO_REUSEPORT (Linux, FreeBSD).
 */
export function reloadMode(v: unknown, what = '--reload-mode', platform: string = process.platform): ReloadMode {
  if (v === undefined) return 'in-place'
  if (typeof v !== 'string' || !(RELOAD_MODES as readonly string[]).includes(v))
    throw new ConfigError(`${what}: expected one of ${RELOAD_MODES.join(', ')}, got ${JSON.stringify(v)}`)
  if (v === 'handover' && platform !== 'linux' && platform !== 'freebsd')
    throw new ConfigError(`${what}: handover needs SO_REUSEPORT (Linux, FreeBSD), which ${platform} lacks`)
  return v as ReloadMode
}

/** `--udp-io` / `udpIo`: auto (default), batched or dgram. */
export function udpIo(v: unknown, what = '--udp-io'): UdpIo {
  if (v === undefined) return 'auto'
  if (typeof v === 'string' && (UDP_IO_MODES as readonly string[]).includes(v)) return v as UdpIo
  throw new ConfigError(`${what}: expected one of ${UDP_IO_MODES.join(', ')}, got ${JSON.stringify(v)}`)
}

/** `127.0.0.1:5300`, `[::1]:5300`. IPv6 needs the brackets so the port is unambiguous. */
export function parseListen(text: string): ListenAddress {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:[\]]+):(\d+)$/.exec(text)
  const host = m?.[1]
  const port = Number(m?.[2])
  if (!host || !isIP(host) || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ConfigError(`--listen: expected ADDRESS:PORT such as 127.0.0.1:5300 or [::1]:5300, got "${text}"`)
  }
  return { host, port }
}

/** NSID from text, or from hex with a `0x` prefix (RFC 5001 allows any bytes). */
export function parseNsid(text: string): Buffer {
  const b = /^0x([0-9a-f]{2})+$/i.test(text) ? Buffer.from(text.slice(2), 'hex') : Buffer.from(text, 'utf8')
  if (b.length === 0 || b.length > 512) throw new ConfigError('nsid: expected 1..512 bytes of text or 0x-prefixed hex')
  return b
}

/** The subset of flags `gslb serve` takes, as parsed by node:util parseArgs. */
export interface ServeFlags {
  readonly config?: string | undefined
  readonly zones?: string | undefined
  readonly listen?: readonly string[] | undefined
  readonly 'log-level'?: string | undefined
  readonly 'query-log-sample'?: string | undefined
  readonly nsid?: string | undefined
  readonly 'chaos-id'?: string | undefined
  readonly 'chaos-version'?: string | undefined
  readonly 'no-watch'?: boolean | undefined
  readonly workers?: string | undefined
  readonly 'reload-mode'?: string | undefined
  readonly 'udp-io'?: string | undefined
  readonly geoip?: readonly string[] | undefined
  readonly redis?: string | undefined
  readonly 'redis-prefix'?: string | undefined
  readonly region?: string | undefined
  readonly quorum?: string | undefined
  readonly 'slow-start'?: string | undefined
  readonly 'stale-after'?: string | undefined
  readonly 'stale-mode'?: string | undefined
  readonly admin?: string | undefined
  readonly 'admin-token'?: string | undefined
  readonly webhook?: readonly string[] | undefined
  readonly rrl?: string | undefined
  readonly 'probe-allow'?: readonly string[] | undefined
  readonly 'probe-deny'?: readonly string[] | undefined
}

const FILE_KEYS = [
  'zones',
  'listen',
  'logLevel',
  'queryLogSample',
  'nsid',
  'chaos',
  'maxUdpSize',
  'udpIo',
  'tcp',
  'watch',
  'workers',
  'reloadMode',
  'geoip',
  'redis',
  'redisSentinel',
  'redisCluster',
  'redisPrefix',
  'region',
  'quorum',
  'slowStart',
  'staleAfter',
  'staleMode',
  'admin',
  'adminToken',
  'probeAllow',
  'probeDeny',
  'webhooks',
  'rrl',
] as const
const TCP_KEYS = [
  'idleTimeoutMs',
  'messageTimeoutMs',
  'maxConnections',
  'maxConnectionsPerSource',
  'maxPendingOutput',
] as const

type Obj = Record<string, unknown>
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)

function readConfigFile(path: string): Obj {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (e) {
    throw new ConfigError(`--config: cannot read ${path}: ${(e as Error).message}`)
  }
  const doc = parseDocument(text)
  if (doc.errors.length > 0) throw new ConfigError(`${path}: ${doc.errors[0]!.message}`)
  const v: unknown = doc.toJS()
  if (v === null || v === undefined) return {}
  if (!isObj(v)) throw new ConfigError(`${path}: expected a mapping of settings`)
  for (const k of Object.keys(v)) {
    if (!(FILE_KEYS as readonly string[]).includes(k)) {
      throw new ConfigError(`${path}: unknown setting "${k}"; known: ${FILE_KEYS.join(', ')}`)
    }
  }
  return v
}

function str(v: unknown, what: string): string | undefined {
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'string' && typeof v !== 'number') throw new ConfigError(`${what}: expected text`)
  return String(v)
}

function int(v: unknown, what: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined
  const n = typeof v === 'string' ? Number(v) : v
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(`${what}: expected a whole number from ${min} to ${max}, got ${JSON.stringify(v)}`)
  }
  return n
}

export function resolveServeConfig(flags: ServeFlags): ServeConfig {
  const file = flags.config ? readConfigFile(flags.config) : {}
  const where = flags.config ?? 'config'

  const listenText = flags.listen?.length ? flags.listen : (file['listen'] ?? [DEFAULT_LISTEN])
  const listenList = Array.isArray(listenText) ? listenText : [listenText]
  const listen = listenList.map((l) => parseListen(String(l)))

  const level = str(flags['log-level'] ?? file['logLevel'], 'log level') ?? 'info'
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new ConfigError(`--log-level: expected one of ${LOG_LEVELS.join(', ')}, got "${level}"`)
  }

  const sampleRaw = flags['query-log-sample'] ?? file['queryLogSample'] ?? 0
  const sample = typeof sampleRaw === 'number' || typeof sampleRaw === 'string' ? Number(sampleRaw) : Number.NaN
  if (sampleRaw === '' || !Number.isFinite(sample) || sample < 0 || sample > 1) {
    throw new ConfigError(`--query-log-sample: expected a fraction from 0 to 1, got "${String(sampleRaw)}"`)
  }

  const nsidText = str(flags.nsid ?? file['nsid'], 'nsid')
  const chaos = file['chaos']
  if (chaos !== undefined && !isObj(chaos)) throw new ConfigError(`${where}: chaos: expected { id, version }`)
  for (const k of Object.keys(chaos ?? {})) {
    if (k !== 'id' && k !== 'version') throw new ConfigError(`${where}: chaos.${k}: unknown; known: id, version`)
  }
  const tcpFile = file['tcp']
  if (tcpFile !== undefined && !isObj(tcpFile)) throw new ConfigError(`${where}: tcp: expected a mapping`)
  const tcp: Record<string, number> = { ...DEFAULT_TCP_LIMITS }
  for (const [k, v] of Object.entries(tcpFile ?? {})) {
    if (!(TCP_KEYS as readonly string[]).includes(k)) {
      throw new ConfigError(`${where}: tcp.${k}: unknown; known: ${TCP_KEYS.join(', ')}`)
    }
    tcp[k] = int(v, `${where}: tcp.${k}`, 1, 10_000_000)!
  }
  const watchFile = file['watch']
  if (watchFile !== undefined && typeof watchFile !== 'boolean')
    throw new ConfigError(`${where}: watch: expected true or false`)

  return Object.freeze({
    zones: str(flags.zones ?? file['zones'], 'zones') ?? 'zones',
    listen,
    logLevel: level as ServeConfig['logLevel'],
    queryLogSample: sample,
    nsid: nsidText === undefined ? undefined : parseNsid(nsidText),
    chaosId: str(flags['chaos-id'] ?? chaos?.['id'], 'chaos id'),
    chaosVersion: str(flags['chaos-version'] ?? chaos?.['version'], 'chaos version'),
    maxUdpSize: int(file['maxUdpSize'], `${where}: maxUdpSize`, 512, 65535) ?? 1232,
    udpIo: udpIo(flags['udp-io'] ?? file['udpIo'], flags['udp-io'] !== undefined ? '--udp-io' : `${where}: udpIo`),
    tcp: tcp as unknown as TcpLimits,
    watch: flags['no-watch'] ? false : (watchFile ?? true),
    workers:
      flags.workers !== undefined
        ? parseWorkers(flags.workers)
        : parseWorkers(file['workers'] ?? 1, `${where}: workers`),
    reloadMode: reloadMode(
      flags['reload-mode'] ?? file['reloadMode'],
      flags['reload-mode'] !== undefined ? '--reload-mode' : `${where}: reloadMode`,
    ),
    geoip: flags.geoip?.length ? flags.geoip : geoipList(file['geoip'], where),
    redis: str(flags.redis ?? file['redis'], 'redis'),
    redisSentinel: sentinel(file['redisSentinel'], where),
    redisCluster:
      file['redisCluster'] === undefined ? undefined : hostPorts(file['redisCluster'], `${where}: redisCluster`),
    redisPrefix: str(flags['redis-prefix'] ?? file['redisPrefix'], 'redis prefix') ?? 'gslb:',
    region: str(flags.region ?? file['region'], 'region') ?? 'local',
    quorum: parseQuorum(str(flags.quorum ?? file['quorum'], 'quorum') ?? 'majority'),
    slowStartMs: parseDurationMs(str(flags['slow-start'] ?? file['slowStart'], 'slow start') ?? '30s', '--slow-start'),
    staleAfterMs: parseDurationMs(
      str(flags['stale-after'] ?? file['staleAfter'], 'stale after') ?? '5m',
      '--stale-after',
    ),
    staleMode: staleMode(str(flags['stale-mode'] ?? file['staleMode'], 'stale mode') ?? 'keep'),
    admin: adminAddress(str(flags.admin ?? file['admin'], 'admin') ?? DEFAULT_ADMIN),
    adminToken: str(flags['admin-token'] ?? file['adminToken'], 'admin token'),
    rrl: rrlConfig(flags.rrl, file['rrl'], where),
    webhooks: webhookUrls(flags.webhook?.length ? flags.webhook : stringList(file['webhooks'], `${where}: webhooks`)),
    probeAllow: flags['probe-allow']?.length
      ? flags['probe-allow']
      : stringList(file['probeAllow'], `${where}: probeAllow`),
    probeDeny: flags['probe-deny']?.length ? flags['probe-deny'] : stringList(file['probeDeny'], `${where}: probeDeny`),
  })
}

function geoipList(v: unknown, where: string): string[] {
  if (v === undefined || v === null) return []
  const list = Array.isArray(v) ? v : [v]
  if (!list.every((x) => typeof x === 'string'))
    throw new ConfigError(`${where}: geoip: expected a path or a list of paths`)
  return list as string[]
}

function staleMode(v: string): 'keep' | 'fail-open' {
  if (v === 'keep' || v === 'fail-open') return v
  throw new ConfigError(`--stale-mode: expected keep or fail-open, got "${v}"`)
}

function adminAddress(v: string): ListenAddress | undefined {
  if (v === 'off') return undefined
  try {
    return parseListen(v)
  } catch {
    throw new ConfigError(`--admin: expected ADDRESS:PORT such as 127.0.0.1:5380, or off, got "${v}"`)
  }
}

function stringList(v: unknown, what: string): string[] {
  if (v === undefined || v === null) return []
  const list = Array.isArray(v) ? v : [v]
  if (!list.every((x) => typeof x === 'string')) throw new ConfigError(`${what}: expected a CIDR or a list of CIDRs`)
  return list as string[]
}

function webhookUrls(urls: readonly string[]): string[] {
  for (const u of urls) {
    let ok = false
    try {
      const p = new URL(u).protocol
      ok = p === 'http:' || p === 'https:'
    } catch {
      ok = false
    }
    if (!ok) throw new ConfigError(`--webhook: expected an http:// or https:// URL, got "${u}"`)
  }
  return [...urls]
}

const RRL_KEYS = [
  'responsesPerSecond',
  'errorsPerSecond',
  'nxdomainsPerSecond',
  'slip',
  'window',
  'ipv4Prefix',
  'ipv6Prefix',
] as const

/**
 * `--rrl N` turns RRL on at N responses per second per client network for answers, errors and
 * NXDOMAIN alike, slip 2 (BIND's defaults otherwise); the settings file's `rrl:` sets each value.
 * Values are checked by the limiter itself when the server starts.
 */
function rrlConfig(flag: string | undefined, file: unknown, where: string): RrlConfig | undefined {
  if (flag !== undefined) {
    const n = Number(flag)
    if (!Number.isInteger(n) || n < 1 || n > 1_000_000)
      throw new ConfigError(`--rrl: expected responses per second (1..1000000), got "${flag}"`)
    return { responsesPerSecond: n, errorsPerSecond: n, nxdomainsPerSecond: n, slip: 2 }
  }
  if (file === undefined || file === null || file === false) return undefined
  if (!isObj(file))
    throw new ConfigError(
      `${where}: rrl: expected a mapping (responsesPerSecond, errorsPerSecond, nxdomainsPerSecond, slip, window, ipv4Prefix, ipv6Prefix)`,
    )
  for (const k of Object.keys(file)) {
    if (!(RRL_KEYS as readonly string[]).includes(k))
      throw new ConfigError(`${where}: rrl.${k}: unknown; known: ${RRL_KEYS.join(', ')}`)
  }
  const num = (k: string, dflt: number | undefined): number | undefined =>
    int(file[k] ?? dflt, `${where}: rrl.${k}`, 0, 1_000_000)
  const responses = num('responsesPerSecond', undefined)
  if (responses === undefined) throw new ConfigError(`${where}: rrl.responsesPerSecond: required`)
  return {
    responsesPerSecond: responses,
    errorsPerSecond: num('errorsPerSecond', responses)!,
    nxdomainsPerSecond: num('nxdomainsPerSecond', responses)!,
    slip: num('slip', 2)!,
    window: num('window', 15),
    ipv4Prefix: num('ipv4Prefix', 24),
    ipv6Prefix: num('ipv6Prefix', 56),
  }
}
