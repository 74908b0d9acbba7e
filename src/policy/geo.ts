/**
 * @module policy/geo
 * Answers from the pools a geo rule assigns to the client (gdnsd geoip maps, NS1 geotarget
 * filters, Route 53 geolocation records).
 *
 * Matching, most specific first: CIDR (longest prefix, against the client address bytes) > ASN >
 * subdivision > country > continent > the fallback pools. CIDR rules are checked first and
 * `ctx.geo()` is only called when a non-CIDR rule could still decide, so a CIDR hit costs no geo
 * lookup. Codes are compared upper-case (ISO 3166 style, as the geo layer reports them).
 *
 * The matched rule's pools are tried in order; the first up pool (at least `upThreshold` members
 * up) answers with its up endpoints. Pools absent from the candidates are skipped. When none is up:
 * - `spread: true`: a capacity-weighted pick among the up candidate pools by rendezvous hashing of
 *   the client's /24 (IPv4) or /56 (IPv6), so clients of a failed region spread over the others by
 *   capacity and each keeps its pool while that pool stays up;
 * - `spread: false`: the fallback pools in order, then any up pool in candidate order.
 * When no pool reaches its threshold, the same choice is made again counting a pool with any up
 * member as up (degraded beats down). When no candidate is up at all, the step returns every
 * candidate of the pool it would have chosen (the first present pool of the matched rule, then of
 * the fallback), or all candidates, so the chain's all-down handling decides.
 *
 * ECS scope: the matched CIDR's prefix for a CIDR hit; the geo database network's prefix length
 * when geo data decided (approximation: the client also failed the CIDR rules, which may be
 * longer than that network; we do not narrow the scope for them, trading a rare wrong cached
 * answer inside a CIDR-ruled block for cache efficiency everywhere else); the longest CIDR rule
 * prefix of the client's family when only CIDR rules exist and none matched; for an address the
 * database has no record for, the prefix of the empty network around it (the database reports
 * it), or the full source prefix when there is no database at all; plus the
 * /24 or /56 used when spreading.
 */

import { allOfPool, hashSubnet, type PoolTally, sharedTally, spreadPick, subnetBits, upOfPool } from './common.ts'
import type { Endpoint, GeoMatch, NamedStep, PolicyContext, Pool, StepConfig } from './types.ts'

export type GeoConfig = Extract<StepConfig, { kind: 'geo' }>

export function geoStep(config: GeoConfig): NamedStep {
  return new Geo(config)
}

/**
 * What a client is matched to: a configured rule (used as it is) or the fallback (no `match`).
 * The trace line's label is made only when a trace asks for it (see `label`).
 */
interface Target {
  readonly pools: readonly Pool[]
  readonly match?: GeoMatch | undefined
}

interface CidrTarget extends Target {
  readonly network: Uint8Array
  readonly prefix: number
}

const NO_CIDRS: readonly CidrTarget[] = Object.freeze([])

const SPREAD_PREFIX4 = 24
const SPREAD_PREFIX6 = 56

/** How `#choose` found its pool: from the rule, by spreading, or by falling through. */
const HOW_RULE = 0
const HOW_SPREAD = 1
const HOW_FALLBACK = 2

/** The step is its own NamedStep (no wrapper object and closure per service). */
class Geo implements NamedStep {
  readonly name = 'geo'
  readonly pure = true
  /** CIDR rules per family, longest prefix first (config order among equal prefixes). */
  readonly #cidr4: readonly CidrTarget[]
  readonly #cidr6: readonly CidrTarget[]
  /** Rules by code; each Map only when some rule uses it (most geo steps use one kind of code). */
  readonly #asn: Map<number, Target> | undefined
  readonly #subdivision: Map<string, Target> | undefined
  readonly #country: Map<string, Target> | undefined
  readonly #continent: Map<string, Target> | undefined
  readonly #needsGeo: boolean
  readonly #fallback: Target
  readonly #spread: boolean
  #how = HOW_RULE

  constructor(config: GeoConfig) {
    const cidr4: CidrTarget[] = []
    const cidr6: CidrTarget[] = []
    let asn: Map<number, Target> | undefined
    let subdivision: Map<string, Target> | undefined
    let country: Map<string, Target> | undefined
    let continent: Map<string, Target> | undefined
    let needsGeo = false
    for (const rule of config.rules) {
      const m = rule.match
      switch (m.kind) {
        case 'cidr':
          ;(m.family === 4 ? cidr4 : cidr6).push({ pools: rule.pools, match: m, network: m.network, prefix: m.prefix })
          break
        case 'asn':
          asn ??= new Map()
          if (!asn.has(m.asn)) asn.set(m.asn, rule)
          needsGeo = true
          break
        case 'subdivision':
          subdivision ??= new Map()
          setOnce(subdivision, m.code.toUpperCase(), rule)
          needsGeo = true
          break
        case 'country':
          country ??= new Map()
          setOnce(country, m.code.toUpperCase(), rule)
          needsGeo = true
          break
        case 'continent':
          continent ??= new Map()
          setOnce(continent, m.code.toUpperCase(), rule)
          needsGeo = true
          break
        default: {
          const never: never = m
          throw new Error(`unknown geo match ${JSON.stringify(never)}`)
        }
      }
    }
    // Array.prototype.sort is stable: equal prefixes keep config order.
    this.#cidr4 = cidr4.length === 0 ? NO_CIDRS : cidr4.sort((a, b) => b.prefix - a.prefix)
    this.#cidr6 = cidr6.length === 0 ? NO_CIDRS : cidr6.sort((a, b) => b.prefix - a.prefix)
    this.#asn = asn
    this.#subdivision = subdivision
    this.#country = country
    this.#continent = continent
    this.#needsGeo = needsGeo
    this.#fallback = { pools: config.fallback }
    this.#spread = config.spread
  }

  run(candidates: readonly Endpoint[], ctx: PolicyContext): readonly Endpoint[] {
    if (candidates.length === 0) return candidates
    const tally = sharedTally
    tally.load(candidates, ctx.health)
    const target = this.#match(ctx)

    if (tally.upTotal === 0) {
      const natural = firstPresent(tally, target.pools) ?? firstPresent(tally, this.#fallback.pools)
      const all = natural === undefined ? candidates : allOfPool(natural, candidates)
      ctx.trace?.note(`geo: ${label(target)}; no candidate up, passing ${natural?.name ?? 'all'} (${all.length}) on`)
      return all
    }

    let relaxed = false
    let pool = this.#choose(target, ctx, false)
    if (pool === undefined) {
      relaxed = true
      pool = this.#choose(target, ctx, true)!
    }
    const out = upOfPool(pool, candidates, ctx.health)
    if (ctx.trace !== undefined) {
      const how =
        this.#how === HOW_RULE
          ? 'answering '
          : this.#how === HOW_SPREAD
            ? 'rule pools down, spread by capacity to '
            : 'rule pools down, falling through to '
      ctx.trace.note(`geo: ${label(target)}; ${how}${pool.name} (${out.length} up${relaxed ? ', degraded' : ''})`)
    }
    return out
  }

  /** The most specific rule for the client (or the fallback), recording the ECS scope it implies. */
  #match(ctx: PolicyContext): Target {
    const client = ctx.client
    const cidrs = client.family === 4 ? this.#cidr4 : this.#cidr6
    for (let i = 0; i < cidrs.length; i++) {
      const rule = cidrs[i]!
      if (prefixMatches(client.bytes, rule.network, rule.prefix)) {
        ctx.scope(rule.prefix)
        return rule
      }
    }
    if (!this.#needsGeo) {
      if (cidrs.length > 0) ctx.scope(cidrs[0]!.prefix)
      return this.#fallback
    }
    const geo = ctx.geo()
    if (geo === undefined) {
      ctx.scope(client.sourcePrefix)
      return this.#fallback
    }
    ctx.scope(geo.prefixLength)
    let target: Target | undefined
    if (geo.asn !== undefined) target = this.#asn?.get(geo.asn)
    if (target === undefined && geo.subdivision !== undefined) target = this.#subdivision?.get(geo.subdivision)
    if (target === undefined && geo.country !== undefined) target = this.#country?.get(geo.country)
    if (target === undefined && geo.continent !== undefined) target = this.#continent?.get(geo.continent)
    return target ?? this.#fallback
  }

  /**
   * The answering pool under one reading of "up" (threshold, or any member when `relaxed`); sets
   * `#how` to say which way it was found, for the trace.
   */
  #choose(target: Target, ctx: PolicyContext, relaxed: boolean): Pool | undefined {
    const tally = sharedTally
    this.#how = HOW_RULE
    const rulePool = firstUp(tally, target.pools, relaxed)
    if (rulePool !== undefined) return rulePool
    if (this.#spread) {
      this.#how = HOW_SPREAD
      const bits = subnetBits(ctx.client, SPREAD_PREFIX4, SPREAD_PREFIX6)
      const picked = spreadPick(tally, relaxed, hashSubnet(ctx.client, bits))
      if (picked !== undefined) ctx.scope(bits)
      return picked
    }
    this.#how = HOW_FALLBACK
    return firstUp(tally, this.#fallback.pools, relaxed) ?? firstUp(tally, tally.pools, relaxed)
  }
}

function firstUp(tally: PoolTally, pools: readonly Pool[], relaxed: boolean): Pool | undefined {
  for (let i = 0; i < pools.length; i++) {
    const pool = pools[i]!
    if (tally.isUp(pool, relaxed)) return pool
  }
  return undefined
}

function firstPresent(tally: PoolTally, pools: readonly Pool[]): Pool | undefined {
  for (let i = 0; i < pools.length; i++) {
    const pool = pools[i]!
    if (tally.present(pool)) return pool
  }
  return undefined
}

function setOnce(map: Map<string, Target>, key: string, target: Target): void {
  if (!map.has(key)) map.set(key, target)
}

/** True when the first `prefix` bits of `bytes` equal those of `network`. */
export function prefixMatches(bytes: Uint8Array, network: Uint8Array, prefix: number): boolean {
  const whole = prefix >>> 3
  if (bytes.length < whole || network.length < whole) return false
  for (let i = 0; i < whole; i++) {
    if (bytes[i] !== network[i]) return false
  }
  const rest = prefix & 7
  if (rest === 0) return true
  const mask = (0xff << (8 - rest)) & 0xff
  return ((bytes[whole] ?? 0) & mask) === ((network[whole] ?? 0) & mask)
}

/** A target for trace lines: `continent EU -> eu-pool`, `fallback -> us-pool`. */
function label(target: Target): string {
  const pools = target.pools.map((p) => p.name).join(',')
  return target.match === undefined ? `fallback -> ${pools}` : `${describe(target.match)} -> ${pools}`
}

function describe(m: GeoMatch): string {
  switch (m.kind) {
    case 'cidr':
      return `cidr ${formatNetwork(m.family, m.network)}/${m.prefix}`
    case 'asn':
      return `asn ${m.asn}`
    case 'subdivision':
      return `subdivision ${m.code}`
    case 'country':
      return `country ${m.code}`
    case 'continent':
      return `continent ${m.code}`
    default: {
      const never: never = m
      return String(never)
    }
  }
}

function formatNetwork(family: 4 | 6, network: Uint8Array): string {
  if (family === 4) return Array.from(network.subarray(0, 4)).join('.')
  const groups: string[] = []
  for (let i = 0; i + 1 < 16; i += 2) groups.push((((network[i] ?? 0) << 8) | (network[i + 1] ?? 0)).toString(16))
  return groups.join(':')
}
