#!/usr/bin/env node
/**
 * @module cli
 * Entry point of the `gslb` command (the commands themselves: cli-main). Before loading them, the
 * one thing that has to happen at process start: `gslb serve` on fewer CPUs than V8's default
 * four helper threads re-executes itself with the pool sized to its CPUs (ops/v8-pool). Doing it
 * here, with two small modules loaded, keeps the re-execution from loading every module twice
 * (~0.5 s of a large zone set's startup). Then the compile cache, then the commands.
 */

import { enableCompileCache } from 'node:module'
import { availableParallelism } from 'node:os'
import { poolReexecArgs } from './ops/v8-pool.ts'

if (process.argv[2] === 'serve' && process.execve !== undefined) {
  const again = poolReexecArgs({
    execArgv: process.execArgv,
    argv: process.argv,
    nodeOptions: process.env['NODE_OPTIONS'],
    cpus: availableParallelism(),
  })
  if (again !== undefined) process.execve(process.execPath, again, process.env)
}

// Node keeps the type-stripped source and V8's code cache of every module on disk (under the OS
// temp dir, or NODE_COMPILE_CACHE; NODE_DISABLE_COMPILE_CACHE=1 turns it off), so the next start
// skips both: ~0.3 s of each `gslb serve` start on our machines. It never throws; without a
// writable directory modules load as before. Worker threads (`--workers N`, handover reloads)
// take it from the environment.
const cache = enableCompileCache()
if (cache.directory !== undefined) process.env['NODE_COMPILE_CACHE'] ??= cache.directory

await import('./cli-main.ts')
