/**
 * @module ops/v8-pool
 * Node starts V8's worker pool (concurrent marking and sweeping, background compilation) with 4
 * threads, whatever CPUs the process may run on. A server confined to fewer CPUs (taskset, a
 * container's cpuset) then has those threads take turns with the query thread on the same core.
 * On the scale bench, pinned to one core as the performance issue measures it, an incremental
 * marking step of ~4 ms of work took 16-28 ms of wall time, and such steps were the longest
 * gaps in answering during a live reload (BENCHMARKS.md, "Scale").
 *
 * The pool can only be sized when the process starts (`--v8-pool-size`), so `gslb serve`, when it
 * may use fewer CPUs than the default pool and nobody chose a size, re-executes itself once with
 * the pool sized to its CPUs: `process.execve`, the same process (same PID, same descriptors),
 * before it has opened or logged anything.
 */

/** Node's default pool size (node::per_process::cli_options->v8_thread_pool_size). */
export const DEFAULT_V8_POOL = 4

const FLAG = '--v8-pool-size'

/** The pool size set on the command line or in NODE_OPTIONS, if any (the later one wins in Node). */
export function chosenPoolSize(execArgv: readonly string[], nodeOptions: string | undefined): number | undefined {
  let size: number | undefined
  const args = [...(nodeOptions ?? '').split(/\s+/), ...execArgv]
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!
    if (a === FLAG && i + 1 < args.length) size = Number(args[i + 1])
    else if (a.startsWith(`${FLAG}=`)) size = Number(a.slice(FLAG.length + 1))
  }
  return size !== undefined && Number.isInteger(size) && size >= 0 ? size : undefined
}

export interface ProcessShape {
  /** process.execArgv: node's own flags. */
  readonly execArgv: readonly string[]
  /** process.argv: the node binary, the script, then the script's arguments. */
  readonly argv: readonly string[]
  readonly nodeOptions: string | undefined
  /** CPUs this process may run on (os.availableParallelism(), which follows the affinity mask). */
  readonly cpus: number
}

/**
 * The argv to re-execute with (for process.execve, the binary first), or undefined to carry on:
 * when the process has as many CPUs as the default pool, or a size was chosen already (which is
 * also what stops a second re-execution).
 */
export function poolReexecArgs(p: ProcessShape): string[] | undefined {
  if (p.cpus >= DEFAULT_V8_POOL || chosenPoolSize(p.execArgv, p.nodeOptions) !== undefined) return undefined
  const size = Math.max(1, Math.floor(p.cpus))
  return [p.argv[0]!, `${FLAG}=${size}`, ...p.execArgv, ...p.argv.slice(1)]
}
