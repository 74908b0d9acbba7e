/**
 * Server settings: `--listen` addresses, NSID, and resolveServeConfig merging flags over a YAML
 * `--config` file over defaults. Every bad value must be a ConfigError that names what is wrong.
 */

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import {
  DEFAULT_LISTEN,
  parseListen,
  parseNsid,
  parseWorkers,
  reloadMode,
  resolveServeConfig,
  type ServeFlags,
} from '../../../src/config/server-config.ts'
import { ConfigError } from '../../../src/errors.ts'
import { DEFAULT_TCP_LIMITS } from '../../../src/server/tcp.ts'

const dir = mkdtempSync(join(tmpdir(), 'gslb-config-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

let fileCount = 0
/** Writes a config file and returns its path. */
function configFile(...lines: string[]): string {
  const path = join(dir, `gslb-${++fileCount}.yaml`)
  writeFileSync(path, lines.join('\n') + '\n')
  return path
}

/** The ConfigError `fn` throws (fails the test if it throws anything else or nothing). */
function configError(fn: () => unknown): ConfigError {
  try {
    fn()
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError)
    expect((e as ConfigError).code).toBe('GSLB_ERR_CONFIG')
    return e as ConfigError
  }
  throw new Error('expected a ConfigError, got none')
}

describe('parseListen', () => {
  it.each([
    { text: '127.0.0.1:5300', host: '127.0.0.1', port: 5300 },
    { text: '0.0.0.0:53', host: '0.0.0.0', port: 53 },
    { text: '192.0.2.1:65535', host: '192.0.2.1', port: 65535 },
    { text: '127.0.0.1:0', host: '127.0.0.1', port: 0 },
    { text: '[::1]:5300', host: '::1', port: 5300 },
    { text: '[::]:53', host: '::', port: 53 },
    { text: '[2001:db8::53]:8053', host: '2001:db8::53', port: 8053 },
    { text: '[::ffff:192.0.2.1]:53', host: '::ffff:192.0.2.1', port: 53 },
  ])('reads $text as $host port $port', ({ text, host, port }) => {
    expect(parseListen(text)).toEqual({ host, port })
  })

  it.each([
    { text: '::1:53', why: 'IPv6 without brackets' },
    { text: '2001:db8::1:53', why: 'IPv6 without brackets, port looks like a group' },
    { text: '::1', why: 'IPv6 without brackets or port' },
    { text: '[::1]', why: 'no port' },
    { text: '[::1]53', why: 'no colon before the port' },
    { text: '127.0.0.1', why: 'no port' },
    { text: '127.0.0.1:', why: 'empty port' },
    { text: ':53', why: 'no address' },
    { text: 'localhost:53', why: 'a host name, not an address' },
    { text: '256.0.0.1:53', why: 'not an IPv4 address' },
    { text: '127.0.0.1:65536', why: 'port above 65535' },
    { text: '127.0.0.1:-1', why: 'negative port' },
    { text: '127.0.0.1:53x', why: 'junk after the port' },
    { text: '[::1]:53:53', why: 'two ports' },
    { text: '', why: 'empty' },
  ])('rejects "$text" ($why)', ({ text }) => {
    const err = configError(() => parseListen(text))
    expect(err.message).toContain('--listen')
    expect(err.message).toContain(`"${text}"`)
    expect(err.message).toContain('[::1]:5300')
  })
})

describe('parseNsid', () => {
  it.each([
    { text: 'ns1', bytes: Buffer.from('ns1') },
    { text: 'ns1.fra.example', bytes: Buffer.from('ns1.fra.example') },
    { text: '0x6e7331', bytes: Buffer.from([0x6e, 0x73, 0x31]) },
    { text: '0X0a0B', bytes: Buffer.from([0x0a, 0x0b]) },
    { text: '0x00ff', bytes: Buffer.from([0x00, 0xff]) },
    { text: 'ünï', bytes: Buffer.from('ünï', 'utf8') },
    { text: 'x'.repeat(512), bytes: Buffer.alloc(512, 'x') },
  ])('reads "$text" as the NSID bytes', ({ text, bytes }) => {
    expect(parseNsid(text).equals(bytes)).toBe(true)
  })

  it.each([
    { text: '', why: 'empty' },
    { text: 'x'.repeat(513), why: '513 bytes of text' },
    { text: 'é'.repeat(257), why: '257 characters but 514 UTF-8 bytes' },
  ])('rejects $why', ({ text }) => {
    expect(configError(() => parseNsid(text)).message).toContain('1..512 bytes')
  })

  // Regression: src/config/server-config.ts parseNsid only caps the length of text NSIDs; the 0x-hex form
  // returns any number of bytes, although the error message (and the OPT budget in
  // dns/response.ts optLength) assume 1..512. A 600-byte hex NSID makes every NSID response's
  // OPT larger than a 512-byte UDP limit.
  it('rejects more than 512 bytes given as hex', () => {
    expect(configError(() => parseNsid('0x' + 'ab'.repeat(600))).message).toContain('1..512 bytes')
  })
})

describe('resolveServeConfig from flags', () => {
  it('uses the defaults when nothing is given', () => {
    expect(resolveServeConfig({})).toEqual({
      zones: 'zones',
      listen: [parseListen(DEFAULT_LISTEN)],
      logLevel: 'info',
      queryLogSample: 0,
      nsid: undefined,
      chaosId: undefined,
      chaosVersion: undefined,
      maxUdpSize: 1232,
      udpIo: 'auto',
      tcp: DEFAULT_TCP_LIMITS,
      watch: true,
      workers: 1,
      reloadMode: 'in-place',
      geoip: [],
      redis: undefined,
      redisSentinel: undefined,
      redisCluster: undefined,
      redisPrefix: 'gslb:',
      region: 'local',
      quorum: 'majority',
      slowStartMs: 30_000,
      staleAfterMs: 300_000,
      staleMode: 'keep',
      admin: { host: '127.0.0.1', port: 5380 },
      adminToken: undefined,
      probeAllow: [],
      probeDeny: [],
      webhooks: [],
      rrl: undefined,
    })
  })

  it('reads every flag', () => {
    const c = resolveServeConfig({
      zones: '/srv/zones',
      listen: ['192.0.2.53:53', '[2001:db8::53]:53'],
      'log-level': 'debug',
      'query-log-sample': '0.25',
      nsid: '0x0102',
      'chaos-id': 'ns1.fra',
      'chaos-version': 'gslb 1.0',
      'no-watch': true,
    })
    expect(c).toMatchObject({
      zones: '/srv/zones',
      listen: [
        { host: '192.0.2.53', port: 53 },
        { host: '2001:db8::53', port: 53 },
      ],
      logLevel: 'debug',
      queryLogSample: 0.25,
      chaosId: 'ns1.fra',
      chaosVersion: 'gslb 1.0',
      watch: false,
    })
    expect(c.nsid).toEqual(Buffer.from([1, 2]))
  })

  it('returns a frozen config', () => {
    expect(Object.isFrozen(resolveServeConfig({}))).toBe(true)
  })

  it.each<{ name: string; flags: ServeFlags; names: string }>([
    { name: 'an unbracketed IPv6 listen address', flags: { listen: ['::1:53'] }, names: '--listen' },
    { name: 'a second listen address that is bad', flags: { listen: ['127.0.0.1:53', 'nope'] }, names: '--listen' },
    { name: 'an unknown log level', flags: { 'log-level': 'verbose' }, names: '--log-level' },
    { name: 'a query log sample above 1', flags: { 'query-log-sample': '2' }, names: '--query-log-sample' },
    { name: 'a negative query log sample', flags: { 'query-log-sample': '-0.1' }, names: '--query-log-sample' },
    {
      name: 'a query log sample that is not a number',
      flags: { 'query-log-sample': 'half' },
      names: '--query-log-sample',
    },
    { name: 'an empty NSID', flags: { nsid: '' }, names: 'nsid' },
  ])('rejects $name, naming $names', ({ flags, names }) => {
    expect(configError(() => resolveServeConfig(flags)).message).toContain(names)
  })
})

describe('resolveServeConfig with --config', () => {
  it('reads every setting from the file', () => {
    const path = configFile(
      'zones: /srv/zones',
      'listen: ["[::1]:5353", "127.0.0.1:5353"]',
      'logLevel: warn',
      'queryLogSample: 0.5',
      'nsid: ns-a',
      'chaos: { id: a1, version: v1 }',
      'maxUdpSize: 1400',
      'udpIo: dgram',
      'tcp: { idleTimeoutMs: 2000, maxConnections: 10 }',
      'watch: false',
      'reloadMode: handover',
      'geoip: [/srv/geo/city.mmdb, /srv/geo/asn.mmdb]',
      'redis: "rediss://u:p@127.0.0.1:6380/0"',
      'redisSentinel: { sentinels: ["127.0.0.1:26379", "[::1]:26380"], name: mymaster, password: pw }',
      'redisCluster: ["127.0.0.1:7000"]',
      'redisPrefix: "prod:"',
      'region: eu',
      'quorum: 2',
      'slowStart: 1m',
      'staleAfter: 90s',
      'staleMode: fail-open',
      'admin: "[::1]:8053"',
      'adminToken: s3cret',
      'probeDeny: [10.0.0.0/8]',
      'webhooks: ["https://alerts.internal/gslb"]',
      'rrl: { responsesPerSecond: 20, slip: 3 }',
    )
    expect(resolveServeConfig({ config: path })).toEqual({
      zones: '/srv/zones',
      listen: [
        { host: '::1', port: 5353 },
        { host: '127.0.0.1', port: 5353 },
      ],
      logLevel: 'warn',
      queryLogSample: 0.5,
      nsid: Buffer.from('ns-a'),
      chaosId: 'a1',
      chaosVersion: 'v1',
      maxUdpSize: 1400,
      udpIo: 'dgram',
      tcp: { ...DEFAULT_TCP_LIMITS, idleTimeoutMs: 2000, maxConnections: 10 },
      watch: false,
      workers: 1,
      reloadMode: 'handover',
      geoip: ['/srv/geo/city.mmdb', '/srv/geo/asn.mmdb'],
      redis: 'rediss://u:p@127.0.0.1:6380/0',
      redisSentinel: {
        sentinels: [
          { host: '127.0.0.1', port: 26379 },
          { host: '::1', port: 26380 },
        ],
        name: 'mymaster',
        password: 'pw',
      },
      redisCluster: [{ host: '127.0.0.1', port: 7000 }],
      redisPrefix: 'prod:',
      region: 'eu',
      quorum: 2,
      slowStartMs: 60_000,
      staleAfterMs: 90_000,
      staleMode: 'fail-open',
      admin: { host: '::1', port: 8053 },
      adminToken: 's3cret',
      probeAllow: [],
      probeDeny: ['10.0.0.0/8'],
      webhooks: ['https://alerts.internal/gslb'],
      rrl: {
        responsesPerSecond: 20,
        errorsPerSecond: 20,
        nxdomainsPerSecond: 20,
        slip: 3,
        window: 15,
        ipv4Prefix: 24,
        ipv6Prefix: 56,
      },
    })
  })

  it('accepts a single listen address as a string', () => {
    const c = resolveServeConfig({ config: configFile('listen: "[::1]:53"') })
    expect(c.listen).toEqual([{ host: '::1', port: 53 }])
  })

  it('treats an empty file as all defaults', () => {
    expect(resolveServeConfig({ config: configFile('# nothing yet') })).toEqual(resolveServeConfig({}))
  })

  it('lets flags win over the file, setting by setting', () => {
    const path = configFile(
      'zones: /from/file',
      'listen: 127.0.0.1:1',
      'logLevel: warn',
      'queryLogSample: 0.5',
      'nsid: file',
      'chaos: { id: file-id, version: file-version }',
      'watch: true',
      'maxUdpSize: 1400',
      'udpIo: dgram',
    )
    const c = resolveServeConfig({
      'udp-io': 'batched',
      config: path,
      zones: '/from/flag',
      listen: ['[::1]:2'],
      'log-level': 'error',
      'query-log-sample': '0',
      nsid: 'flag',
      'chaos-id': 'flag-id',
      'no-watch': true,
    })
    expect(c).toMatchObject({
      zones: '/from/flag',
      listen: [{ host: '::1', port: 2 }],
      logLevel: 'error',
      queryLogSample: 0,
      chaosId: 'flag-id',
      // Not given as a flag: the file's value stays.
      chaosVersion: 'file-version',
      maxUdpSize: 1400,
      udpIo: 'batched',
      watch: false,
    })
    expect(c.nsid).toEqual(Buffer.from('flag'))
    expect(() => resolveServeConfig({ 'udp-io': 'mmsg' })).toThrow('--udp-io: expected one of auto, batched, dgram')
  })

  it('keeps the file listen addresses when the flag list is empty', () => {
    const c = resolveServeConfig({ config: configFile('listen: 127.0.0.1:7'), listen: [] })
    expect(c.listen).toEqual([{ host: '127.0.0.1', port: 7 }])
  })

  it.each([
    {
      name: 'an unknown top-level key',
      lines: ['zones: z', 'listn: 127.0.0.1:53'],
      message: 'unknown setting "listn"',
    },
    { name: 'a flag spelling used as a key', lines: ['log-level: debug'], message: 'unknown setting "log-level"' },
    { name: 'an unknown tcp key', lines: ['tcp: { idleTimeout: 5 }'], message: 'tcp.idleTimeout: unknown' },
    {
      name: 'a tcp limit of 0',
      lines: ['tcp: { maxConnections: 0 }'],
      message: 'tcp.maxConnections: expected a whole number',
    },
    { name: 'a fractional tcp limit', lines: ['tcp: { idleTimeoutMs: 1.5 }'], message: 'tcp.idleTimeoutMs' },
    { name: 'tcp as a list', lines: ['tcp: [1, 2]'], message: 'tcp: expected a mapping' },
    {
      name: 'maxUdpSize below 512',
      lines: ['maxUdpSize: 100'],
      message: 'maxUdpSize: expected a whole number from 512 to 65535',
    },
    { name: 'maxUdpSize above 65535', lines: ['maxUdpSize: 70000'], message: 'maxUdpSize' },
    { name: 'watch as text', lines: ['watch: "yes"'], message: 'watch: expected true or false' },
    {
      name: 'an unknown udpIo',
      lines: ['udpIo: fast'],
      message: 'udpIo: expected one of auto, batched, dgram, got "fast"',
    },
    { name: 'chaos as text', lines: ['chaos: ns1'], message: 'chaos: expected { id, version }' },
    { name: 'a bad listen address', lines: ['listen: "::1:53"'], message: '--listen' },
    { name: 'a bad log level', lines: ['logLevel: loud'], message: 'got "loud"' },
    { name: 'a list at the top', lines: ['- zones'], message: 'expected a mapping of settings' },
    { name: 'a YAML syntax error', lines: ['zones: z', 'listen: [127.0.0.1:53'], message: 'gslb-' },
    { name: 'nsid as a mapping', lines: ['nsid: { a: 1 }'], message: 'nsid: expected text' },
    { name: 'geoip as a number', lines: ['geoip: 5'], message: 'geoip: expected a path or a list of paths' },
    { name: 'a bad quorum', lines: ['quorum: most'], message: 'quorum: expected majority, any, all' },
    {
      name: 'a sentinel without a name',
      lines: ['redisSentinel: { sentinels: ["h:1"] }'],
      message: 'redisSentinel.name',
    },
    {
      name: 'a cluster node without a port',
      lines: ['redisCluster: [h]'],
      message: 'redisCluster: expected host:port',
    },
    { name: 'a bad stale mode', lines: ['staleMode: panic'], message: '--stale-mode: expected keep or fail-open' },
    { name: 'a bad duration', lines: ['slowStart: soon'], message: '--slow-start: expected a duration' },
    { name: 'a bad admin address', lines: ['admin: localhost'], message: '--admin: expected ADDRESS:PORT' },
    { name: 'an unknown rrl key', lines: ['rrl: { rate: 5 }'], message: 'rrl.rate: unknown' },
    { name: 'rrl without a rate', lines: ['rrl: { slip: 2 }'], message: 'rrl.responsesPerSecond: required' },
    { name: 'a webhook that is not a URL', lines: ['webhooks: [alerts]'], message: '--webhook: expected an http://' },
  ])('rejects $name with a message naming it', ({ lines, message }) => {
    const path = configFile(...lines)
    const err = configError(() => resolveServeConfig({ config: path }))
    expect(err.message).toContain(message)
  })

  it('names the config file in file errors', () => {
    const path = configFile('listn: 1')
    expect(configError(() => resolveServeConfig({ config: path })).message).toContain(path)
    const tcp = configFile('tcp: { nope: 1 }')
    expect(configError(() => resolveServeConfig({ config: tcp })).message).toContain(`${tcp}: tcp.nope`)
  })

  it('reports a config file that cannot be read', () => {
    const err = configError(() => resolveServeConfig({ config: join(dir, 'missing.yaml') }))
    expect(err.message).toContain('--config: cannot read')
    expect(err.message).toContain('missing.yaml')
  })

  // Regression: src/config/server-config.ts checks the keys under `tcp:` but not under `chaos:`, so a
  // misspelled `chaos: { ident: ns1 }` (or `hostname:`) is silently ignored and CHAOS id.server
  // stays unanswered, while the same mistake under `tcp:` is a ConfigError naming the key.
  it('rejects an unknown key under chaos, naming it', () => {
    const path = configFile('chaos: { ident: ns1 }')
    expect(configError(() => resolveServeConfig({ config: path })).message).toContain('chaos.ident')
  })

  // Regression: queryLogSample goes through Number() without a type check, so `queryLogSample: true`
  // (and `[0.5]`) in the file are accepted as 1 (and 0.5) instead of being rejected as not a
  // fraction; `true` silently logs every query.
  it('rejects a boolean queryLogSample', () => {
    const path = configFile('queryLogSample: true')
    expect(configError(() => resolveServeConfig({ config: path })).message).toMatch(/query-?log-?sample/i)
  })
})

describe('reload mode', () => {
  it('is in-place unless handover is asked for, by flag or file; handover needs SO_REUSEPORT', () => {
    expect(reloadMode(undefined)).toBe('in-place')
    expect(reloadMode('handover', '--reload-mode', 'linux')).toBe('handover')
    expect(resolveServeConfig({ 'reload-mode': 'handover' }).reloadMode).toBe('handover')
    expect(
      resolveServeConfig({ config: configFile('reloadMode: in-place'), 'reload-mode': 'handover' }).reloadMode,
    ).toBe('handover')
    expect(configError(() => reloadMode('swap')).message).toContain('--reload-mode: expected one of in-place, handover')
    expect(configError(() => reloadMode('handover', '--reload-mode', 'darwin')).message).toContain('SO_REUSEPORT')
    const path = configFile('reloadMode: 2')
    expect(configError(() => resolveServeConfig({ config: path })).message).toContain(`${path}: reloadMode: expected`)
  })
})

describe('workers', () => {
  it('takes 1..64 threads or auto (one per available core), from the flag or the file', () => {
    expect(parseWorkers('1', '--workers', 'linux')).toBe(1)
    expect(parseWorkers('64', '--workers', 'linux')).toBe(64)
    expect(parseWorkers('auto', '--workers', 'linux')).toBe(Math.min(availableParallelism(), 64))
    expect(resolveServeConfig({ config: configFile('workers: 1') }).workers).toBe(1)
    expect(resolveServeConfig({ config: configFile('workers: 1'), workers: '1' }).workers).toBe(1)
  })

  it('rejects other counts, naming the flag or the file key', () => {
    for (const bad of ['0', '65', '1.5', '', 'two'])
      expect(configError(() => parseWorkers(bad, '--workers', 'linux')).message).toContain('--workers: expected')
    const path = configFile('workers: 0')
    expect(configError(() => resolveServeConfig({ config: path })).message).toContain(`${path}: workers: expected`)
  })

  it('refuses more than one worker where SO_REUSEPORT does not balance', () => {
    expect(parseWorkers('1', '--workers', 'darwin')).toBe(1)
    expect(configError(() => parseWorkers('2', '--workers', 'darwin')).message).toContain('darwin')
  })
})
