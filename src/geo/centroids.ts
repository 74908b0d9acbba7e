/**
 * @module geo/centroids
 * Approximate centre of every country, used as the client location when a database gives only a
 * country (ip-location-db country files, GeoIP2 Country, City records without a location).
 * Figures are the CIA World Factbook "geographic coordinates" (US Government work, public
 * domain), the same set behind the widely copied "average latitude and longitude for countries"
 * list, rounded to 0.1 degree: good enough to pick the nearest data centre, not to draw maps.
 * Codes missing from that old list (AX BL BQ CW MF SS SX XK) were filled in from the Factbook.
 */

import type { GeoPoint } from '../policy/types.ts'

// "CC lat lon" triples; one string keeps 250 entries readable and cheap to parse once at load.
const TABLE = `
AD 42.5 1.6|AE 24 54|AF 33 65|AG 17.1 -61.8|AI 18.3 -63.2|AL 41 20|AM 40 45|AO -12.5 18.5|AQ -90 0|AR -34 -64
AS -14.3 -170|AT 47.3 13.3|AU -27 133|AW 12.5 -70|AX 60.1 19.9|AZ 40.5 47.5
BA 44 18|BB 13.2 -59.5|BD 24 90|BE 50.8 4|BF 13 -2|BG 43 25|BH 26 50.6|BI -3.5 30|BJ 9.5 2.3|BL 17.9 -62.8
BM 32.3 -64.8|BN 4.5 114.7|BO -17 -65|BQ 12.2 -68.3|BR -10 -55|BS 24.3 -76|BT 27.5 90.5|BV -54.4 3.4|BW -22 24
BY 53 28|BZ 17.3 -88.8
CA 60 -95|CC -12.5 96.8|CD 0 25|CF 7 21|CG -1 15|CH 47 8|CI 8 -5|CK -21.2 -159.8|CL -30 -71|CM 6 12|CN 35 105
CO 4 -72|CR 10 -84|CU 21.5 -80|CV 16 -24|CW 12.2 -69|CX -10.5 105.7|CY 35 33|CZ 49.8 15.5
DE 51 9|DJ 11.5 43|DK 56 10|DM 15.4 -61.3|DO 19 -70.7|DZ 28 3
EC -2 -77.5|EE 59 26|EG 27 30|EH 24.5 -13|ER 15 39|ES 40 -4|ET 8 38
FI 64 26|FJ -18 175|FK -51.8 -59|FM 6.9 158.3|FO 62 -7|FR 46 2
GA -1 11.8|GB 54 -2|GD 12.1 -61.7|GE 42 43.5|GF 4 -53|GG 49.5 -2.6|GH 8 -2|GI 36.2 -5.4|GL 72 -40|GM 13.5 -16.6
GN 11 -10|GP 16.3 -61.6|GQ 2 10|GR 39 22|GS -54.5 -37|GT 15.5 -90.3|GU 13.5 144.8|GW 12 -15|GY 5 -59
HK 22.3 114.2|HM -53.1 72.5|HN 15 -86.5|HR 45.2 15.5|HT 19 -72.4|HU 47 20
ID -5 120|IE 53 -8|IL 31.5 34.8|IM 54.2 -4.6|IN 20 77|IO -6 71.5|IQ 33 44|IR 32 53|IS 65 -18|IT 42.8 12.8
JE 49.2 -2.1|JM 18.3 -77.5|JO 31 36|JP 36 138
KE 1 38|KG 41 75|KH 13 105|KI 1.4 173|KM -12.2 44.3|KN 17.3 -62.8|KP 40 127|KR 37 127.5|KW 29.3 47.7|KY 19.5 -80.5
KZ 48 68
LA 18 105|LB 33.8 35.8|LC 13.9 -61.1|LI 47.2 9.5|LK 7 81|LR 6.5 -9.5|LS -29.5 28.5|LT 56 24|LU 49.8 6.2|LV 57 25
LY 25 17
MA 32 -5|MC 43.7 7.4|MD 47 29|ME 42 19|MF 18.1 -63|MG -20 47|MH 9 168|MK 41.8 22|ML 17 -4|MM 22 98|MN 46 105
MO 22.2 113.6|MP 15.2 145.8|MQ 14.7 -61|MR 20 -12|MS 16.8 -62.2|MT 35.8 14.6|MU -20.3 57.6|MV 3.3 73|MW -13.5 34
MX 23 -102|MY 2.5 112.5|MZ -18.3 35
NA -22 17|NC -21.5 165.5|NE 16 8|NF -29 168|NG 10 8|NI 13 -85|NL 52.5 5.8|NO 62 10|NP 28 84|NR -0.5 166.9
NU -19 -169.9|NZ -41 174
OM 21 57
PA 9 -80|PE -10 -76|PF -15 -140|PG -6 147|PH 13 122|PK 30 70|PL 52 20|PM 46.8 -56.3|PN -24.7 -127.4|PR 18.3 -66.5
PS 32 35.3|PT 39.5 -8|PW 7.5 134.5|PY -23 -58
QA 25.5 51.3
RE -21.1 55.6|RO 46 25|RS 44 21|RU 60 100|RW -2 30
SA 25 45|SB -8 159|SC -4.6 55.7|SD 15 30|SE 62 15|SG 1.4 103.8|SH -15.9 -5.7|SI 46 15|SJ 78 20|SK 48.7 19.5
SL 8.5 -11.5|SM 43.8 12.4|SN 14 -14|SO 10 49|SR 4 -56|SS 8 30|ST 1 7|SV 13.8 -88.9|SX 18.1 -63.1|SY 35 38
SZ -26.5 31.5
TC 21.8 -71.6|TD 15 19|TF -43 67|TG 8 1.2|TH 15 100|TJ 39 71|TK -9 -172|TL -8.6 125.5|TM 40 60|TN 34 9
TO -20 -175|TR 39 35|TT 11 -61|TV -8 178|TW 23.5 121|TZ -6 35
UA 49 32|UG 1 32|UM 19.3 166.6|US 38 -97|UY -33 -56|UZ 41 64
VA 41.9 12.5|VC 13.3 -61.2|VE 8 -66|VG 18.5 -64.5|VI 18.3 -64.8|VN 16 106|VU -16 167
WF -13.3 -176.2|WS -13.6 -172.3
XK 42.6 21
YE 15 48|YT -12.8 45.2
ZA -29 24|ZM -15 30|ZW -20 30
`

const CENTROID = new Map<string, GeoPoint>()
for (const entry of TABLE.split(/[|\n]/)) {
  const [code, lat, lon] = entry.trim().split(' ')
  if (code === undefined || code === '') continue
  // Frozen and shared: lookups hand out the same object, so the query path allocates nothing.
  CENTROID.set(code, Object.freeze({ lat: Number(lat), lon: Number(lon) }))
}

/** Every country code with a centroid (ISO 3166-1 alpha-2 plus XK), sorted. */
export const CENTROID_COUNTRY_CODES: readonly string[] = Object.freeze([...CENTROID.keys()].sort())

/** Approximate centre of a country (either case); undefined for unknown codes. */
export function centroidOf(country: string): GeoPoint | undefined {
  return CENTROID.get(country) ?? CENTROID.get(country.toUpperCase())
}
