import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLogger } from '../../src/log.ts'
import { RedisStore, type RedisStoreLog, redisKeys } from '../../src/state/redis.ts'
import {
  auditEntry,
  eventually,
  instanceInfo,
  probeStatus,
  runStateStoreCases,
} from '../conformance/state-store.case.ts'
import { hasRedis, startRedis, type TestRedis } from '../helpers/redis.ts'

let prefixes = 0
/** A fresh prefix per test: one server, no state shared between tests. */
function freshPrefix(tag = 'test'): string {
  return `${tag}-${process.pid}-${++prefixes}:`
}

const EU1 = 'example.com|eu-1'

describe.skipIf(!hasRedis)('RedisStore on a standalone server', () => {
  let redis: TestRedis
  beforeAll(async () => {
    redis = await startRedis()
  })
  afterAll(async () => {
    await redis?.stop()
  })

  runStateStoreCases('RedisStore', async () => {
    const prefix = freshPrefix()
    const store = new RedisStore({ url: redis.url, prefix })
    const peer = new RedisStore({ url: redis.url, prefix })
    const isolated = new RedisStore({ url: redis.url, prefix: freshPrefix('other') })
    await Promise.all([store.ready(), peer.ready(), isolated.ready()])
    return {
      store,
      peer,
      isolated,
      async cleanup() {
        await Promise.all([store.close(), peer.close(), isolated.close()])
      },
    }
  })

  describe('with a raw client to inspect the keys', () => {
    let raw: Redis
    beforeAll(() => {
      raw = new Redis(redis.url)
    })
    afterAll(async () => {
      await raw.quit()
    })

    it('writes use the documented key schema', async () => {
      const prefix = freshPrefix()
      const k = redisKeys(prefix)
      const store = new RedisStore({ url: redis.url, prefix })
      await store.ready()
      await store.writeProbes('eu-central', [[EU1, probeStatus()]])
      await store.setOverride(EU1, { drain: true }, auditEntry('drain', EU1))
      await store.pushState(EU1, { up: false, until: Date.now() + 60_000, source: 'cli' }, auditEntry('push', EU1))
      await store.proberHeartbeat('eu-central', 'prober-a', 60_000)
      await store.instanceHeartbeat(instanceInfo('dns-a'), 60_000)
      const types = Object.fromEntries(
        await Promise.all((await raw.keys(`${prefix}*`)).sort().map(async (key) => [key, await raw.type(key)])),
      )
      expect(types).toEqual({
        [k.audit]: 'stream',
        [k.generation]: 'string',
        [k.instance('dns-a')]: 'string',
        [k.instances]: 'zset',
        [k.overrides]: 'hash',
        [k.probe('eu-central')]: 'hash',
        [k.probers('eu-central')]: 'zset',
        [k.pushed]: 'hash',
        [k.vantages]: 'set',
      })
      expect(await raw.get(k.generation)).toBe('3')
      expect(await raw.pttl(k.probe('eu-central'))).toBeGreaterThan(120_000)
      expect(await raw.pttl(k.instance('dns-a'))).toBeGreaterThan(50_000)
      expect(JSON.parse((await raw.hget(k.overrides, EU1)) ?? 'null')).toEqual({ drain: true })
      await store.close()
    })

    it("a dead vantage's probe reports age out of Redis entirely", async () => {
      const prefix = freshPrefix()
      const k = redisKeys(prefix)
      const store = new RedisStore({ url: redis.url, prefix })
      await store.ready()
      const now = Date.now()
      await store.writeProbes('ap-south', [[EU1, probeStatus({ at: now, expiresAt: now + 40 })]])
      // 3x the 40 ms lifetime.
      expect(await raw.pttl(k.probe('ap-south'))).toBeLessThanOrEqual(120)
      expect(await eventually(async () => (await raw.exists(k.probe('ap-south'))) === 0, 1_000)).toBe(true)
      expect((await store.load()).probes.size).toBe(0)
      // The load noticed the vanished vantage and dropped it from the index.
      expect(await eventually(async () => (await raw.sismember(k.vantages, 'ap-south')) === 0, 1_000)).toBe(true)
      await store.close()
    })

    it('a load prunes expired reports and keeps the live ones', async () => {
      const prefix = freshPrefix()
      const k = redisKeys(prefix)
      const store = new RedisStore({ url: redis.url, prefix })
      await store.ready()
      const now = Date.now()
      await store.writeProbes('eu-central', [
        [EU1, probeStatus({ at: now, expiresAt: now + 30 })],
        ['example.com|eu-2', probeStatus({ at: now, expiresAt: now + 60_000 })],
      ])
      await sleep(50)
      const data = await store.load()
      expect([...(data.probes.get('eu-central')?.keys() ?? [])]).toEqual(['example.com|eu-2'])
      expect(await eventually(async () => (await raw.hexists(k.probe('eu-central'), EU1)) === 0)).toBe(true)
      expect(await raw.hexists(k.probe('eu-central'), 'example.com|eu-2')).toBe(1)
      await store.close()
    })

    it('a short-lived probe batch does not cut the ttl a longer-lived batch set', async () => {
      const prefix = freshPrefix()
      const k = redisKeys(prefix)
      const store = new RedisStore({ url: redis.url, prefix })
      await store.ready()
      const now = Date.now()
      await store.writeProbes('eu-central', [[EU1, probeStatus({ prober: 'a', expiresAt: now + 60_000 })]])
      await store.writeProbes('eu-central', [['example.com|eu-2', probeStatus({ prober: 'b', expiresAt: now + 100 })]])
      expect(await raw.pttl(k.probe('eu-central'))).toBeGreaterThan(150_000)
      await store.close()
    })

    it('malformed values in Redis are skipped, not trusted', async () => {
      const prefix = freshPrefix()
      const k = redisKeys(prefix)
      const store = new RedisStore({ url: redis.url, prefix })
      await store.ready()
      await store.writeProbes('eu-central', [[EU1, probeStatus()]])
      await raw.hset(k.probe('eu-central'), 'example.com|bad', '{not json')
      await raw.hset(k.probe('eu-central'), 'example.com|wrong', JSON.stringify({ up: 'yes' }))
      await raw.hset(k.overrides, EU1, '[1,2]')
      await raw.hset(k.pushed, EU1, JSON.stringify({ up: true }))
      await raw.xadd(k.audit, '*', 'nonsense', '1')
      const data = await store.load()
      expect([...(data.probes.get('eu-central')?.keys() ?? [])]).toEqual([EU1])
      expect(data.overrides.size).toBe(0)
      expect(data.pushed.size).toBe(0)
      expect(await store.audit(10)).toEqual([])
      // Garbage in a probe hash is pruned like an expired report.
      expect(await eventually(async () => (await raw.hlen(k.probe('eu-central'))) === 1)).toBe(true)
      await store.close()
    })
  })

  it('refuses an empty prefix and a cluster prefix without a hash tag', () => {
    expect(() => new RedisStore({ url: redis.url, prefix: '' })).toThrow(/must not be empty/)
    expect(() => RedisStore.cluster([{ host: '127.0.0.1', port: redis.port }], {}, 'gslb:')).toThrow(/hash tag/)
  })

  it('accepts a pino logger', async () => {
    const store = new RedisStore({ url: redis.url, prefix: freshPrefix(), log: createLogger('silent') })
    await store.ready()
    expect(store.connected).toBe(true)
    await store.close()
    expect(store.connected).toBe(false)
  })

  it('a call made right after construction waits for the first connection', async () => {
    const prefix = freshPrefix()
    const store = new RedisStore({ url: redis.url, prefix })
    await store.setOverride(EU1, { drain: true }, auditEntry('drain', EU1))
    expect((await store.load()).overrides.get(EU1)).toEqual({ drain: true })
    await store.close()
  })

  it('ready() and calls give up when Redis was never reachable', async () => {
    const down = await startRedis()
    await down.stop()
    const store = new RedisStore({ url: down.url, prefix: freshPrefix(), firstConnectWaitMs: 200 })
    await expect(store.ready(200)).rejects.toThrow(/not connected after 200 ms/)
    const started = Date.now()
    await expect(store.load()).rejects.toMatchObject({ code: 'GSLB_ERR_REDIS' })
    expect(Date.now() - started).toBeLessThan(1_000)
    await store.close()
  })
})

describe.skipIf(!hasRedis)('RedisStore across a Redis restart', () => {
  let redis: TestRedis
  let store: RedisStore
  const prefix = freshPrefix()
  const connection: boolean[] = []
  const logged: string[] = []
  let changes = 0
  const log: RedisStoreLog = {
    info: (_obj, msg) => logged.push(`info: ${msg}`),
    warn: (_obj, msg) => logged.push(`warn: ${msg}`),
  }

  beforeAll(async () => {
    redis = await startRedis()
    store = new RedisStore({ url: redis.url, prefix, log })
    store.onConnection((up) => connection.push(up))
    store.onChange(() => {
      changes++
    })
    await store.ready()
    await store.setOverride(EU1, { drain: true }, auditEntry('drain', EU1))
    await store.load()
  })
  afterAll(async () => {
    await store?.close()
    await redis?.stop()
  })

  it('losing Redis turns connected false, tells listeners once and makes calls fail fast', async () => {
    expect(connection).toEqual([true])
    await redis.stop()
    expect(await eventually(() => !store.connected, 1_000)).toBe(true)
    let started = Date.now()
    await expect(store.load()).rejects.toMatchObject({ code: 'GSLB_ERR_REDIS' })
    expect(Date.now() - started).toBeLessThan(1_000)
    started = Date.now()
    await expect(store.setOverride(EU1, undefined, auditEntry('undrain', EU1))).rejects.toMatchObject({
      code: 'GSLB_ERR_REDIS',
    })
    expect(Date.now() - started).toBeLessThan(1_000)
    // Reconnect attempts keep failing meanwhile; the loss is still reported only once.
    await sleep(300)
    expect(connection).toEqual([true, false])
    expect(logged).toEqual([
      'info: redis state store connected',
      'warn: redis state store disconnected; keeping the last view',
    ])
  })

  it('when Redis returns the store reconnects, reports it, signals a change and sees new writes', async () => {
    const before = changes
    const started = Date.now()
    await redis.restart()
    expect(await eventually(() => store.connected, 5_000)).toBe(true)
    expect(Date.now() - started).toBeLessThan(5_000)
    expect(connection).toEqual([true, false, true])
    expect(logged.at(-1)).toBe('info: redis state store reconnected')
    expect(changes).toBeGreaterThan(before)

    // The restarted server kept nothing (no persistence); new writes are visible and signalled.
    expect((await store.load()).overrides.size).toBe(0)
    const seen = changes
    const other = new RedisStore({ url: redis.url, prefix })
    await other.ready()
    await other.setOverride(EU1, { weight: 3 }, auditEntry('weight', EU1))
    expect(await eventually(() => changes > seen, 1_000)).toBe(true)
    expect((await store.load()).overrides.get(EU1)).toEqual({ weight: 3 })
    await other.close()
  })

  it('a killed Redis is noticed as well', async () => {
    await redis.kill()
    expect(await eventually(() => !store.connected, 1_000)).toBe(true)
    expect(connection.at(-1)).toBe(false)
    await redis.restart()
    expect(await eventually(() => store.connected, 5_000)).toBe(true)
    expect(connection.at(-1)).toBe(true)
  })
})

describe.skipIf(!hasRedis)('RedisStore on a one-node Redis Cluster', () => {
  let redis: TestRedis
  beforeAll(async () => {
    redis = await startRedis({ cluster: true })
  })
  afterAll(async () => {
    await redis?.stop()
  })

  runStateStoreCases('RedisStore.cluster', async () => {
    const nodes = [{ host: '127.0.0.1', port: redis.port }]
    const prefix = `{${freshPrefix('c')}}:`
    const store = RedisStore.cluster(nodes, {}, prefix)
    const peer = RedisStore.cluster(nodes, {}, prefix)
    const isolated = RedisStore.cluster(nodes, {}, `{${freshPrefix('other')}}:`)
    await Promise.all([store.ready(), peer.ready(), isolated.ready()])
    return {
      store,
      peer,
      isolated,
      async cleanup() {
        await Promise.all([store.close(), peer.close(), isolated.close()])
      },
    }
  })
})
