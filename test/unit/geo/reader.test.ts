/**
 * GeoDatabase over the committed fixtures (test/fixtures/geo/README.md has the table), the
 * embedded default database, and databases written on the fly for the failure cases.
 */

import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { buildTestDatabases, FIXTURE_DIR } from '../../../geoip/tools/build-test-dbs.ts'
import { type MmdbEntry, writeMmdb } from '../../../geoip/tools/mmdb-writer.ts'
import { GeoDatabaseError } from '../../../src/errors.ts'
import { CENTROID_COUNTRY_CODES, centroidOf } from '../../../src/geo/centroids.ts'
import { CONTINENT_CODES, CONTINENT_COUNTRY_CODES, continentOf } from '../../../src/geo/continents.ts'
import { GeoDatabase, type GeoLog, type GeoSourceInfo } from '../../../src/geo/reader.ts'
import type { GeoInfo } from '../../../src/policy/types.ts'

const dir = mkdtempSync(join(tmpdir(), 'gslb-geo-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const fixture = (name: string): string => join(FIXTURE_DIR, `test-${name}.mmdb`)

/** Writes a database into the temp dir and returns its path. */
function tempDb(name: string, entries: readonly MmdbEntry[], databaseType = 'Test', ipVersion: 4 | 6 = 6): string {
  const path = join(dir, name)
  writeFileSync(path, writeMmdb(entries, { databaseType, ipVersion }))
  return path
}

/** Records log calls, so tests can see what the server would have logged. */
function recorder(): GeoLog & { readonly lines: { level: string; msg: string; obj: object }[] } {
  const lines: { level: string; msg: string; obj: object }[] = []
  return {
    lines,
    info: (obj, msg) => lines.push({ level: 'info', msg, obj }),
    warn: (obj, msg) => lines.push({ level: 'warn', msg, obj }),
  }
}

const FRANKFURT = { lat: 50.1155, lon: 8.6842 }
const SAN_JOSE = { lat: 37.3394, lon: -121.895 }
const TOKYO = { lat: 35.6895, lon: 139.6917 }
const SYDNEY = { lat: -33.8688, lon: 151.2093 }
const JOBURG = { lat: -26.2041, lon: 28.0473 }
const BERLIN = { lat: 52.5244, lon: 13.4105 }
const ASHBURN = { lat: 39.0437, lon: -77.4875 }
const OSAKA = { lat: 34.6937, lon: 135.5022 }
const centroid = (cc: string) => centroidOf(cc)!

type Case = readonly [address: string, expected: GeoInfo]

const CITY: readonly Case[] = [
  ['198.51.100.1', { country: 'DE', continent: 'EU', subdivision: 'DE-HE', location: FRANKFURT, prefixLength: 25 }],
  ['198.51.100.200', { country: 'US', continent: 'NA', subdivision: 'US-CA', location: SAN_JOSE, prefixLength: 25 }],
  ['203.0.113.7', { country: 'JP', continent: 'AS', subdivision: 'JP-13', location: TOKYO, prefixLength: 24 }],
  // Country-level record in the City database: centroid fallback.
  ['192.0.2.1', { country: 'BR', continent: 'SA', location: centroid('BR'), prefixLength: 24 }],
  ['10.20.30.40', { country: 'AU', continent: 'OC', subdivision: 'AU-NSW', location: SYDNEY, prefixLength: 8 }],
  ['100.127.255.255', { country: 'ZA', continent: 'AF', subdivision: 'ZA-GP', location: JOBURG, prefixLength: 10 }],
  ['2001:db8:e0::1', { country: 'DE', continent: 'EU', subdivision: 'DE-BE', location: BERLIN, prefixLength: 48 }],
  [
    '2001:db8:a0:ffff::1',
    { country: 'US', continent: 'NA', subdivision: 'US-VA', location: ASHBURN, prefixLength: 48 },
  ],
  ['2001:DB8:F0::abcd', { country: 'JP', continent: 'AS', subdivision: 'JP-27', location: OSAKA, prefixLength: 48 }],
  [
    '::ffff:198.51.100.1',
    { country: 'DE', continent: 'EU', subdivision: 'DE-HE', location: FRANKFURT, prefixLength: 121 },
  ],
]

const COUNTRY: readonly Case[] = [
  ['198.51.100.1', { country: 'DE', continent: 'EU', location: centroid('DE'), prefixLength: 25 }],
  ['198.51.100.200', { country: 'US', continent: 'NA', location: centroid('US'), prefixLength: 25 }],
  ['203.0.113.7', { country: 'JP', continent: 'AS', location: centroid('JP'), prefixLength: 24 }],
  ['192.0.2.1', { country: 'BR', continent: 'SA', location: centroid('BR'), prefixLength: 24 }],
  ['10.0.0.1', { country: 'AU', continent: 'OC', location: centroid('AU'), prefixLength: 8 }],
  ['100.64.0.1', { country: 'ZA', continent: 'AF', location: centroid('ZA'), prefixLength: 10 }],
  ['2001:db8:e0::1', { country: 'DE', continent: 'EU', location: centroid('DE'), prefixLength: 48 }],
  ['2001:db8:a0::1', { country: 'US', continent: 'NA', location: centroid('US'), prefixLength: 48 }],
  ['2001:db8:f0::1', { country: 'JP', continent: 'AS', location: centroid('JP'), prefixLength: 48 }],
]

const ASN: readonly Case[] = [
  ['198.51.100.1', { asn: 64496, prefixLength: 24 }],
  ['198.51.100.200', { asn: 64496, prefixLength: 24 }],
  ['203.0.113.7', { asn: 64497, prefixLength: 25 }],
  ['203.0.113.200', { prefixLength: 25 }],
  ['10.0.0.1', { asn: 4200000000, prefixLength: 8 }],
  ['2001:db8:f0::1', { asn: 64498, prefixLength: 32 }],
]

const IPLOCATION_CITY: readonly Case[] = [
  // state1 holds names ("Hesse"), which are not ISO 3166-2 codes: no subdivision.
  ['198.51.100.1', { country: 'DE', continent: 'EU', location: FRANKFURT, prefixLength: 25 }],
  ['203.0.113.7', { country: 'JP', continent: 'AS', location: TOKYO, prefixLength: 24 }],
  ['192.0.2.1', { country: 'BR', continent: 'SA', location: centroid('BR'), prefixLength: 24 }],
  ['2001:db8:a0::1', { country: 'US', continent: 'NA', location: ASHBURN, prefixLength: 48 }],
]

describe('GeoDatabase with one fixture', () => {
  it.each([
    ['city', 'geoip2-city', false, 'GeoIP2-City', CITY],
    ['country', 'geoip2-country', false, 'GeoLite2-Country', COUNTRY],
    ['asn', 'geolite2-asn', true, 'GeoLite2-ASN', ASN],
    // Continents come from the table: ip-location-db records carry only country_code.
    ['iplocation-country', 'iplocation-country', false, 'country ipvAll', COUNTRY],
    ['iplocation-city', 'iplocation-city', false, 'city ipvAll', IPLOCATION_CITY],
  ] as const)('reads the %s schema (%s)', async (name, schema, asn, databaseType, cases) => {
    const db = await GeoDatabase.open([fixture(name)])
    expect(db.describe()).toEqual([
      {
        path: fixture(name),
        schema,
        asn,
        databaseType,
        buildDate: new Date('2026-01-01T00:00:00Z'),
        ipVersion: 6,
        nodeCount: expect.any(Number),
        size: readFileSync(fixture(name)).length,
      } satisfies GeoSourceInfo,
    ])
    for (const [address, expected] of cases) expect(db.lookup(address), address).toEqual(expected)
  })

  it('gives only the empty network length for an address no file knows', async () => {
    const db = await GeoDatabase.open([fixture('city')])
    const info = db.lookup('8.8.8.8')!
    expect(Object.keys(info).filter((k) => info[k as keyof GeoInfo] !== undefined)).toEqual(['prefixLength'])
    expect(info.prefixLength).toBeGreaterThan(0)
    expect(info.prefixLength).toBeLessThanOrEqual(32)
    expect(db.lookup('2001:db8:1::1')!.prefixLength).toBeLessThanOrEqual(128)
  })

  it.each([
    '',
    'bogus',
    '1.2.3',
    '256.1.1.1',
    '01.2.3.4',
    '1.2.3.4/24',
    ' 1.2.3.4',
    '1.2.3.4%eth0',
    '[::1]',
    '::g',
    '1::2::3',
    '198.51.100.1.',
    'x'.repeat(10_000),
    '\u0000',
  ])('returns undefined, without throwing, for %j', async (input) => {
    const db = await GeoDatabase.open([fixture('city')])
    expect(db.lookup(input)).toBeUndefined()
  })

  it('returns undefined for non-strings that slip past the types', async () => {
    const db = await GeoDatabase.open([fixture('city')])
    for (const bad of [undefined, null, 42, {}, []]) expect(db.lookup(bad as unknown as string)).toBeUndefined()
  })

  it('ignores an IPv6 zone index and accepts every IPv4-mapped spelling', async () => {
    const db = await GeoDatabase.open([fixture('iplocation-country')])
    expect(db.lookup('2001:db8:e0::1%eth0')?.country).toBe('DE')
    for (const mapped of ['::ffff:198.51.100.1', '::FFFF:c633:6401', '0:0:0:0:0:ffff:198.51.100.1']) {
      expect(db.lookup(mapped), mapped).toMatchObject({ country: 'DE', prefixLength: 121 })
    }
  })

  it('looks up IPv4-mapped addresses in databases without the ::ffff:0:0/96 alias', async () => {
    const path = join(dir, 'no-alias.mmdb')
    writeFileSync(
      path,
      writeMmdb([{ network: '198.51.100.0/24', data: { country_code: 'FR' } }], {
        databaseType: 'country',
        ipv4Aliases: false,
      }),
    )
    const db = await GeoDatabase.open([path])
    expect(db.lookup('::ffff:198.51.100.9')).toMatchObject({ country: 'FR', prefixLength: 120 })
  })

  it('answers IPv6 addresses from an IPv4-only database with scope 0', async () => {
    const path = tempDb('v4only.mmdb', [{ network: '198.51.100.0/24', data: { country_code: 'FR' } }], 'c', 4)
    const db = await GeoDatabase.open([path])
    expect(db.describe()[0]!.ipVersion).toBe(4)
    expect(db.lookup('198.51.100.1')).toMatchObject({ country: 'FR', prefixLength: 24 })
    expect(db.lookup('2001:db8::1')).toEqual({ prefixLength: 0 })
  })
})

describe('GeoDatabase merging several files', () => {
  it('adds the ASN to City answers, with the longer of the two networks as scope', async () => {
    const db = await GeoDatabase.open([fixture('city'), fixture('asn')])
    expect(db.lookup('198.51.100.1')).toEqual({
      country: 'DE',
      continent: 'EU',
      subdivision: 'DE-HE',
      location: FRANKFURT,
      asn: 64496,
      prefixLength: 25, // city /25 inside asn /24
    })
    expect(db.lookup('203.0.113.7')).toMatchObject({ country: 'JP', asn: 64497, prefixLength: 25 }) // asn /25
    // No ASN here, but the ASN file's empty /25 still bounds where this answer holds.
    expect(db.lookup('203.0.113.200')).toEqual({
      country: 'JP',
      continent: 'AS',
      subdivision: 'JP-13',
      location: TOKYO,
      prefixLength: 25,
    })
    expect(db.lookup('2001:db8:f0::1')).toMatchObject({ country: 'JP', subdivision: 'JP-27', asn: 64498 })
    expect(db.lookup('2001:db8:1::1')).toEqual({ asn: 64498, prefixLength: 41 })
  })

  it('takes country, subdivision and location from the most detailed record, whatever the order', async () => {
    for (const order of [
      ['country', 'city'],
      ['city', 'country'],
      ['iplocation-country', 'city', 'asn'],
    ]) {
      const db = await GeoDatabase.open(order.map(fixture))
      expect(db.lookup('198.51.100.200'), order.join('+')).toMatchObject({
        country: 'US',
        subdivision: 'US-CA',
        location: SAN_JOSE,
      })
    }
  })

  it('keeps one record for all geo fields, preferring the first file on equal detail', async () => {
    const other = tempDb('other-country.mmdb', [{ network: '198.51.100.0/24', data: { country_code: 'FR' } }], 'c')
    const first = await GeoDatabase.open([other, fixture('iplocation-country')])
    expect(first.lookup('198.51.100.1')).toMatchObject({ country: 'FR', continent: 'EU', location: centroid('FR') })
    const second = await GeoDatabase.open([fixture('iplocation-country'), other])
    expect(second.lookup('198.51.100.1')).toMatchObject({ country: 'DE', location: centroid('DE') })
  })

  it('describes every file for the logs, in the order given', async () => {
    const db = await GeoDatabase.open([fixture('city'), fixture('asn')])
    expect(db.describe().map((d) => [d.path, d.schema, d.asn])).toEqual([
      [fixture('city'), 'geoip2-city', false],
      [fixture('asn'), 'geolite2-asn', true],
    ])
  })
})

describe('GeoDatabase refusing files', () => {
  async function openError(paths: string[]): Promise<GeoDatabaseError> {
    const err = await GeoDatabase.open(paths).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(GeoDatabaseError)
    expect((err as GeoDatabaseError).code).toBe('GSLB_ERR_GEOIP')
    return err as GeoDatabaseError
  }

  it('names the file that provides none of the known schemas', async () => {
    const path = tempDb('weather.mmdb', [{ network: '198.51.100.0/24', data: { weather: 'sunny', temp: 21 } }])
    const err = await openError([fixture('city'), path])
    expect(err.file).toBe(path)
    expect(err.message).toContain(path)
    expect(err.message).toMatch(/none of the known schemas/)
    expect(err.message).toMatch(/record keys seen: temp, weather/)
  })

  it('names an empty, a garbage, a gzip-looking and a missing file', async () => {
    const empty = tempDb('empty.mmdb', [])
    expect((await openError([empty])).message).toMatch(/no records found/)
    const garbage = join(dir, 'garbage.mmdb')
    writeFileSync(garbage, Buffer.from('this is not a database at all '.repeat(50)))
    expect((await openError([garbage])).message).toMatch(new RegExp(`^${garbage}: not a MaxMind DB file`))
    const gz = join(dir, 'GeoLite2-City.tar.gz')
    writeFileSync(gz, Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0]))
    expect((await openError([gz])).file).toBe(gz)
    const missing = join(dir, 'missing.mmdb')
    expect((await openError([missing])).message).toMatch(new RegExp(`^${missing}: cannot read`))
  })

  it('refuses a truncated file instead of failing later in lookups', async () => {
    const whole = readFileSync(fixture('city'))
    const path = join(dir, 'truncated.mmdb')
    // Keep the metadata (at the end) but cut the data section out of the middle.
    writeFileSync(path, Buffer.concat([whole.subarray(0, 300), whole.subarray(whole.length - 300)]))
    await openError([path])
  })
})

describe('GeoDatabase live reload', () => {
  const slowTimeout = { timeout: 15_000 }

  function waitFor<T>(register: (resolve: (v: T) => void) => void, ms = 10_000): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('timed out waiting for the watcher')), ms)
      register((v) => {
        clearTimeout(t)
        resolve(v)
      })
    })
  }

  it('swaps in a changed file and keeps the old one when the new file is garbage', slowTimeout, async () => {
    const sub = mkdtempSync(join(dir, 'watch-'))
    const path = join(sub, 'GeoIP2-City.mmdb')
    writeFileSync(path, readFileSync(fixture('city')))
    const log = recorder()
    const db = await GeoDatabase.open([path, fixture('asn')], log)
    expect(db.lookup('198.51.100.1')).toMatchObject({ country: 'DE', asn: 64496 })

    let changed: (info: GeoSourceInfo) => void = () => {}
    let refused: (err: GeoDatabaseError) => void = () => {}
    db.watch((info) => changed(info), { debounceMs: 50, onError: (err) => refused(err) })

    // geoipupdate style: write elsewhere, then rename over the watched file.
    const next = join(sub, 'GeoIP2-City.mmdb.tmp')
    writeFileSync(
      next,
      writeMmdb([{ network: '198.51.100.0/24', data: { country: { iso_code: 'FR' }, continent: { code: 'EU' } } }], {
        databaseType: 'GeoIP2-Country',
      }),
    )
    const swapped = waitFor<GeoSourceInfo>((r) => {
      changed = r
    })
    renameSync(next, path)
    const info = await swapped
    expect(info).toMatchObject({ path, schema: 'geoip2-country' })
    expect(db.lookup('198.51.100.1')).toEqual({
      country: 'FR',
      continent: 'EU',
      asn: 64496,
      location: centroid('FR'),
      prefixLength: 24,
    })
    expect(db.describe().map((d) => d.schema)).toEqual(['geoip2-country', 'geolite2-asn'])

    // In-place garbage: refused, logged, and the FR database keeps serving.
    const failed = waitFor<GeoDatabaseError>((r) => {
      refused = r
    })
    writeFileSync(path, 'garbage, truncated download')
    const err = await failed
    expect(err.file).toBe(path)
    expect(db.lookup('198.51.100.1')?.country).toBe('FR')
    expect(log.lines.some((l) => l.level === 'warn' && /reload refused/.test(l.msg))).toBe(true)

    // After close() nothing changes any more.
    db.close()
    writeFileSync(path, readFileSync(fixture('city')))
    await new Promise((r) => setTimeout(r, 300))
    expect(db.lookup('198.51.100.1')?.country).toBe('FR')
  })
})

describe('embedded default database', () => {
  it('opens when no file is given and maps well-known addresses (data only, no traffic)', async () => {
    const db = await GeoDatabase.open([])
    const [info] = db.describe()
    expect(info!.path).toMatch(/geo-whois-asn-country\.mmdb$/)
    expect(info!.schema).toBe('iplocation-country')
    expect(db.lookup('8.8.8.8')).toMatchObject({ country: 'US', continent: 'NA', location: centroid('US') })
    expect(db.lookup('2001:4860:4860::8888')).toMatchObject({ country: 'US', continent: 'NA' })
    expect(db.lookup('193.0.0.1')).toMatchObject({ country: 'NL', continent: 'EU' }) // RIPE NCC
    // The file has no ::ffff:0:0/96 alias; mapped addresses still resolve, scope in IPv6 terms.
    const mapped = db.lookup('::ffff:8.8.8.8')!
    expect(mapped.country).toBe('US')
    expect(mapped.prefixLength).toBe(96 + db.lookup('8.8.8.8')!.prefixLength)
    expect(db.lookup('10.0.0.1')?.country).toBeUndefined()
  })
})

describe('country tables', () => {
  // ISO 3166-1 alpha-2 as ICU knows it, minus its reserved and withdrawn codes; plus XK.
  const NOT_COUNTRIES = new Set(
    'AC AN BU CP CQ CS DD DG DY EA EU EZ FX HV IC NH QO RH SU TA TP UK UN VD XA XB YD YU ZR ZZ'.split(' '),
  )
  const names = new Intl.DisplayNames(['en'], { type: 'region' })
  const iso: string[] = []
  for (let a = 65; a <= 90; a++) {
    for (let b = 65; b <= 90; b++) {
      const code = String.fromCharCode(a, b)
      let name: string | undefined
      try {
        name = names.of(code)
      } catch {
        name = undefined
      }
      if (name !== undefined && name !== code && !NOT_COUNTRIES.has(code)) iso.push(code)
    }
  }

  it('cover every country code exactly once', () => {
    expect(iso).toContain('XK')
    expect(iso.length).toBe(250)
    expect(CONTINENT_COUNTRY_CODES).toEqual(iso)
    expect(CENTROID_COUNTRY_CODES).toEqual(iso)
  })

  it('assign continents as GeoNames and MaxMind do', () => {
    const expected: Record<string, string> = {
      DE: 'EU',
      RU: 'EU',
      CY: 'EU',
      TR: 'AS',
      GE: 'AS',
      AM: 'AS',
      PA: 'NA',
      MX: 'NA',
      GL: 'NA',
      TL: 'OC',
      AU: 'OC',
      EG: 'AF',
      ZA: 'AF',
      BR: 'SA',
      FK: 'SA',
      AQ: 'AN',
      TF: 'AN',
      JP: 'AS',
    }
    for (const [cc, continent] of Object.entries(expected)) expect(continentOf(cc), cc).toBe(continent)
    expect(continentOf('de')).toBe('EU')
    expect(continentOf('ZZ')).toBeUndefined()
    const used = new Set(CONTINENT_COUNTRY_CODES.map((cc) => continentOf(cc)))
    expect([...used].sort()).toEqual([...CONTINENT_CODES])
  })

  it('place centroids on the globe and inside the right continent roughly', () => {
    for (const cc of CENTROID_COUNTRY_CODES) {
      const p = centroidOf(cc)!
      expect(Math.abs(p.lat), cc).toBeLessThanOrEqual(90)
      expect(Math.abs(p.lon), cc).toBeLessThanOrEqual(180)
    }
    // A few sanity anchors (Factbook figures).
    expect(centroidOf('DE')).toEqual({ lat: 51, lon: 9 })
    expect(centroidOf('us')).toEqual({ lat: 38, lon: -97 })
    expect(centroidOf('AU')!.lat).toBeLessThan(0)
    expect(centroidOf('BR')!.lon).toBeLessThan(0)
    expect(centroidOf('XX')).toBeUndefined()
  })
})

describe('test fixtures', () => {
  it('match what geoip/tools/build-test-dbs.ts builds (rerun it after changing the table)', () => {
    for (const [name, bytes] of buildTestDatabases()) {
      expect(readFileSync(join(FIXTURE_DIR, name)).equals(bytes), name).toBe(true)
    }
  })
})
