/**
 * @module zone/cooperative
 * Long loads written once, run two ways. Parsing, validating and compiling a large zone set takes
 * seconds; those stages are generators that `yield` at safe points (between records, names,
 * services), and the caller decides what a yield means:
 *
 * - `runSync` ignores them: startup and `gslb check`, where nothing else has to run meanwhile.
 * - `runSliced` hands the event loop back once a slice of `sliceMs` has passed, so a live reload
 *   lets queries be answered between slices (the table is still swapped whole at the end).
 *
 * A yield costs a generator resume per frame of `yield*` nesting, so stages yield every few
 * units of work (a few microseconds each), never per byte. Steps are kept that small because V8's
 * incremental marking runs inside whatever step allocates, and the slicer can only look at the
 * clock between steps: once marking falls behind its schedule (a large zone set's reload on one
 * core), V8 marks at every allocation until it has caught up, and a step of 16 names or entries
 * was seen taking 146-196 ms that way on the scale bench; with 2-8 per step the longest seen was
 * 81 ms, and those runs' reloads took as long as before (BENCHMARKS.md, "Scale"). A pass that
 * does not yield at all (a check of every service, a copy of every name) becomes one such step,
 * however cheap it is without a collection: every whole-zone pass yields, copies every 64 names.
 */

/** A stage that may pause at each `yield` and finally returns T. */
export type Steps<T> = Generator<void, T, void>

/** Runs a stage to completion without pausing. */
export function runSync<T>(steps: Steps<T>): T {
  for (;;) {
    const r = steps.next()
    if (r.done) return r.value
  }
}

/**
 * What a sliced run measured, for the reload's log line. A slice that ran well past `sliceMs` had
 * V8 collect garbage inside it (the steps are microseconds each): the longest slice bounds how
 * long the reload kept queries waiting, and is what to look at when answers stall during reloads.
 */
export interface SliceStats {
  /** Returns to the event loop. */
  pauses: number
  /** Longest stretch of reload work between two of them, in ms. */
  longestSliceMs: number
  /** Slices that ran past twice their time (V8 marked inside them), each followed by a wait. */
  backoffs: number
}

/**
 * Entries between two yields of a whole-zone pass that only copies or probes Map entries:
 * microseconds per thousand, but a step is stretched by whatever V8 marks inside it while a live
 * reload allocates, and 1024 a step were seen taking 20-37 ms then (BENCHMARKS.md, "Scale").
 */
export const COPIES_PER_STEP = 64

/** Time slice a live reload runs before letting the event loop answer queries. */
export const DEFAULT_SLICE_MS = 5

/** A turn of the event loop longer than this was busy (answering queries, collecting garbage); an idle one takes ~30 µs. */
const BUSY_TURN_MS = 0.2
/** At most this many extra turns between two slices, so a reload under heavy load still progresses. */
const MAX_EXTRA_TURNS = 64
/** Longest wait after a slice that garbage collection stretched (see runSliced). */
const MAX_BACKOFF_MS = 50

/**
 * Runs a stage in slices of about `sliceMs`, returning to the event loop (setImmediate: pending
 * I/O, so queries, goes first) between them. `onPause` counts the pauses (tests, logs).
 *
 * One turn of the loop reads at most 32 datagrams per socket (libuv), so when a slice and a garbage
 * collection pause together outlast that, queries queue up and each slice would add to the queue.
 * When a turn comes back busy, another one follows before the next slice, until one comes back
 * idle: the queue drains instead of growing. A slice that ran past twice its time is followed by
 * a wait on a timer as long as it ran (at most 50 ms; `stats.backoffs` counts them): see below.
 */
export async function runSliced<T>(
  steps: Steps<T>,
  sliceMs = DEFAULT_SLICE_MS,
  onPause?: () => void,
  stats?: SliceStats,
): Promise<T> {
  let start = performance.now()
  for (;;) {
    const r = steps.next()
    const ran = performance.now() - start
    if (stats !== undefined && ran > stats.longestSliceMs) stats.longestSliceMs = ran
    if (r.done) return r.value
    if (ran >= sliceMs) {
      onPause?.()
      if (stats !== undefined) stats.pauses++
      for (let extra = 0; extra <= MAX_EXTRA_TURNS; extra++) {
        const away = performance.now()
        await new Promise<void>((resolve) => setImmediate(resolve))
        if (performance.now() - away < BUSY_TURN_MS) break
      }
      // A slice of microsecond steps that ran past twice its time had V8 mark inside it: marking
      // has fallen behind, and every allocation of the next slice would mark too. Waiting on a
      // timer instead, this thread only answers queries and V8's helper thread marks meanwhile;
      // on one shared core it otherwise gets the core only by preempting a reload step, which the
      // slicer cannot cut short. The reload takes longer by about what such slices took.
      if (sliceMs > 0 && ran > 2 * sliceMs) {
        if (stats !== undefined) stats.backoffs++
        await new Promise<void>((resolve) => setTimeout(resolve, Math.min(ran, MAX_BACKOFF_MS)))
      }
      start = performance.now()
    }
  }
}
