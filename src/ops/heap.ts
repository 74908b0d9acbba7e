/**
 * @module ops/heap
 * V8 heap settings for the `gslb serve` process, measured on the 100k-record / 10k-service zone set
 * of `npm run bench:scale` (BENCHMARKS.md, "Scale"). V8 flags are process-wide, so only the CLI's
 * serve path (and the worker threads of `--workers N`, which compact after their own load) calls
 * these; `gslb check` runs with V8's defaults.
 *
 * - New space stays at its initial size (1 MiB semi-spaces) once the sockets are open. V8 doubles
 *   it whenever a scavenge finds much surviving, and loading a zone set is nothing but surviving
 *   objects: it grew to 2 x 64 MiB, kept that for good (128 MB of RSS that only ever holds
 *   per-query garbage), and every scavenge during a live reload then copied up to 64 MiB of new
 *   table: 15-60 ms each, the largest gaps in answering. With 1 MiB a scavenge copies at most
 *   1 MiB; what the query path allocates (a response buffer) dies long before that, so it costs
 *   one short scavenge per few thousand queries. `--max-semi-space-size` would say the same but
 *   only takes effect on the command line; the growth factor is read at every resize, so it can
 *   be set from here. The startup load, which answers nothing and has no reload to stall, lets it
 *   grow (to 128 MB instead of 16 on the scale set: 50 scavenges instead of 150, ~8% off the
 *   load); the memory-reducing compaction after it shrinks the new space back to 1 MiB, and the
 *   pin is set just before that compaction. The "heap compacted after startup" line logs both
 *   sizes.
 * - The old generation grows to twice its live size before a full collection starts
 *   (`--heap-growing-percent=100`). V8's own factor follows mutator utilization, which a serving
 *   process keeps high, so it picked ~1.1-1.5: incremental marking then began so close to the
 *   limit that a live reload's promotions ran into it within ~150 ms, and V8 finished the marking
 *   in one atomic pause of 100-130 ms ("allocation failure; incremental marking forced
 *   finalization"), in about one reload of three on the scale bench. With room for marking to
 *   finish incrementally the reload's longest gap was 27-32 ms in three runs against 27-56 ms.
 *   The cost is memory between collections; the zone set's live heap is ~100 MB after the
 *   object diet, so RSS after load and traffic stays under 300 MB.
 * - No allocation-site pretenuring. A reload allocates nothing but objects that survive, so V8
 *   soon allocated them straight in the old generation, where each allocation drives
 *   incremental marking and no scavenge paces it. The marking then ran in steps of up to 16 ms
 *   inside a reload slice and finished in one forced finalization: slices of 40-117 ms, and in
 *   9 of 25 in-place reloads on the scale bench a longest gap of 47-144 ms. Without it the
 *   objects go through the 1 MiB new space like everything else: 20-36 ms in 16 runs of 17
 *   (70 ms once), with the same load time and memory, and query rates within the noise. After
 *   long traffic (a heap full of answer caches) a reload still reached 98 ms once in three: in
 *   place stays best-effort; `--reload-mode handover` is the bounded one.
 * - After the startup load, one compacting collection (`compactHeap`): the load leaves the old
 *   generation full of promoted parse garbage and fragmented pages, which V8 otherwise keeps
 *   committed until it next runs out of room.
 * - With `--reload-mode handover` (`servingHeap`): worker threads run without V8's memory
 *   reducer, and this thread compacts after applying each change, before fresh workers load it. Both keep collections that pause an
 *   answering thread out of the few seconds a fresh worker spends loading next to it, where on a
 *   shared core they took twice as long (BENCHMARKS.md, "Scale").
 */

import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import type { Logger } from '../log.ts'

/** Call once, before the zone set loads. */
export function tuneHeapForServing(): void {
  setFlagsFromString('--heap-growing-percent=100')
  setFlagsFromString('--no-allocation-site-pretenuring')
}

/**
 * What `serve()` asks of the heap at its milestones (the CLI passes `servingHeap()`; tests that
 * run `serve()` in their own process pass nothing and keep V8's defaults).
 */
export interface ServeHeap {
  /** The startup load is done and no socket is open yet. */
  afterStartupLoad(): void
  /** Answering worker threads are about to be started for handover reloads. */
  beforeHandoverWorkers(): void
  /**
   * This thread, answering no queries, applied a zone change that workers get by handover (fresh
   * ones are about to load it, or one already did: the lazy handover's first).
   */
  afterZoneChange(): void
}

/**
 * The heap hooks of `gslb serve`; `log` gets one line per compaction: ms, RSS and the new space's
 * size after it, and after the startup load also what the load had grown the new space to.
 */
export function servingHeap(log: Logger): ServeHeap {
  const compact = (msg: string, fields: Record<string, number> = {}): void => {
    const ms = Math.round(compactHeap())
    log.info({ ms, rssMb: mb(process.memoryUsage.rss()), newSpaceMb: mb(newSpaceBytes()), ...fields }, msg)
  }
  return {
    afterStartupLoad: () => {
      const grown = newSpaceBytes()
      // Pinned before the compaction, whose memory reduction shrinks what the load grew.
      setFlagsFromString('--semi-space-growth-factor=1')
      compact('heap compacted after startup', { loadNewSpaceMb: mb(grown) })
    },
    beforeHandoverWorkers: () => {
      // V8 reads this flag when it sets up an isolate's heap: this thread keeps its memory reducer,
      // the worker threads started from now on have none. At a low query rate an answering worker
      // looks idle to V8, whose memory reducer then marks its heap and finishes with a full pause
      // (20-25 ms on the scale bench's zone set). Once that happened while a fresh worker loaded
      // on the same core, and the pause stretched to 45 ms. Its collections driven by allocation
      // still run. What an idle worker no longer does is hand back the pages between them. Its
      // live heap is the zone set, and the next handover replaces the worker anyway.
      setFlagsFromString('--no-memory-reducer')
    },
    // The change this thread just loaded left its old table as garbage. Collected later, that
    // collection would land when the fresh worker starts answering (seen: a 300 -> 89 MB
    // mark-compact there, on the core the answering threads share). Collected now, it runs
    // before the fresh worker loads, with only the old worker answering. This thread answers no
    // queries, so its own pause costs nothing. The handover's peak RSS went down too.
    afterZoneChange: () => compact('heap compacted after a zone change'),
  }
}

const mb = (bytes: number): number => Math.round(bytes / 1048576)

function newSpaceBytes(): number {
  return getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0
}

type GcFunction = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void

/**
 * A full, compacting, memory-reducing collection (what V8 runs on a low-memory notification).
 * It stops the process for a few hundred milliseconds on a large zone set: call it once, right
 * after startup, never on the query path. Returns the milliseconds it took.
 */
export function compactHeap(): number {
  const t0 = performance.now()
  // `gc` is only made for contexts created while --expose-gc is set; take one and turn it off again.
  // V8 flags are process-wide: worker threads starting together may turn it off between another
  // one's two calls, which then finds no `gc` and skips its compaction rather than fail to start.
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('typeof gc === "function" ? gc : undefined') as GcFunction | undefined
  setFlagsFromString('--no-expose-gc')
  if (gc === undefined) return 0
  gc({ type: 'major', execution: 'sync', flavor: 'last-resort' })
  return performance.now() - t0
}
