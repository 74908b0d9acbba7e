/**
 * @module probe/types
 * Health checks as the zone files define them and as the prober runs them. A check only reports
 * a raw result; `probe/hysteresis` alone turns results into UP/DOWN (gdnsd's split between
 * monitors and the core).
 */

interface CheckCommon {
  /** Name in the zone file's `checks:` map. */
  readonly name: string
  /** Milliseconds between probes of one target. */
  readonly intervalMs: number
  /** Each interval is stretched or shrunk by up to this fraction, so probes do not march in step. */
  readonly jitter: number
  readonly timeoutMs: number
  /** Consecutive successes that bring a DOWN target UP (HAProxy `rise`). */
  readonly rise: number
  /** Consecutive failures that take an UP target DOWN (HAProxy `fall`). */
  readonly fall: number
  /**
   * What an endpoint counts as before its first verdict (restart safety): `up` by default, so a
   * restart never takes anything out; `down` for endpoints that must prove themselves first.
   */
  readonly unknownIs?: 'up' | 'down' | undefined
  /** Probe this address instead of the endpoint's (e.g. a health port on loopback). */
  readonly address: string | undefined
  readonly port: number | undefined
}

export interface HttpCheck extends CheckCommon {
  readonly kind: 'http' | 'https'
  readonly method: 'GET' | 'HEAD' | 'POST'
  readonly path: string
  /** Host header; default: the target address. */
  readonly host: string | undefined
  /** TLS server name; default: `host`. */
  readonly sni: string | undefined
  /** Path of a PEM CA bundle to verify against (instead of the system store). */
  readonly ca: string | undefined
  /** Skip certificate verification (off by default). */
  readonly insecure: boolean
  /** Accepted status codes; default 200-399. */
  readonly statuses: readonly number[] | undefined
  readonly bodyContains: string | undefined
  readonly bodyMatches: RegExp | undefined
  /** Where an endpoint reports its load (0..1 or a percentage), for load-aware weighting. */
  readonly load: { readonly header: string } | { readonly json: string } | undefined
}

export interface TcpCheck extends CheckCommon {
  readonly kind: 'tcp'
}

export interface DnsCheck extends CheckCommon {
  readonly kind: 'dns'
  readonly query: string
  readonly qtype: string
  /** Expected rcode (default NOERROR). */
  readonly rcode: string
  /** When set, at least one answer must have this rdata (e.g. an address). */
  readonly answer: string | undefined
  readonly transport: 'udp' | 'tcp'
}

export type CheckConfig = HttpCheck | TcpCheck | DnsCheck

/** What one probe of one target found. */
export interface CheckResult {
  readonly ok: boolean
  /** Round-trip time of a successful probe, in ms. */
  readonly latencyMs: number | undefined
  /** Why it failed, short and stable enough for logs and `gslb status`. */
  readonly error: string | undefined
  /** Reported load, 0..1, when the check reads one. */
  readonly load: number | undefined
}

/** Something to probe: one endpoint of one zone with its check. */
export interface ProbeTarget {
  /** `<zone apex>|<endpoint name>`: stable across reloads, used for sharding and state keys. */
  readonly id: string
  readonly zone: string
  readonly endpoint: string
  /** Address actually probed: the check's `address` or the endpoint's own address. */
  readonly address: string
  readonly check: CheckConfig
}
