/**
 * The MMDB writer, checked by reading its output back with the `maxmind` reader (and with
 * libmaxminddb's mmdblookup when installed, which also prints the stored type of each value).
 */

import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Reader } from 'maxmind'
import { afterAll, describe, expect, it } from 'vitest'
import {
  double,
  float,
  int32,
  type MmdbEntry,
  type MmdbValue,
  MmdbWriteError,
  uint16,
  uint32,
  uint64,
  uint128,
  writeMmdb,
} from '../../../geoip/tools/mmdb-writer.ts'

const dir = mkdtempSync(join(tmpdir(), 'gslb-mmdb-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const hasMmdblookup = (() => {
  try {
    execFileSync('mmdblookup', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
})()

function reader(entries: readonly MmdbEntry[], options: Partial<Parameters<typeof writeMmdb>[1]> = {}) {
  return new Reader<Record<string, unknown>>(writeMmdb(entries, { databaseType: 'Test', ...options }))
}

/** Bytes of the data section: between the tree (+16-byte separator) and the metadata marker. */
function dataSectionSize(file: Buffer): number {
  const r = new Reader(file)
  const marker = file.lastIndexOf(Buffer.from([0xab, 0xcd, 0xef, ...Buffer.from('MaxMind.com')]))
  return marker - r.metadata.searchTreeSize - 16
}

const ALL_TYPES = {
  empty_string: '',
  ascii: 'Frankfurt am Main',
  unicode: 'São Paulo – 東京',
  len28: 'x'.repeat(28),
  len29: 'x'.repeat(29),
  len284: 'y'.repeat(284),
  len285: 'y'.repeat(285),
  len65820: 'z'.repeat(65820),
  len65821: 'z'.repeat(65821),
  len70000: 'w'.repeat(70000),
  double: double(50.1155),
  double_whole: double(3),
  negative_double: -121.895,
  float: float(1.5),
  uint16_max: uint16(65535),
  uint16_zero: uint16(0),
  uint32_max: uint32(0xffffffff),
  uint32_plain: 4200000000,
  uint64_max: uint64((1n << 64n) - 1n),
  uint64_small: uint64(7),
  uint128_max: uint128((1n << 128n) - 1n),
  bigint_64: 1n << 63n,
  bigint_128: 1n << 100n,
  int32_min: int32(-0x80000000),
  int32_max: int32(0x7fffffff),
  int32_minus_one: -1,
  int32_small: int32(5),
  yes: true,
  no: false,
  bytes: Uint8Array.from([0, 1, 2, 254, 255]),
  empty_array: [],
  array: [1, 'two', false, { three: 3 }, [4]],
  empty_map: {},
  nested: { a: { b: { c: { d: 'deep' } } } },
  wide_map: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, i])),
  long_array: Array.from({ length: 300 }, (_, i) => i),
} satisfies Record<string, MmdbValue>

describe('mmdb-writer data section', () => {
  it('round-trips every data type through the maxmind reader', () => {
    const r = reader([{ network: '192.0.2.0/24', data: ALL_TYPES }])
    const got = r.get('192.0.2.1')!
    expect(got['empty_string']).toBe('')
    expect(got['ascii']).toBe('Frankfurt am Main')
    expect(got['unicode']).toBe('São Paulo – 東京')
    for (const k of ['len28', 'len29', 'len284', 'len285', 'len65820', 'len65821', 'len70000'] as const) {
      expect(got[k]).toBe(ALL_TYPES[k])
    }
    expect(got['double']).toBe(50.1155)
    expect(got['double_whole']).toBe(3)
    expect(got['negative_double']).toBe(-121.895)
    expect(got['float']).toBe(1.5)
    expect(got['uint16_max']).toBe(65535)
    expect(got['uint16_zero']).toBe(0)
    expect(got['uint32_max']).toBe(0xffffffff)
    expect(got['uint32_plain']).toBe(4200000000)
    expect(got['uint64_max']).toBe((1n << 64n) - 1n)
    expect(got['uint64_small']).toBe(7n)
    expect(got['uint128_max']).toBe((1n << 128n) - 1n)
    expect(got['bigint_64']).toBe(1n << 63n)
    expect(got['bigint_128']).toBe(1n << 100n)
    expect(got['int32_min']).toBe(-0x80000000)
    expect(got['int32_max']).toBe(0x7fffffff)
    expect(got['int32_minus_one']).toBe(-1)
    expect(got['int32_small']).toBe(5)
    expect(got['yes']).toBe(true)
    expect(got['no']).toBe(false)
    expect([...(got['bytes'] as Uint8Array)]).toEqual([0, 1, 2, 254, 255])
    expect(got['empty_array']).toEqual([])
    expect(got['array']).toEqual([1, 'two', false, { three: 3 }, [4]])
    expect(got['empty_map']).toEqual({})
    expect(got['nested']).toEqual({ a: { b: { c: { d: 'deep' } } } })
    expect(got['wide_map']).toEqual(ALL_TYPES.wide_map)
    expect(got['long_array']).toEqual(ALL_TYPES.long_array)
  })

  it('accepts a scalar as the whole record', () => {
    const r = reader([
      { network: '192.0.2.0/25', data: 'just a string' },
      { network: '192.0.2.128/25', data: 42 },
    ])
    expect(r.get('192.0.2.1')).toBe('just a string')
    expect(r.get('192.0.2.200')).toBe(42)
  })

  it('writes metadata that readers understand', () => {
    const file = writeMmdb([{ network: '192.0.2.0/24', data: { a: 1 } }], {
      databaseType: 'GeoIP2-City',
      languages: ['en', 'de'],
      description: { en: 'test', de: 'Test' },
      buildEpoch: 1767225600,
    })
    const m = new Reader(file).metadata
    expect(m.databaseType).toBe('GeoIP2-City')
    expect(m.languages).toEqual(['en', 'de'])
    expect(m.description).toEqual({ en: 'test', de: 'Test' })
    expect(m.buildEpoch.toISOString()).toBe('2026-01-01T00:00:00.000Z')
    expect(m.ipVersion).toBe(6)
    expect(m.recordSize).toBe(24)
    expect(m.binaryFormatMajorVersion).toBe(2)
    expect(m.binaryFormatMinorVersion).toBe(0)
  })

  it('stores identical records once', () => {
    const record = { country: { iso_code: 'DE', names: { en: 'Germany', de: 'Deutschland' } } }
    const one = writeMmdb([{ network: '10.0.0.0/24', data: record }], { databaseType: 'T' })
    const many = writeMmdb(
      Array.from({ length: 100 }, (_, i) => ({ network: `10.0.${i}.0/24`, data: { ...record } })),
      { databaseType: 'T' },
    )
    expect(dataSectionSize(many)).toBe(dataSectionSize(one))
    const r = new Reader<Record<string, unknown>>(many)
    expect(r.get('10.0.99.1')).toEqual(record)
  })

  it('shares repeated keys and sub-values through pointers', () => {
    const names = { en: 'Germany', de: 'Deutschland', fr: 'Allemagne', ja: 'ドイツ連邦共和国' }
    const a = { country: { names }, registered_country: { names } }
    const single = writeMmdb([{ network: '10.0.0.0/24', data: { country: { names } } }], { databaseType: 'T' })
    const both = writeMmdb([{ network: '10.0.0.0/24', data: a }], { databaseType: 'T' })
    // The second copy of `names` is a pointer: much less than doubling the section.
    expect(dataSectionSize(both) - dataSectionSize(single)).toBeLessThan(30)
    expect(new Reader(both).get('10.0.0.1')).toEqual(a)
  })

  it('encodes map keys in a stable order, so equal objects give equal files', () => {
    const x = writeMmdb([{ network: '10.0.0.0/8', data: { b: 1, a: 2 } }], { databaseType: 'T', buildEpoch: 1 })
    const y = writeMmdb([{ network: '10.0.0.0/8', data: { a: 2, b: 1 } }], { databaseType: 'T', buildEpoch: 1 })
    expect(x.equals(y)).toBe(true)
  })
})

describe('mmdb-writer search tree', () => {
  const entries: MmdbEntry[] = [
    // Deliberately unordered: longer prefixes first.
    { network: '198.51.100.128/25', data: { n: 'v4-25b' } },
    { network: '198.51.100.0/24', data: { n: 'v4-24' } },
    { network: '198.51.100.0/26', data: { n: 'v4-26' } },
    { network: '10.0.0.0/8', data: { n: 'v4-8' } },
    { network: '2001:db8::/32', data: { n: 'v6-32' } },
    { network: '2001:db8:e0::/48', data: { n: 'v6-48' } },
    { network: '2001:db8:e0:1::1/128', data: { n: 'v6-host' } },
  ]

  it.each([
    ['198.51.100.1', 'v4-26', 26],
    ['198.51.100.64', 'v4-24', 26],
    ['198.51.100.127', 'v4-24', 26],
    ['198.51.100.200', 'v4-25b', 25],
    ['10.255.255.255', 'v4-8', 8],
    ['2001:db8:1::1', 'v6-32', 41],
    // The /128 inside splits the /48: the neighbour network holding ::1 is a /64.
    ['2001:db8:e0::1', 'v6-48', 64],
    ['2001:db8:e0:8000::1', 'v6-48', 49],
    ['2001:db8:e0:1::1', 'v6-host', 128],
    ['::ffff:198.51.100.1', 'v4-26', 122],
    ['::198.51.100.1', 'v4-26', 122],
  ])('%s matches %s with prefix %i (longest match, any input order)', (ip, name, prefix) => {
    const [data, len] = reader(entries).getWithPrefixLength(ip)
    expect(data).toEqual({ n: name })
    expect(len).toBe(prefix)
  })

  it('reports prefixes of IPv4 lookups in IPv4 terms (0..32) in an IPv6 tree', () => {
    const r = reader(entries)
    expect(r.getWithPrefixLength('198.51.100.1')[1]).toBe(26)
    expect(r.getWithPrefixLength('::ffff:198.51.100.1')[1]).toBe(122)
  })

  it('returns no record, with the empty network length, outside every network', () => {
    const [data, len] = reader(entries).getWithPrefixLength('8.8.8.8')
    expect(data).toBeNull()
    expect(len).toBeGreaterThan(0)
    expect(reader(entries).get('2001:db9::1')).toBeNull()
  })

  it('leaves out the ::ffff:0:0/96 alias when asked', () => {
    const r = reader(entries, { ipv4Aliases: false })
    expect(r.get('198.51.100.1')).toEqual({ n: 'v4-26' })
    expect(r.get('::ffff:198.51.100.1')).toBeNull()
  })

  it('covers everything with 0.0.0.0/0 and ::/0', () => {
    const v4 = reader([{ network: '0.0.0.0/0', data: 'all-v4' }])
    expect(v4.getWithPrefixLength('203.0.113.9')).toEqual(['all-v4', 0])
    expect(v4.get('2001:db8::1')).toBeNull()
    const v6 = reader([{ network: '::/0', data: 'all' }], { ipv4Aliases: false })
    // The root is always a node, so ::/0 is stored as two /1 records.
    expect(v6.getWithPrefixLength('2001:db8::1')).toEqual(['all', 1])
    expect(v6.get('203.0.113.9')).toBe('all')
  })

  it('writes IPv4-only trees', () => {
    const r = reader(
      [
        { network: '198.51.100.0/24', data: 'a' },
        { network: '198.51.100.0/25', data: 'b' },
      ],
      { ipVersion: 4 },
    )
    expect(r.metadata.ipVersion).toBe(4)
    expect(r.getWithPrefixLength('198.51.100.1')).toEqual(['b', 25])
    expect(r.getWithPrefixLength('198.51.100.129')).toEqual(['a', 25])
  })

  it.each([24, 28, 32] as const)('reads back with %i-bit records', (recordSize) => {
    const r = reader(entries, { recordSize })
    expect(r.metadata.recordSize).toBe(recordSize)
    expect(r.get('198.51.100.1')).toEqual({ n: 'v4-26' })
    expect(r.get('2001:db8:e0:1::1')).toEqual({ n: 'v6-host' })
  })

  it('splits 28-bit records into the shared middle nibble correctly past 2^24', () => {
    // Three 6 MB values push the last two records past 2^24, so both the left and the right
    // record of one node carry high bits in the shared nibble.
    const blob = (b: number) => new Uint8Array(6_000_000).fill(b)
    const big: MmdbEntry[] = [
      { network: '1.0.0.0/8', data: blob(1) },
      { network: '2.0.0.0/8', data: blob(2) },
      { network: '3.0.0.0/8', data: blob(3) },
      { network: '10.0.0.0/8', data: 'left' },
      { network: '11.0.0.0/8', data: 'right' },
    ]
    const file = writeMmdb(big, { databaseType: 'T' })
    const r = new Reader(file)
    expect(r.metadata.recordSize).toBe(28)
    expect(r.get('10.1.1.1')).toBe('left')
    expect(r.get('11.1.1.1')).toBe('right')
    expect((r.get('3.1.1.1') as Uint8Array)[5_999_999]).toBe(3)
    const wide = new Reader(writeMmdb(big, { databaseType: 'T', recordSize: 32 }))
    expect(wide.get('11.1.1.1')).toBe('right')
    expect(() => writeMmdb(big, { databaseType: 'T', recordSize: 24 })).toThrow(MmdbWriteError)
  })
})

describe('mmdb-writer input errors', () => {
  it.each([
    ['not-an-ip/8', /not an IP network/],
    ['10.0.0.0/33', /prefix must be 0..32/],
    ['10.0.0.0/x', /bad prefix length/],
    ['10.0.0.1/8', /host bits set/],
    ['2001:db8::1/32', /host bits set/],
  ])('refuses network %s', (network, message) => {
    expect(() => writeMmdb([{ network, data: 1 }], { databaseType: 'T' })).toThrow(message)
  })

  it('refuses duplicate networks, naming both spellings', () => {
    const err = (() => {
      try {
        writeMmdb(
          [
            { network: '2001:db8::/32', data: 1 },
            { network: '2001:0db8::/32', data: 2 },
          ],
          { databaseType: 'T' },
        )
      } catch (e) {
        return e
      }
      return undefined
    })()
    expect(err).toBeInstanceOf(MmdbWriteError)
    expect((err as MmdbWriteError).code).toBe('GSLB_ERR_MMDB_WRITE')
    expect((err as Error).message).toMatch(/2001:0db8::\/32: duplicate network \(also given as 2001:db8::\/32\)/)
  })

  it('refuses IPv6 networks in an IPv4 tree and values out of range', () => {
    expect(() => writeMmdb([{ network: '2001:db8::/32', data: 1 }], { databaseType: 'T', ipVersion: 4 })).toThrow(
      /IPv6 network in an ipVersion 4/,
    )
    const bad: MmdbValue[] = [uint16(65536), uint32(-1), int32(2 ** 31), uint64(1n << 64n), -1n, uint16(1.5)]
    for (const data of bad) {
      expect(() => writeMmdb([{ network: '10.0.0.0/8', data }], { databaseType: 'T' })).toThrow(MmdbWriteError)
    }
  })
})

describe.skipIf(!hasMmdblookup)('mmdb-writer output read by libmaxminddb (mmdblookup)', () => {
  it('shows the intended stored types', () => {
    const path = join(dir, 'types.mmdb')
    writeFileSync(path, writeMmdb([{ network: '192.0.2.0/24', data: ALL_TYPES }], { databaseType: 'T' }))
    const out = execFileSync('mmdblookup', ['--file', path, '--ip', '192.0.2.1'], { encoding: 'utf8' })
    const typeOf = (key: string): string | undefined => {
      const m = new RegExp(`"${key}":\\s*\\n\\s*(.*)`).exec(out)
      return m?.[1]?.match(/<([a-z0-9_]+)>\s*$/)?.[1]
    }
    expect(typeOf('double')).toBe('double')
    expect(typeOf('float')).toBe('float')
    expect(typeOf('uint16_max')).toBe('uint16')
    expect(typeOf('uint32_plain')).toBe('uint32')
    expect(typeOf('uint64_max')).toBe('uint64')
    expect(typeOf('uint128_max')).toBe('uint128')
    expect(typeOf('int32_min')).toBe('int32')
    expect(typeOf('yes')).toBe('boolean')
    expect(typeOf('ascii')).toBe('utf8_string')
    expect(typeOf('bytes')).toBe('bytes')
    expect(out).toContain('-2147483648 <int32>')
    expect(out).toContain('"São Paulo – 東京" <utf8_string>')
  })

  it('follows the IPv4-mapped alias; libmaxminddb counts IPv4 prefixes from the IPv6 root', () => {
    const path = join(dir, 'alias.mmdb')
    writeFileSync(path, writeMmdb([{ network: '198.51.100.0/25', data: { n: 'x' } }], { databaseType: 'T' }))
    const v4 = execFileSync('mmdblookup', ['--file', path, '--ip', '198.51.100.1', '-v'], { encoding: 'utf8' })
    expect(v4).toMatch(/Record prefix length: 121/)
    const mapped = execFileSync('mmdblookup', ['--file', path, '--ip', '::ffff:198.51.100.1'], { encoding: 'utf8' })
    expect(mapped).toContain('"x" <utf8_string>')
  })
})
