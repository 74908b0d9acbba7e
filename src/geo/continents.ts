/**
 * @module geo/continents
 * Country -> continent, for databases that give only a country code (ip-location-db) and for
 * geo rules written per continent. Assignments follow GeoNames countryInfo.txt, which is what
 * MaxMind's GeoIP2 `continent.code` uses, so answers agree whichever database is loaded
 * (e.g. RU, CY -> EU; TR, GE, AM, AZ -> AS; PA -> NA; TL -> OC; the southern islands -> AN).
 */

export type ContinentCode = 'AF' | 'AN' | 'AS' | 'EU' | 'NA' | 'OC' | 'SA'

export const CONTINENT_CODES: readonly ContinentCode[] = Object.freeze(['AF', 'AN', 'AS', 'EU', 'NA', 'OC', 'SA'])

// One line per continent, codes sorted; XK (Kosovo) is user-assigned but MaxMind and GeoNames use it.
const BY_CONTINENT: Readonly<Record<ContinentCode, string>> = {
  AF:
    'AO BF BI BJ BW CD CF CG CI CM CV DJ DZ EG EH ER ET GA GH GM GN GQ GW KE KM LR LS LY MA MG ML MR MU MW MZ ' +
    'NA NE NG RE RW SC SD SH SL SN SO SS ST SZ TD TG TN TZ UG YT ZA ZM ZW',
  AN: 'AQ BV GS HM TF',
  AS:
    'AE AF AM AZ BD BH BN BT CC CN GE HK ID IL IN IO IQ IR JO JP KG KH KP KR KW KZ LA LB LK MM MN MO MV MY NP ' +
    'OM PH PK PS QA SA SG SY TH TJ TM TR TW UZ VN YE',
  EU:
    'AD AL AT AX BA BE BG BY CH CY CZ DE DK EE ES FI FO FR GB GG GI GR HR HU IE IM IS IT JE LI LT LU LV MC MD ' +
    'ME MK MT NL NO PL PT RO RS RU SE SI SJ SK SM UA VA XK',
  NA:
    'AG AI AW BB BL BM BQ BS BZ CA CR CU CW DM DO GD GL GP GT HN HT JM KN KY LC MF MQ MS MX NI PA PM PR SV SX ' +
    'TC TT US VC VG VI',
  OC: 'AS AU CK CX FJ FM GU KI MH MP NC NF NR NU NZ PF PG PN PW SB TK TL TO TV UM VU WF WS',
  SA: 'AR BO BR CL CO EC FK GF GY PE PY SR UY VE',
}

const CONTINENT = new Map<string, ContinentCode>()
for (const continent of CONTINENT_CODES) {
  for (const country of BY_CONTINENT[continent].split(' ')) CONTINENT.set(country, continent)
}

/** Every country code the table knows (ISO 3166-1 alpha-2 plus XK), sorted. */
export const CONTINENT_COUNTRY_CODES: readonly string[] = Object.freeze([...CONTINENT.keys()].sort())

/** Continent of an ISO 3166-1 alpha-2 code (either case); undefined for unknown codes. */
export function continentOf(country: string): ContinentCode | undefined {
  return CONTINENT.get(country) ?? CONTINENT.get(country.toUpperCase())
}

export function isContinentCode(code: string): code is ContinentCode {
  return (CONTINENT_CODES as readonly string[]).includes(code)
}
