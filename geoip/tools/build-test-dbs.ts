/**
 * @module geoip/tools/build-test-dbs
 * Builds the tiny committed test databases in test/fixtures/geo/ from one fixed table, in each
 * schema the reader understands. Run `node geoip/tools/build-test-dbs.ts` after changing the
 * table, then update test/fixtures/geo/README.md. Output is byte-for-byte reproducible (fixed
 * build epoch), and a unit test checks the committed files match this table.
 */

import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { double, type MmdbEntry, type MmdbMap, type MmdbValue, uint16, uint32, writeMmdb } from './mmdb-writer.ts'

/** One row of the fixture table; absent fields are absent from the City/ip-location-db city records. */
export interface FixtureRow {
  readonly network: string
  readonly country: string
  readonly countryName: string
  readonly continent: string
  readonly continentName: string
  /** ISO 3166-2 code after the dash, e.g. "HE" for DE-HE. */
  readonly subdivision?: { readonly code: string; readonly name: string }
  readonly city?: string
  readonly location?: { readonly lat: number; readonly lon: number }
}

export interface AsnRow {
  readonly network: string
  readonly asn: number
  readonly org: string
}

/** Documentation (RFC 5737 / 3849) and private (RFC 1918 / 6598) ranges, each somewhere else. */
export const GEO_ROWS: readonly FixtureRow[] = [
  {
    network: '198.51.100.0/25',
    country: 'DE',
    countryName: 'Germany',
    continent: 'EU',
    continentName: 'Europe',
    subdivision: { code: 'HE', name: 'Hesse' },
    city: 'Frankfurt am Main',
    location: { lat: 50.1155, lon: 8.6842 },
  },
  {
    network: '198.51.100.128/25',
    country: 'US',
    countryName: 'United States',
    continent: 'NA',
    continentName: 'North America',
    subdivision: { code: 'CA', name: 'California' },
    city: 'San Jose',
    location: { lat: 37.3394, lon: -121.895 },
  },
  {
    network: '203.0.113.0/24',
    country: 'JP',
    countryName: 'Japan',
    continent: 'AS',
    continentName: 'Asia',
    subdivision: { code: '13', name: 'Tokyo' },
    city: 'Tokyo',
    location: { lat: 35.6895, lon: 139.6917 },
  },
  // Country-level only, as GeoIP2 City has for many networks: readers fall back to the centroid.
  { network: '192.0.2.0/24', country: 'BR', countryName: 'Brazil', continent: 'SA', continentName: 'South America' },
  {
    network: '10.0.0.0/8',
    country: 'AU',
    countryName: 'Australia',
    continent: 'OC',
    continentName: 'Oceania',
    subdivision: { code: 'NSW', name: 'New South Wales' },
    city: 'Sydney',
    location: { lat: -33.8688, lon: 151.2093 },
  },
  {
    network: '100.64.0.0/10',
    country: 'ZA',
    countryName: 'South Africa',
    continent: 'AF',
    continentName: 'Africa',
    subdivision: { code: 'GP', name: 'Gauteng' },
    city: 'Johannesburg',
    location: { lat: -26.2041, lon: 28.0473 },
  },
  {
    network: '2001:db8:e0::/48',
    country: 'DE',
    countryName: 'Germany',
    continent: 'EU',
    continentName: 'Europe',
    subdivision: { code: 'BE', name: 'Berlin' },
    city: 'Berlin',
    location: { lat: 52.5244, lon: 13.4105 },
  },
  {
    network: '2001:db8:a0::/48',
    country: 'US',
    countryName: 'United States',
    continent: 'NA',
    continentName: 'North America',
    subdivision: { code: 'VA', name: 'Virginia' },
    city: 'Ashburn',
    location: { lat: 39.0437, lon: -77.4875 },
  },
  {
    network: '2001:db8:f0::/48',
    country: 'JP',
    countryName: 'Japan',
    continent: 'AS',
    continentName: 'Asia',
    subdivision: { code: '27', name: 'Osaka' },
    city: 'Osaka',
    location: { lat: 34.6937, lon: 135.5022 },
  },
]

/** Documentation ASNs (RFC 5398) plus one 32-bit private ASN (RFC 6996). Prefixes differ on purpose. */
export const ASN_ROWS: readonly AsnRow[] = [
  { network: '198.51.100.0/24', asn: 64496, org: 'Example Transit DE-US' },
  { network: '203.0.113.0/25', asn: 64497, org: 'Example Tokyo Access' },
  { network: '10.0.0.0/8', asn: 4200000000, org: 'Example Private Network' },
  { network: '2001:db8::/32', asn: 64498, org: 'Example IPv6 Backbone' },
]

/** 2026-01-01T00:00:00Z: fixed so the files do not change on every rebuild. */
const BUILD_EPOCH = 1767225600

// Stable made-up GeoNames-like ids: readers must not depend on them, but real files have them.
const geonameId = (code: string): MmdbValue => uint32(6_000_000 + code.charCodeAt(0) * 256 + code.charCodeAt(1))

function continent(r: FixtureRow): MmdbMap {
  return { code: r.continent, geoname_id: geonameId(r.continent), names: { en: r.continentName } }
}

function country(r: FixtureRow): MmdbMap {
  const base: MmdbMap = { geoname_id: geonameId(r.country), iso_code: r.country, names: { en: r.countryName } }
  return r.continent === 'EU' ? { ...base, is_in_european_union: true } : base
}

function cityRecord(r: FixtureRow): MmdbMap {
  const rec: Record<string, MmdbValue> = {
    continent: continent(r),
    country: country(r),
    registered_country: country(r),
  }
  if (r.city !== undefined) rec['city'] = { geoname_id: uint32(7_000_000), names: { en: r.city } }
  if (r.subdivision !== undefined) {
    rec['subdivisions'] = [
      { geoname_id: uint32(8_000_000), iso_code: r.subdivision.code, names: { en: r.subdivision.name } },
    ]
  }
  if (r.location !== undefined) {
    rec['location'] = {
      accuracy_radius: uint16(20),
      latitude: double(r.location.lat),
      longitude: double(r.location.lon),
    }
  }
  return rec
}

function countryRecord(r: FixtureRow): MmdbMap {
  return { continent: continent(r), country: country(r), registered_country: country(r) }
}

function iplCityRecord(r: FixtureRow): MmdbMap {
  const rec: Record<string, MmdbValue> = { country_code: r.country }
  if (r.subdivision !== undefined) rec['state1'] = r.subdivision.name
  if (r.city !== undefined) rec['city'] = r.city
  if (r.location !== undefined) {
    rec['latitude'] = double(r.location.lat)
    rec['longitude'] = double(r.location.lon)
  }
  return rec
}

const rows = (f: (r: FixtureRow) => MmdbMap): MmdbEntry[] => GEO_ROWS.map((r) => ({ network: r.network, data: f(r) }))

const description = (what: string): Record<string, string> => ({ en: `GSLB test fixture: ${what}` })

/** File name -> contents of every fixture database. */
export function buildTestDatabases(): Map<string, Buffer> {
  const maxmind = { languages: ['en'], buildEpoch: BUILD_EPOCH } as const
  const iplocation = { languages: [], buildEpoch: BUILD_EPOCH } as const
  return new Map([
    [
      'test-city.mmdb',
      writeMmdb(rows(cityRecord), { ...maxmind, databaseType: 'GeoIP2-City', description: description('GeoIP2-City') }),
    ],
    [
      'test-country.mmdb',
      writeMmdb(rows(countryRecord), {
        ...maxmind,
        databaseType: 'GeoLite2-Country',
        description: description('GeoLite2-Country'),
      }),
    ],
    [
      'test-asn.mmdb',
      writeMmdb(
        ASN_ROWS.map((r) => ({
          network: r.network,
          data: { autonomous_system_number: uint32(r.asn), autonomous_system_organization: r.org },
        })),
        { ...maxmind, databaseType: 'GeoLite2-ASN', description: description('GeoLite2-ASN') },
      ),
    ],
    [
      'test-iplocation-country.mmdb',
      writeMmdb(
        rows((r) => ({ country_code: r.country })),
        { ...iplocation, databaseType: 'country ipvAll', description: description('ip-location-db country') },
      ),
    ],
    [
      'test-iplocation-city.mmdb',
      writeMmdb(rows(iplCityRecord), {
        ...iplocation,
        databaseType: 'city ipvAll',
        description: description('ip-location-db city'),
      }),
    ],
  ])
}

export const FIXTURE_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'fixtures', 'geo')

if (import.meta.main) {
  mkdirSync(FIXTURE_DIR, { recursive: true })
  for (const [name, bytes] of buildTestDatabases()) {
    writeFileSync(join(FIXTURE_DIR, name), bytes)
    console.log(`${join(FIXTURE_DIR, name)}: ${bytes.length} bytes`)
  }
}
