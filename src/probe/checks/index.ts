/**
 * @module probe/checks
 * One entry point for every check kind. The destination guard runs first, so a refused target
 * costs no traffic at all, whatever its check.
 */

import { DestinationGuard } from '../guard.ts'
import type { CheckResult, ProbeTarget } from '../types.ts'
import { dnsCheck } from './dns.ts'
import { httpCheck } from './http.ts'
import { failure, tcpCheck } from './tcp.ts'

/** Built-in denials only (link-local, metadata, multicast, ...); the prober passes its configured guard. */
export const DEFAULT_GUARD = new DestinationGuard()

/** Runs `target`'s check once. Never throws: refusals and failures come back as `ok: false`. */
export function runCheck(
  target: ProbeTarget,
  signal?: AbortSignal,
  guard: DestinationGuard = DEFAULT_GUARD,
): Promise<CheckResult> {
  const refused = guard.check(target.address)
  if (refused !== undefined) return Promise.resolve(failure(`refused by probe guard: ${refused}`))
  // The checks never throw by design; should one still do so, it is a bug in the check, and it
  // must cost one failed probe, not the prober.
  return dispatch(target, signal).catch(() => failure('internal error'))
}

function dispatch(target: ProbeTarget, signal: AbortSignal | undefined): Promise<CheckResult> {
  const check = target.check
  switch (check.kind) {
    case 'http':
    case 'https':
      return httpCheck(check, target.address, signal)
    case 'tcp':
      return tcpCheck(check, target.address, signal)
    case 'dns':
      return dnsCheck(check, target.address, signal)
    default: {
      const unknown: never = check
      return Promise.resolve(failure(`unknown check kind ${(unknown as { kind: string }).kind}`))
    }
  }
}
