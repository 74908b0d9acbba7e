/**
 * @module state/redis
 * The shared state store on Redis (standalone, Sentinel or Cluster), for several DNS instances and
 * probers. docs/redis.md describes the key schema; `redisKeys` below is its single definition.
 *
 * Two connections: commands, and a subscriber for the change channel (a subscribed connection
 * cannot run other commands). Commands fail fast while Redis is unreachable (no offline queue,
 * no resend) so an instance keeps serving its last view instead of waiting; the store reconnects
 * in the background and, once both connections are back, tells `onConnection` and `onChange`
 * listeners so they load the whole state again (pub/sub messages sent meanwhile are lost).
 */

import { Cluster, type ClusterNode, type ClusterOptions, Redis, type RedisOptions } from 'ioredis'
import { ConfigError, RedisStoreError } from '../errors.ts'

export { RedisStoreError }

import type {
  AuditEntry,
  InstanceInfo,
  Override,
  ProbeStatus,
  PushedState,
  StateData,
  StateStore,
  TargetId,
} from './types.ts'

/** Pino-compatible logger; the store logs each connection loss and recovery once. */
export interface RedisStoreLog {
  info(obj: object, msg: string): void
  warn(obj: object, msg: string): void
}

export interface RedisStoreOptions {
  /** `redis://[user:pass@]host:port/db` or `rediss://…` for TLS; omitted: 127.0.0.1:6379 or `options`. */
  readonly url?: string | undefined
  /** Prepended to every key and the channel; default `gslb:`. Lets deployments share one Redis. */
  readonly prefix?: string | undefined
  /** ioredis options (TLS, auth, Sentinel `{ sentinels, name }`, timeouts); merged over our defaults. */
  readonly options?: RedisOptions | undefined
  /** Redis Cluster instead of one server (see `RedisStore.cluster`); `url` is then ignored. */
  readonly cluster?: { readonly nodes: readonly ClusterNode[]; readonly options?: ClusterOptions | undefined }
  readonly log?: RedisStoreLog | undefined
  /**
   * How long a call made before the first connection waits for it (default 2000 ms), so a CLI
   * command or a starting instance need not call `ready()` first. Once connected, calls made
   * while Redis is unreachable fail at once.
   */
  readonly firstConnectWaitMs?: number | undefined
}

/** Every key and channel name, from one prefix. The only place the schema is spelled out in code. */
export function redisKeys(prefix: string) {
  return {
    /** Set of vantage names that have written probe reports (found by `load()`). */
    vantages: `${prefix}vantages`,
    /** Hash TargetId → JSON ProbeStatus, per vantage; expires when its probers stop writing. */
    probe: (vantage: string) => `${prefix}probe:${vantage}`,
    /** Hash TargetId → JSON Override. */
    overrides: `${prefix}overrides`,
    /** Hash TargetId → JSON PushedState. */
    pushed: `${prefix}pushed`,
    /** Counter, INCR with every state write. */
    generation: `${prefix}generation`,
    /** Sorted set prober id → expiry ms, per vantage. */
    probers: (vantage: string) => `${prefix}probers:${vantage}`,
    /** String JSON InstanceInfo with PX ttl. */
    instance: (id: string) => `${prefix}instance:${id}`,
    /** Sorted set instance id → expiry ms: the index `instances()` reads (no SCAN). */
    instances: `${prefix}instances`,
    /** Stream of audit entries, capped near AUDIT_MAX_LEN. */
    audit: `${prefix}audit`,
    /** Pub/sub channel: a message means "something changed, load again". */
    changed: `${prefix}changed`,
  } as const
}

type Keys = ReturnType<typeof redisKeys>

/** Audit entries kept in the stream (approximately: MAXLEN ~ trims whole macro nodes). */
export const AUDIT_MAX_LEN = 10_000

const DEFAULT_PREFIX = 'gslb:'
const DEFAULT_CLUSTER_PREFIX = '{gslb}:'
/** Reconnect backoff: 50 ms doubling, capped so recovery is noticed within ~2 s of Redis returning. */
const RETRY_CAP_MS = 2_000
const DEFAULT_COMMAND_TIMEOUT_MS = 2_000
const DEFAULT_CONNECT_TIMEOUT_MS = 2_000
const DEFAULT_FIRST_CONNECT_WAIT_MS = 2_000

/**
 * Sets a key's ttl unless it already lives longer. Probers of one vantage share one hash and may
 * write reports of different lifetimes; a short-lived batch must not cut the ttl that keeps
 * another prober's longer-lived reports.
 */
const BUMP_IF_CHANGED = `
local now = tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  local old = redis.call('HGET', KEYS[1], ARGV[i])
  if not old then return redis.call('INCR', KEYS[2]) end
  local ou = string.match(old, '"up":(%a+)')
  local nu = string.match(ARGV[i + 1], '"up":(%a+)')
  local oe = tonumber(string.match(old, '"expiresAt":(%d+)') or '0')
  if ou ~= nu or oe <= now then return redis.call('INCR', KEYS[2]) end
end
return 0`

/** Bumps the generation when a report is new, changes up/down, or replaces an expired one. */
const EXTEND_TTL = `
local ttl = tonumber(ARGV[1])
local cur = redis.call('PTTL', KEYS[1])
if cur == -2 or cur >= ttl then return 0 end
redis.call('PEXPIRE', KEYS[1], ttl)
return 1`

/**
 * Drops a vantage's expired (or unreadable) reports and, when none is left, the vantage itself.
 * Atomic, so a report written meanwhile is never deleted by a reader that saw the older one.
 */
const PRUNE_VANTAGE = `
local now = tonumber(ARGV[2])
local all = redis.call('HGETALL', KEYS[2])
local n = 0
for i = 1, #all, 2 do
  local ok, s = pcall(cjson.decode, all[i + 1])
  if not ok or type(s) ~= 'table' or type(s.expiresAt) ~= 'number' or s.expiresAt <= now then
    redis.call('HDEL', KEYS[2], all[i])
    n = n + 1
  end
end
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('SREM', KEYS[1], ARGV[1]) end
return n`

type Client = Redis | Cluster
type RedisInit = RedisOptions & { replyMapping: 'legacy' }
type ClusterInit = NonNullable<ConstructorParameters<typeof Cluster>[1]>
type Tx = ReturnType<Redis['multi']>

export class RedisStore implements StateStore {
  readonly kind = 'redis'
  readonly prefix: string

  readonly #keys: Keys
  readonly #cmd: Client
  readonly #sub: Client
  readonly #log: RedisStoreLog | undefined
  readonly #changeListeners = new Set<() => void>()
  readonly #connectionListeners = new Set<(connected: boolean) => void>()
  #cmdUp = false
  #subUp = false
  /** Bumped on every subscriber close, so a SUBSCRIBE answered for an older connection is ignored. */
  #subEpoch = 0
  #connected = false
  #everConnected = false
  readonly #firstConnectWaitMs: number
  /** Settles on the command connection's first 'ready'. */
  readonly #firstReady: Promise<void>
  #markFirstReady: () => void = () => {}
  #cmdEverReady = false
  #closed = false
  #lastError: string | undefined
  /** Vantages seen by the last load; the next load reads them in its first MULTI and only retries if new ones appeared. */
  #vantages: readonly string[] = []

  /** A store on a Redis Cluster; the prefix must carry a hash tag so every key sits in one slot (MULTI needs it). */
  static cluster(
    nodes: readonly ClusterNode[],
    options?: ClusterOptions,
    prefix: string = DEFAULT_CLUSTER_PREFIX,
    log?: RedisStoreLog,
  ): RedisStore {
    return new RedisStore({ cluster: { nodes, options }, prefix, log })
  }

  constructor(opts: RedisStoreOptions = {}) {
    const prefix = opts.prefix ?? (opts.cluster ? DEFAULT_CLUSTER_PREFIX : DEFAULT_PREFIX)
    if (prefix === '') {
      throw new ConfigError(`redis key prefix must not be empty; use e.g. "${DEFAULT_PREFIX}"`)
    }
    if (opts.cluster && !hasHashTag(prefix)) {
      throw new ConfigError(
        `redis cluster key prefix "${prefix}" needs a hash tag so all keys share a slot; use e.g. "${DEFAULT_CLUSTER_PREFIX}"`,
      )
    }
    this.prefix = prefix
    this.#keys = redisKeys(prefix)
    this.#log = opts.log
    this.#firstConnectWaitMs = opts.firstConnectWaitMs ?? DEFAULT_FIRST_CONNECT_WAIT_MS
    this.#firstReady = new Promise((resolve) => {
      this.#markFirstReady = resolve
    })

    if (opts.cluster) {
      const { redisOptions, ...clusterOptions } = opts.cluster.options ?? {}
      const base: ClusterInit = {
        clusterRetryStrategy: backoff,
        ...clusterOptions,
        lazyConnect: false,
        redisOptions: {
          commandTimeout: DEFAULT_COMMAND_TIMEOUT_MS,
          connectTimeout: DEFAULT_CONNECT_TIMEOUT_MS,
          ...redisOptions,
          replyMapping: 'legacy',
        },
      }
      const nodes = [...opts.cluster.nodes]
      this.#cmd = new Cluster(nodes, { ...base, enableOfflineQueue: false })
      this.#sub = new Cluster(nodes, base)
    } else {
      const cmdOptions: RedisInit = {
        connectionName: 'gslb-state',
        ...commandDefaults(),
        ...opts.options,
        lazyConnect: false,
        // Fail fast while disconnected: callers keep their last view rather than wait.
        enableOfflineQueue: false,
        // A write caught by a disconnect is reported as failed, never silently replayed later.
        maxRetriesPerRequest: 0,
        autoResendUnfulfilledCommands: false,
        // The decoders below expect RESP2-shaped replies (hashes as objects, streams as arrays).
        replyMapping: 'legacy',
      }
      const subOptions: RedisInit = {
        connectionName: 'gslb-state-sub',
        ...commandDefaults(),
        ...opts.options,
        lazyConnect: false,
        // We subscribe ourselves on every 'ready' to learn when the subscription is live again.
        autoResubscribe: false,
        replyMapping: 'legacy',
      }
      this.#cmd = opts.url === undefined ? new Redis(cmdOptions) : new Redis(opts.url, cmdOptions)
      this.#sub = opts.url === undefined ? new Redis(subOptions) : new Redis(opts.url, subOptions)
    }

    this.#cmd.on('ready', () => {
      this.#cmdUp = true
      this.#cmdEverReady = true
      this.#markFirstReady()
      this.#update()
    })
    this.#sub.on('ready', () => this.#subscribe())
    for (const event of ['close', 'end']) {
      this.#cmd.on(event, () => {
        this.#cmdUp = false
        this.#update()
      })
      this.#sub.on(event, () => {
        this.#subUp = false
        this.#subEpoch++
        this.#update()
      })
    }
    const onError = (err: Error) => {
      // Remembered for the next loss/recovery log line; ioredis repeats it on every retry.
      this.#lastError = err.message
    }
    this.#cmd.on('error', onError)
    this.#sub.on('error', onError)
    this.#sub.on('message', (channel: string) => {
      if (channel === this.#keys.changed) this.#notifyChange()
    })
  }

  /** True while both connections are up and the change subscription is live. */
  get connected(): boolean {
    return this.#connected
  }

  /** Resolves once connected (immediately if already); rejects after `timeoutMs`. */
  ready(timeoutMs = 5_000): Promise<void> {
    if (this.#connected) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off()
        reject(new RedisStoreError(`redis state store not connected after ${timeoutMs} ms: ${this.#lastError ?? ''}`))
      }, timeoutMs)
      const off = this.onConnection((up) => {
        if (!up) return
        clearTimeout(timer)
        off()
        resolve()
      })
    })
  }

  async load(): Promise<StateData> {
    const client = await this.#client('load')
    const k = this.#keys
    let vantages = this.#vantages
    for (let attempt = 1; ; attempt++) {
      const tx = client.multi().smembers(k.vantages)
      for (const v of vantages) tx.hgetall(k.probe(v))
      tx.hgetall(k.overrides).hgetall(k.pushed).get(k.generation)
      const replies = await this.#exec(tx, 'load')
      const current = stringArray(replies[0]).sort()
      // The MULTI read the vantage list it was built from: if a new vantage appeared since,
      // read again with it, so the view is one consistent moment and no vantage is missing.
      const known = new Set(vantages)
      if (current.some((v) => !known.has(v)) && attempt < 3) {
        vantages = current
        continue
      }
      this.#vantages = current
      return this.#decodeLoad(vantages, replies)
    }
  }

  onChange(fn: () => void): () => void {
    const entry = () => fn()
    this.#changeListeners.add(entry)
    return () => {
      this.#changeListeners.delete(entry)
    }
  }

  onConnection(fn: (connected: boolean) => void): () => void {
    const entry = (up: boolean) => fn(up)
    this.#connectionListeners.add(entry)
    return () => {
      this.#connectionListeners.delete(entry)
    }
  }

  async writeProbes(vantage: string, reports: ReadonlyArray<readonly [TargetId, ProbeStatus]>): Promise<void> {
    if (reports.length === 0) return
    const client = await this.#client('writeProbes')
    const k = this.#keys
    const key = k.probe(vantage)
    const now = Date.now()
    let longest = 0
    const fields: string[] = []
    for (const [target, status] of reports) {
      fields.push(target, JSON.stringify(status))
      longest = Math.max(longest, status.expiresAt - now)
    }
    // 3x the longest lifetime: a prober that missed a write or two keeps its key; a dead
    // vantage's whole hash vanishes soon after its reports went stale.
    const ttl = Math.max(1, Math.ceil(3 * longest))
    // Refreshes of unchanged reports are published (readers need the new expiry) but do not move
    // the generation, so instances that loaded at different refreshes report the same one.
    const tx = client
      .multi()
      .sadd(k.vantages, vantage)
      .eval(BUMP_IF_CHANGED, 2, key, k.generation, String(now), ...fields)
      .hset(key, ...fields)
      .eval(EXTEND_TTL, 1, key, String(ttl))
      .publish(k.changed, 'probes')
    await this.#exec(tx, 'writeProbes')
  }

  async setOverride(target: TargetId, override: Override | undefined, audit: AuditEntry): Promise<void> {
    await this.#writeWithAudit('setOverride', this.#keys.overrides, target, override, audit)
  }

  async pushState(target: TargetId, state: PushedState | undefined, audit: AuditEntry): Promise<void> {
    await this.#writeWithAudit('pushState', this.#keys.pushed, target, state, audit)
  }

  async audit(limit: number): Promise<AuditEntry[]> {
    const count = Math.floor(limit)
    if (!(count > 0)) return []
    const client = await this.#client('audit')
    const entries = await this.#run('audit', () => client.xrevrange(this.#keys.audit, '+', '-', 'COUNT', count))
    const out: AuditEntry[] = []
    for (const [, fields] of entries) {
      const entry = decodeAudit(fields)
      if (entry !== undefined) out.push(entry)
    }
    return out
  }

  async proberHeartbeat(vantage: string, prober: string, ttlMs: number): Promise<string[]> {
    const client = await this.#client('proberHeartbeat')
    const key = this.#keys.probers(vantage)
    const now = Date.now()
    const tx = client
      .multi()
      .zadd(key, now + ttlMs, prober)
      .zremrangebyscore(key, '-inf', String(now))
      .zrange(key, '0', '-1')
      .eval(EXTEND_TTL, 1, key, String(Math.max(1, Math.ceil(ttlMs))))
    const replies = await this.#exec(tx, 'proberHeartbeat')
    return stringArray(replies[2]).sort()
  }

  async instanceHeartbeat(info: InstanceInfo, ttlMs: number): Promise<void> {
    const client = await this.#client('instanceHeartbeat')
    const k = this.#keys
    const now = Date.now()
    const ttl = Math.max(1, Math.ceil(ttlMs))
    const tx = client
      .multi()
      .set(k.instance(info.id), JSON.stringify(info), 'PX', ttl)
      .zadd(k.instances, now + ttl, info.id)
      .zremrangebyscore(k.instances, '-inf', String(now))
    await this.#exec(tx, 'instanceHeartbeat')
  }

  async instances(): Promise<InstanceInfo[]> {
    const client = await this.#client('instances')
    const k = this.#keys
    const tx = client.multi().zremrangebyscore(k.instances, '-inf', String(Date.now())).zrange(k.instances, '0', '-1')
    const ids = stringArray((await this.#exec(tx, 'instances'))[1]).sort()
    if (ids.length === 0) return []
    const values = await this.#run('instances', () => client.mget(ids.map((id) => k.instance(id))))
    const out: InstanceInfo[] = []
    for (const value of values) {
      const info = value === null ? undefined : decodeInstance(value)
      if (info !== undefined) out.push(info)
    }
    return out
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#changeListeners.clear()
    this.#connectionListeners.clear()
    this.#connected = false
    // Callers still waiting for a first connection give up now rather than after the wait.
    this.#markFirstReady()
    await Promise.all([quit(this.#cmd), quit(this.#sub)])
  }

  async #writeWithAudit(
    op: string,
    hash: string,
    target: TargetId,
    value: Override | PushedState | undefined,
    audit: AuditEntry,
  ): Promise<void> {
    const client = await this.#client(op)
    const k = this.#keys
    const tx = client.multi()
    if (value === undefined) tx.hdel(hash, target)
    else tx.hset(hash, target, JSON.stringify(value))
    tx.xadd(k.audit, 'MAXLEN', '~', AUDIT_MAX_LEN, '*', ...encodeAudit(audit))
      .incr(k.generation)
      .publish(k.changed, op)
    await this.#exec(tx, op)
  }

  #decodeLoad(vantages: readonly string[], replies: unknown[]): StateData {
    const now = Date.now()
    const probes = new Map<string, ReadonlyMap<TargetId, ProbeStatus>>()
    const prune: string[] = []
    vantages.forEach((vantage, i) => {
      const hash = stringRecord(replies[1 + i])
      const live = new Map<TargetId, ProbeStatus>()
      let stale = false
      for (const [target, json] of Object.entries(hash)) {
        const status = decodeProbe(json)
        if (status !== undefined && status.expiresAt > now) live.set(target, status)
        else stale = true
      }
      if (live.size > 0) probes.set(vantage, live)
      if (stale || live.size === 0) prune.push(vantage)
    })
    const n = vantages.length
    const overrides = new Map<TargetId, Override>()
    for (const [target, json] of Object.entries(stringRecord(replies[1 + n]))) {
      const o = decodeOverride(json)
      if (o !== undefined) overrides.set(target, o)
    }
    const pushed = new Map<TargetId, PushedState>()
    for (const [target, json] of Object.entries(stringRecord(replies[2 + n]))) {
      const p = decodePushed(json)
      if (p !== undefined) pushed.set(target, p)
    }
    const generation = Number(replies[3 + n] ?? 0)
    if (prune.length > 0) this.#prune(prune, now)
    return { probes, overrides, pushed, generation: Number.isFinite(generation) ? generation : 0 }
  }

  /** Housekeeping after a load saw stale reports; best effort, readers ignore stale data anyway. */
  #prune(vantages: readonly string[], now: number): void {
    const client = this.#cmd
    if (client.status !== 'ready') return
    const k = this.#keys
    for (const v of vantages) {
      client.eval(PRUNE_VANTAGE, 2, k.vantages, k.probe(v), v, String(now)).catch((err: unknown) => {
        this.#log?.warn({ err, vantage: v }, 'pruning stale probe reports failed')
      })
    }
  }

  /** The command connection; waits only for the very first connection, rejects at once while it is down later. */
  async #client(op: string): Promise<Client> {
    if (this.#closed) throw new RedisStoreError(`redis state store: ${op} after close()`)
    // Before the first connection there is no last view to keep: wait for it, briefly.
    if (!this.#cmdEverReady) {
      let timer: NodeJS.Timeout | undefined
      await Promise.race([
        this.#firstReady,
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, this.#firstConnectWaitMs)
        }),
      ])
      clearTimeout(timer)
      if (this.#closed) throw new RedisStoreError(`redis state store: ${op} after close()`)
    }
    if (this.#cmd.status !== 'ready') {
      throw new RedisStoreError(`redis state store unreachable (${op}): ${this.#lastError ?? this.#cmd.status}`)
    }
    return this.#cmd
  }

  async #run<T>(op: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn()
    } catch (err) {
      throw new RedisStoreError(`redis state store: ${op} failed: ${errorMessage(err)}`, { cause: err })
    }
  }

  /** EXEC, turning a failed command inside the transaction into a rejection. */
  async #exec(tx: Tx, op: string): Promise<unknown[]> {
    const replies = await this.#run(op, () => tx.exec())
    if (replies === null) throw new RedisStoreError(`redis state store: ${op} transaction aborted`)
    return replies.map(([err, value]) => {
      if (err) throw new RedisStoreError(`redis state store: ${op} failed: ${err.message}`, { cause: err })
      return value
    })
  }

  #subscribe(): void {
    const epoch = this.#subEpoch
    this.#sub.subscribe(this.#keys.changed).then(
      () => {
        if (epoch !== this.#subEpoch || this.#closed) return
        this.#subUp = true
        this.#update()
      },
      (err: unknown) => {
        // The connection dropped meanwhile; the next 'ready' subscribes again.
        this.#lastError = errorMessage(err)
      },
    )
  }

  /** Edge-triggered: listeners hear each transition once; a recovery also signals a change. */
  #update(): void {
    const up = !this.#closed && this.#cmdUp && this.#subUp
    if (up === this.#connected) return
    this.#connected = up
    if (up) {
      this.#log?.info(
        { prefix: this.prefix },
        this.#everConnected ? 'redis state store reconnected' : 'redis state store connected',
      )
      this.#everConnected = true
    } else {
      this.#log?.warn(
        { prefix: this.prefix, error: this.#lastError },
        'redis state store disconnected; keeping the last view',
      )
    }
    for (const fn of this.#connectionListeners) this.#call(() => fn(up))
    // Anything published while we were away is lost: tell readers to load the whole state.
    if (up) this.#notifyChange()
  }

  #notifyChange(): void {
    for (const fn of this.#changeListeners) this.#call(fn)
  }

  #call(fn: () => void): void {
    try {
      fn()
    } catch (err) {
      if (this.#log) this.#log.warn({ err }, 'state store listener threw')
      else process.emitWarning(`state store listener threw: ${errorMessage(err)}`)
    }
  }
}

function commandDefaults(): RedisOptions {
  return {
    retryStrategy: backoff,
    commandTimeout: DEFAULT_COMMAND_TIMEOUT_MS,
    connectTimeout: DEFAULT_CONNECT_TIMEOUT_MS,
  }
}

function backoff(times: number): number {
  // Jitter spreads the reconnects of many instances after a Redis restart.
  return Math.min(50 * 2 ** Math.min(times - 1, 10), RETRY_CAP_MS) + Math.floor(Math.random() * 50)
}

async function quit(client: Client): Promise<void> {
  if (client.status === 'ready') {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, 1_000)
    })
    await Promise.race([client.quit().catch(() => {}), timeout])
    clearTimeout(timer)
  }
  // Also stops a pending reconnect when the connection was down.
  client.disconnect()
}

/** Cluster slots hash only the part between the first `{` and the next `}`, if non-empty. */
function hasHashTag(prefix: string): boolean {
  const open = prefix.indexOf('{')
  if (open < 0) return false
  const close = prefix.indexOf('}', open + 1)
  return close > open + 1
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

// ---- decoding: Redis content is input like any other; a malformed value is skipped, never trusted.

function stringArray(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : []
}

function stringRecord(value: unknown): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return {}
  const out: Record<string, string> = {}
  for (const [key, v] of Object.entries(value)) if (typeof v === 'string') out[key] = v
  return out
}

function parseObject(json: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(json)
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined
  } catch {
    return undefined
  }
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined
}

function decodeProbe(json: string): ProbeStatus | undefined {
  const o = parseObject(json)
  if (o === undefined) return undefined
  const since = num(o['since'])
  const at = num(o['at'])
  const expiresAt = num(o['expiresAt'])
  const prober = str(o['prober'])
  if (typeof o['up'] !== 'boolean' || since === undefined || at === undefined) return undefined
  if (expiresAt === undefined || prober === undefined) return undefined
  return {
    up: o['up'],
    since,
    rttMs: num(o['rttMs']),
    lastRttMs: num(o['lastRttMs']),
    error: str(o['error']),
    load: num(o['load']),
    at,
    expiresAt,
    prober,
  }
}

function decodeOverride(json: string): Override | undefined {
  const o = parseObject(json)
  if (o === undefined) return undefined
  const weight = num(o['weight'])
  const from = num(o['from'])
  const until = num(o['until'])
  const force = o['force']
  return {
    ...(typeof o['drain'] === 'boolean' ? { drain: o['drain'] } : {}),
    ...(weight !== undefined ? { weight } : {}),
    ...(force === 'up' || force === 'down' ? { force } : {}),
    ...(from !== undefined ? { from } : {}),
    ...(until !== undefined ? { until } : {}),
  }
}

function decodePushed(json: string): PushedState | undefined {
  const o = parseObject(json)
  if (o === undefined) return undefined
  const until = num(o['until'])
  const source = str(o['source'])
  const reason = str(o['reason'])
  if (typeof o['up'] !== 'boolean' || until === undefined || source === undefined) return undefined
  return { up: o['up'], until, source, ...(reason !== undefined ? { reason } : {}) }
}

function decodeInstance(json: string): InstanceInfo | undefined {
  const o = parseObject(json)
  if (o === undefined) return undefined
  const id = str(o['id'])
  const host = str(o['host'])
  const generation = num(o['generation'])
  const staleMs = num(o['staleMs'])
  const version = str(o['version'])
  const at = num(o['at'])
  if (id === undefined || host === undefined || generation === undefined || staleMs === undefined) return undefined
  if (version === undefined || at === undefined) return undefined
  return { id, host, generation, staleMs, version, at }
}

/** Audit entries are stream fields, not JSON, so `XREVRANGE` in redis-cli reads plainly. */
function encodeAudit(a: AuditEntry): string[] {
  return ['at', String(a.at), 'who', a.who, 'action', a.action, 'target', a.target, 'detail', a.detail, 'why', a.why]
}

function decodeAudit(fields: readonly string[]): AuditEntry | undefined {
  const f = new Map<string, string>()
  for (let i = 0; i + 1 < fields.length; i += 2) f.set(fields[i]!, fields[i + 1]!)
  const at = Number(f.get('at'))
  const who = f.get('who')
  const action = f.get('action')
  const target = f.get('target')
  if (!Number.isFinite(at) || who === undefined || action === undefined || target === undefined) return undefined
  return { at, who, action, target, detail: f.get('detail') ?? '', why: f.get('why') ?? '' }
}
