/**
 * @module probe/guard
 * Which addresses the prober may send traffic to. Zone files are edited by operators, but a
 * health check is still a request the prober makes on someone's say-so: without a guard, a check
 * pointed at 169.254.169.254 would fetch cloud credentials from inside our network (SSRF). The
 * guard refuses such targets before any packet leaves.
 *
 * Decision: every allow, deny and built-in deny entry that contains the address is a candidate;
 * the longest prefix wins, and deny wins a tie. When nothing matches, the address is allowed
 * only if the allow list is empty.
 */

import { type Cidr, cidrContains, parseAddress, parseCidr } from '../dns/address.ts'
import { ConfigError } from '../errors.ts'

interface Rule {
  readonly cidr: Cidr
  readonly text: string
  readonly allow: boolean
  /** Why a built-in entry exists, shown in the refusal. */
  readonly label: string | undefined
}

/** Denied unless an operator allows something more specific. */
export const DEFAULT_DENY: ReadonlyArray<readonly [cidr: string, label: string]> = [
  ['169.254.169.254/32', 'cloud metadata'],
  ['fd00:ec2::254/128', 'cloud metadata'],
  ['100.100.100.200/32', 'cloud metadata'],
  ['169.254.0.0/16', 'link-local'],
  ['fe80::/10', 'link-local'],
  ['0.0.0.0/8', 'unspecified'],
  ['::/128', 'unspecified'],
  ['224.0.0.0/4', 'multicast'],
  ['ff00::/8', 'multicast'],
  ['255.255.255.255/32', 'broadcast'],
]

export interface GuardOptions {
  readonly allow?: readonly string[]
  readonly deny?: readonly string[]
}

// ::ffff:a.b.c.d reaches a.b.c.d on a dual-stack socket, so it is judged as that IPv4 address;
// otherwise ::ffff:169.254.169.254 would walk past every IPv4 deny entry.
const V4_MAPPED_PREFIX = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff])

export class DestinationGuard {
  readonly #rules: readonly Rule[]
  readonly #allowListed: boolean

  /** Throws ConfigError listing every entry that is not a valid CIDR. */
  constructor(options: GuardOptions = {}) {
    const errors: string[] = []
    const rules: Rule[] = []
    const add = (text: string, allow: boolean, label: string | undefined, list: string): void => {
      const cidr = parseCidr(text.trim())
      if (typeof cidr === 'string') errors.push(`probe guard ${list}: ${cidr}`)
      else rules.push({ cidr, text: text.trim(), allow, label })
    }
    for (const [text, label] of DEFAULT_DENY) add(text, false, label, 'default deny')
    for (const text of options.deny ?? []) add(text, false, undefined, 'deny')
    for (const text of options.allow ?? []) add(text, true, undefined, 'allow')
    if (errors.length > 0) throw new ConfigError(errors.join('; '))
    this.#rules = rules
    this.#allowListed = (options.allow ?? []).length > 0
  }

  /** Undefined when `address` may be probed; otherwise why not. */
  check(address: string): string | undefined {
    const parsed = parseAddress(address)
    // Names are refused: resolving them here would let DNS pick a destination after the check.
    if (!parsed) return `${address} is not an IP address`
    let { family, bytes } = parsed
    if (family === 6 && bytes.subarray(0, 12).equals(V4_MAPPED_PREFIX)) {
      family = 4
      bytes = bytes.subarray(12)
    }
    let best: Rule | undefined
    for (const rule of this.#rules) {
      if (rule.cidr.family !== family || !cidrContains(rule.cidr, bytes)) continue
      if (
        best === undefined ||
        rule.cidr.prefix > best.cidr.prefix ||
        (rule.cidr.prefix === best.cidr.prefix && !rule.allow)
      ) {
        best = rule
      }
    }
    if (best === undefined) return this.#allowListed ? `${address} is not in the allow list` : undefined
    if (best.allow) return undefined
    return `${address} is in ${best.label ? `${best.text} (${best.label})` : `denied ${best.text}`}`
  }
}
