/**
 * @module ops/actions
 * Operator actions (drain, weight, force, push) as one function over the StateStore interface, so
 * the CLI against Redis and the admin endpoint of an embedded server do exactly the same thing.
 */

import { ConfigError } from '../errors.ts'
import type { AuditEntry, Override, PushedState, StateStore, TargetId } from '../state/types.ts'
import { targetId } from '../state/types.ts'
import type { CompiledZone } from '../zone/compile.ts'

export const ACTIONS = [
  'drain',
  'undrain',
  'weight',
  'force-up',
  'force-down',
  'unforce',
  'push-up',
  'push-down',
  'unpush',
] as const
export type Action = (typeof ACTIONS)[number]

export interface ActionRequest {
  readonly action: Action
  /** `endpoint`, `zone/endpoint`, `pool:NAME` or `zone/pool:NAME`. */
  readonly target: string
  readonly weight?: number | undefined
  /** Start of a scheduled window (ms since epoch); default now. */
  readonly from?: number | undefined
  /** End of the window (ms since epoch); default: until undone (pushed state: required). */
  readonly until?: number | undefined
  readonly who: string
  readonly why: string
}

export function isAction(s: string): s is Action {
  return (ACTIONS as readonly string[]).includes(s)
}

/** The endpoints a target names, as TargetIds; an unknown or ambiguous name is a ConfigError. */
export function resolveTarget(target: string, zones: readonly CompiledZone[]): TargetId[] {
  const slash = target.indexOf('/')
  const zoneName = slash >= 0 ? target.slice(0, slash).replace(/\.$/, '').toLowerCase() : undefined
  const rest = slash >= 0 ? target.slice(slash + 1) : target
  const candidates = zoneName === undefined ? zones : zones.filter((z) => z.stateKey === zoneName)
  if (zoneName !== undefined && candidates.length === 0) throw new ConfigError(`no zone ${zoneName} is served`)
  const found: TargetId[] = []
  if (rest.startsWith('pool:')) {
    const pool = rest.slice(5)
    for (const z of candidates)
      for (const p of z.pools)
        if (p.name === pool) for (const e of p.endpoints) found.push(targetId(z.stateKey, e.name))
    if (found.length === 0) throw new ConfigError(`no pool "${pool}"${zoneName ? ` in ${zoneName}` : ''}`)
    return found
  }
  for (const z of candidates)
    for (const p of z.pools) for (const e of p.endpoints) if (e.name === rest) found.push(targetId(z.stateKey, e.name))
  if (found.length === 0)
    throw new ConfigError(`no endpoint "${rest}"${zoneName ? ` in ${zoneName}` : ''}; use zone/endpoint or pool:NAME`)
  if (found.length > 1)
    throw new ConfigError(
      `endpoint "${rest}" exists in several zones; say which: ${found.map((f) => f.replace('|', '/')).join(', ')}`,
    )
  return found
}

/** Applies `req` to every endpoint it names; returns what was changed, for the caller to print. */
export async function applyAction(
  store: StateStore,
  zones: readonly CompiledZone[],
  req: ActionRequest,
  now = Date.now(),
): Promise<string[]> {
  const targets = resolveTarget(req.target, zones)
  const data = await store.load()
  const window = `${req.from ? ` from ${new Date(req.from).toISOString()}` : ''}${req.until ? ` until ${new Date(req.until).toISOString()}` : ''}`
  const done: string[] = []
  for (const id of targets) {
    const audit: AuditEntry = {
      at: now,
      who: req.who,
      action: req.action,
      target: id,
      detail: `${req.action}${req.weight !== undefined ? ` ${req.weight}` : ''}${window}`,
      why: req.why,
    }
    if (req.action === 'push-up' || req.action === 'push-down' || req.action === 'unpush') {
      let state: PushedState | undefined
      if (req.action !== 'unpush') {
        if (req.until === undefined) throw new ConfigError('pushed state needs an expiry (--for 10m)')
        state = { up: req.action === 'push-up', until: req.until, source: req.who, reason: req.why }
      }
      await store.pushState(id, state, audit)
    } else {
      const next = mergeOverride(data.overrides.get(id), req)
      await store.setOverride(id, next, audit)
    }
    done.push(`${id.replace('|', '/')}: ${audit.detail}`)
  }
  return done
}

/** The override after an action: fields of other actions are kept; an empty override is removed. */
export function mergeOverride(current: Override | undefined, req: ActionRequest): Override | undefined {
  const o: { -readonly [K in keyof Override]: Override[K] } = { ...current }
  switch (req.action) {
    case 'drain':
      o.drain = true
      break
    case 'undrain':
      delete o.drain
      break
    case 'weight':
      if (req.weight === undefined || !Number.isInteger(req.weight) || req.weight < 0 || req.weight > 1000) {
        throw new ConfigError('weight: expected a whole number from 0 to 1000')
      }
      o.weight = req.weight
      break
    case 'force-up':
      o.force = 'up'
      break
    case 'force-down':
      o.force = 'down'
      break
    case 'unforce':
      delete o.force
      break
    default:
      break
  }
  const undoing = req.action === 'undrain' || req.action === 'unforce'
  if (!undoing) {
    if (req.from !== undefined) o.from = req.from
    else delete o.from
    if (req.until !== undefined) o.until = req.until
    else delete o.until
  }
  return o.drain || o.weight !== undefined || o.force !== undefined ? o : undefined
}

/** `30s`, `10m`, `2h`, `1d`. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text.trim())
  if (!m) throw new ConfigError(`expected a duration like 30s, 10m, 2h or 1d, got "${text}"`)
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd']
}

/** An ISO time or a duration from now (`+2h`). */
export function parseTime(text: string, now = Date.now()): number {
  if (text.startsWith('+')) return now + parseDuration(text.slice(1))
  const t = Date.parse(text)
  if (Number.isNaN(t)) throw new ConfigError(`expected an ISO time like 2026-12-01T02:00:00Z or +2h, got "${text}"`)
  return t
}
