/**
 * @module probe/sharding
 * Splits one vantage's targets among its live probers. Rendezvous (highest-random-weight)
 * hashing: every prober computes the same owner for every target from the same live list, with
 * no coordination, and when a prober joins or leaves only the targets it owned (or comes to own)
 * move. `ProberMembership` keeps this prober's heartbeat alive in the store and reports changes
 * of the live list, so the worker can re-shard; a dead prober drops out when its heartbeat TTL
 * runs out and its targets are picked up by the others at their next heartbeat.
 */

import { fmix32, hashString } from '../hash.ts'
import type { StateStore, TargetId } from '../state/types.ts'

/** The score of one (target, prober) pair; the separator keeps `a|b`+`c` apart from `a`+`|bc`. */
function score(targetHash: number, prober: string): number {
  return fmix32(hashString(prober, Math.imul(targetHash ^ 0xff, 0x01000193)))
}

/**
 * The live prober that owns `id`, or undefined when there is none. Ties (one in 2^32 per pair)
 * go to the lexically smaller prober id, so every prober still agrees.
 */
export function owner(id: TargetId, probers: readonly string[]): string | undefined {
  const th = hashString(id)
  let best: string | undefined
  let bestScore = -1
  for (const p of probers) {
    const s = score(th, p)
    if (s > bestScore || (s === bestScore && best !== undefined && p < best)) {
      best = p
      bestScore = s
    }
  }
  return best
}

/**
 * The targets `self` owns among `probers`. When `self` is not in the list (its own heartbeat has
 * not been seen yet, or the store lost it), it is counted in anyway: probing a target twice for a
 * while is better than leaving it unprobed.
 */
export function owned<T extends { readonly id: TargetId }>(
  targets: readonly T[],
  probers: readonly string[],
  self: string,
): T[] {
  const live = probers.includes(self) ? probers : [...probers, self]
  if (live.length === 1) return [...targets]
  const out: T[] = []
  for (const t of targets) if (owner(t.id, live) === self) out.push(t)
  return out
}

/** The slice of a logger this module and the scheduler use; a pino Logger fits. */
export interface ProbeLogger {
  info(obj: object, msg: string): void
  warn(obj: object, msg: string): void
  error(obj: object, msg: string): void
}

export interface MembershipOptions {
  readonly store: Pick<StateStore, 'proberHeartbeat'>
  readonly vantage: string
  readonly self: string
  /** A prober is live for this long after its last heartbeat; we send one every third of it. */
  readonly ttlMs: number
  /** Called with the new live list (sorted, always containing `self`) whenever it changes. */
  readonly onChange: (live: readonly string[]) => void
  readonly log?: ProbeLogger | undefined
}

/**
 * Heartbeats for one prober and the live list that comes back. The next heartbeat is timed from
 * the end of the previous one (never two in flight), so a slow store delays heartbeats instead of
 * piling them up. A failed heartbeat keeps the last known list: the store being down says nothing
 * about which probers are alive.
 */
export class ProberMembership {
  readonly #store: Pick<StateStore, 'proberHeartbeat'>
  readonly #vantage: string
  readonly #self: string
  readonly #ttlMs: number
  readonly #onChange: (live: readonly string[]) => void
  readonly #log: ProbeLogger | undefined
  #live: readonly string[]
  #timer: NodeJS.Timeout | undefined
  #running = false
  #inFlight: Promise<void> | undefined
  #failing = false

  constructor(options: MembershipOptions) {
    if (!(options.ttlMs >= 3)) throw new RangeError(`ttlMs must be at least 3 ms, got ${options.ttlMs}`)
    this.#store = options.store
    this.#vantage = options.vantage
    this.#self = options.self
    this.#ttlMs = options.ttlMs
    this.#onChange = options.onChange
    this.#log = options.log
    this.#live = [options.self]
  }

  /** The live probers as last seen (sorted, with `self`); `[self]` before the first heartbeat. */
  get live(): readonly string[] {
    return this.#live
  }

  /** Sends the first heartbeat and resolves once it has answered (or failed), then keeps beating. */
  async start(): Promise<readonly string[]> {
    if (this.#running) return this.#live
    this.#running = true
    await this.beat()
    return this.#live
  }

  /** One heartbeat now (also used by tests); resolves when it has answered or failed. */
  async beat(): Promise<void> {
    if (this.#inFlight !== undefined) return this.#inFlight
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer)
      this.#timer = undefined
    }
    this.#inFlight = this.#beat().finally(() => {
      this.#inFlight = undefined
      if (this.#running) this.#timer = setTimeout(() => void this.beat(), Math.floor(this.#ttlMs / 3))
    })
    return this.#inFlight
  }

  async #beat(): Promise<void> {
    let list: string[]
    try {
      list = await this.#store.proberHeartbeat(this.#vantage, this.#self, this.#ttlMs)
    } catch (err) {
      if (!this.#failing) {
        this.#failing = true
        this.#log?.warn({ err, vantage: this.#vantage }, 'prober heartbeat failed; keeping the last known probers')
      }
      return
    }
    if (this.#failing) {
      this.#failing = false
      this.#log?.info({ vantage: this.#vantage }, 'prober heartbeat recovered')
    }
    if (!this.#running) return
    const next = normalise(list, this.#self)
    if (sameList(next, this.#live)) return
    this.#live = next
    this.#onChange(next)
  }

  /**
   * Stops heartbeating. With `leave`, one last heartbeat with a 1 ms TTL makes this prober drop
   * out of the others' lists at their next heartbeat instead of after a full TTL (the store has
   * no explicit leave).
   */
  async stop(leave = true): Promise<void> {
    const wasRunning = this.#running
    this.#running = false
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer)
      this.#timer = undefined
    }
    if (this.#inFlight !== undefined) await this.#inFlight
    if (wasRunning && leave) {
      try {
        await this.#store.proberHeartbeat(this.#vantage, this.#self, 1)
      } catch {
        // The store is down: our entry ages out after its TTL like a crashed prober's.
      }
    }
  }
}

function normalise(list: readonly string[], self: string): string[] {
  const out = list.includes(self) ? [...list] : [...list, self]
  return out.sort()
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}
