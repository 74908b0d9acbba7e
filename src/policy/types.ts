/**
 * @module policy/types
 * The vocabulary of GSLB decisions. A service owns pools of endpoints; a policy chain is a list of
 * steps, each a function from candidate endpoints to a subset of them. Steps read the client, its
 * geo data, health and randomness only through the context, so each can be tested alone with a
 * hand-made context (and a seeded random source).
 */

import type { Name } from '../dns/name.ts'

export interface GeoPoint {
  readonly lat: number
  readonly lon: number
}

export interface Endpoint {
  /** Position in the service's endpoint list: stable within one zone load (hashing, caches). */
  readonly index: number
  /** Unique within the zone; how operators and the health state refer to it. */
  readonly name: string
  readonly pool: Pool
  /** IPv4 address answered for A, if any. */
  readonly address4: string | undefined
  /** IPv6 address answered for AAAA, if any. */
  readonly address6: string | undefined
  /**
   * `address4` and `address6` as rdata (4 and 16 bytes), read when an answer is built (a decision
   * cache miss): kept with the endpoint rather than in a per-service map, which cost two Maps and a
   * Buffer per endpoint and service. May be made on first read (see config/gslb-file).
   */
  readonly rdata4: Buffer | undefined
  readonly rdata6: Buffer | undefined
  /** Target name answered as CNAME instead of addresses (e.g. a CDN hostname). */
  readonly cname: Name | undefined
  /** Configured weight, 0..1000. 0 means only when nothing else is up. */
  readonly weight: number
  /**
   * A frozen one-element list of this endpoint, made once: what a step that picks one endpoint per
   * query returns (see `alone` in policy/common). Optional so plain endpoint objects (tests,
   * `gslb explain` fixtures) need not carry it; zone files' endpoints do.
   */
  readonly alone?: readonly Endpoint[]
}

export interface Pool {
  readonly index: number
  readonly name: string
  /** Region label (e.g. a probing vantage or a data-centre region). */
  readonly region: string | undefined
  readonly location: GeoPoint | undefined
  /** Relative capacity, used to spread clients when their target pool is down. */
  readonly capacity: number
  /**
   * At most this fraction (0..1] of a failed region's clients lands on this pool when spreading;
   * undefined = no cap. What a cap holds back goes to the other pools in proportion to capacity.
   */
  readonly spillCap?: number | undefined
  /** A pool with fewer healthy members than this counts as down (gdnsd up_thresh). */
  readonly upThreshold: number
  readonly endpoints: readonly Endpoint[]
  /** TTL for answers from this pool, overriding the service TTL. */
  readonly ttl: number | undefined
}

/** What the geo database says about a client. Fields absent when the database does not know. */
export interface GeoInfo {
  readonly country?: string | undefined
  readonly continent?: string | undefined
  /** ISO 3166-2 subdivision, e.g. "US-CA". */
  readonly subdivision?: string | undefined
  readonly asn?: number | undefined
  readonly location?: GeoPoint | undefined
  /** Prefix length of the database network holding the client (for the ECS scope). */
  readonly prefixLength: number
}

export interface ClientInfo {
  /** Client address as text: the ECS address when the query had ECS, else the packet source. */
  readonly address: string
  readonly family: 4 | 6
  /** Bits of `address` the client vouched for: the ECS source prefix, or 32 / 128. */
  readonly sourcePrefix: number
  /** Address bytes (4 or 16), zero beyond `sourcePrefix`. */
  readonly bytes: Uint8Array
}

/** The health inputs of a decision; the probing side fills it, policies only read it. */
export interface HealthView {
  /** Up after overrides and pushed state; an endpoint never checked counts as up. */
  up(e: Endpoint): boolean
  /** Effective weight: configured weight with operator override, drain (0) and slow start applied. */
  weight(e: Endpoint): number
  /** True while an endpoint that came back is ramping up (slow start): answers use the degraded TTL. */
  recovering(e: Endpoint): boolean
  /** Smoothed round-trip time in ms from a vantage region to a pool, when measured. */
  rtt(pool: Pool, vantage: string): number | undefined
}

/** Decision trace for `gslb explain`; absent on the normal query path. */
export interface TraceSink {
  note(text: string): void
}

export interface PolicyContext {
  readonly client: ClientInfo
  /** Geo data for the client, looked up on first use and cached for the query. */
  geo(): GeoInfo | undefined
  readonly health: HealthView
  /** Uniform in [0, 1). Seedable in tests. */
  random(): number
  /** Records that the decision depended on the first `bits` bits of the client address (ECS scope). */
  scope(bits: number): void
  readonly trace: TraceSink | undefined
}

/**
 * One step of a chain. Must return a subset of `candidates`, in any order, without duplicates, as
 * `candidates` itself or a new array, never a scratch array it fills again on the next call: the
 * service caches results by the returned array's identity and treats them as immutable.
 */
export type PolicyStep = (candidates: readonly Endpoint[], ctx: PolicyContext) => readonly Endpoint[]

/** A named step, as the chain runner and `gslb explain` see it. */
export interface NamedStep {
  readonly name: string
  readonly run: PolicyStep
  /**
   * The output depends only on the candidates, the health view and the client bits the step
   * reports through `ctx.scope` (no randomness, no per-query state). A chain's leading pure steps
   * are run once per client prefix and health view, and their result is reused (see
   * policy/service); a step that reads the client without reporting a scope must not say this.
   */
  readonly pure?: boolean
  /**
   * For a step whose output is in random order: the same choice with the order left alone. Used
   * when the step ends the chain, so nothing downstream cares about order: the service answers
   * from one canonical template and shuffles the records of the rendered response instead (BIND's
   * rrset-order random), so a new order costs no template.
   */
  readonly unordered?: PolicyStep
  /**
   * The step draws one up candidate at random with probability weight / total of effective
   * weights (all alike when none has weight), passing every candidate on when none is up: what
   * `weighted` random by endpoint does. Right after a chain's pure steps and last, the query path
   * runs it as a draw over decisions made once per candidate list and health view (policy/service).
   */
  readonly draw?: true
}

/** Match of a geo rule; the most specific kind wins: cidr > asn > subdivision > country > continent. */
export type GeoMatch =
  | { readonly kind: 'cidr'; readonly family: 4 | 6; readonly network: Uint8Array; readonly prefix: number }
  | { readonly kind: 'asn'; readonly asn: number }
  | { readonly kind: 'subdivision'; readonly code: string }
  | { readonly kind: 'country'; readonly code: string }
  | { readonly kind: 'continent'; readonly code: string }

export interface GeoRule {
  readonly match: GeoMatch
  /** Pools in order of preference: the first that is up answers. */
  readonly pools: readonly Pool[]
}

/** Configuration of each step kind, validated at zone load. */
export type StepConfig =
  | { readonly kind: 'weighted'; readonly mode: 'random' | 'smooth'; readonly by: 'endpoint' | 'pool' }
  | {
      readonly kind: 'geo'
      readonly rules: readonly GeoRule[]
      readonly fallback: readonly Pool[]
      readonly spread: boolean
    }
  | { readonly kind: 'proximity'; readonly bias: ReadonlyMap<string, number>; readonly spread: boolean }
  | {
      readonly kind: 'latency'
      /**
       * Vantage region per country code ("DE") and per continent code ("EU"); a country entry
       * wins. Two maps because AF, AS, NA and SA are both countries and continents.
       */
      readonly countryVantages: ReadonlyMap<string, string>
      readonly continentVantages: ReadonlyMap<string, string>
      readonly defaultVantage: string
      /** Static RTT (ms) per vantage then pool name, used before any measurement exists. */
      readonly table: ReadonlyMap<string, ReadonlyMap<string, number>>
      /** A challenger must be faster by this fraction (0.2 = 20%) to replace the current best. */
      readonly hysteresis: number
    }
  | { readonly kind: 'failover'; readonly groups: readonly (readonly Pool[])[] }
  | { readonly kind: 'multivalue'; readonly count: number; readonly shuffle: boolean }
  | { readonly kind: 'sticky'; readonly prefix4: number; readonly prefix6: number }
