/**
 * Two checkouts of gslb-dns side by side on the same zones and queries: which answers with less
 * CPU per query. Usage:
 *
 *   node test/bench/versions.ts --a DIR --b DIR --zones ZONES --queries Q
 *                               [--kinds weighted,geo,...] [--rounds 4] [--seconds 3] [--no-pin]
 *
 * DIR: a checkout (e.g. `git worktree add /tmp/a REV`, with node_modules linked in). ZONES and Q:
 * the zones and queries of `node test/bench/scale.ts --keep DIR` (Q = DIR/queries; a kind K reads
 * Q/bigGslb-K.txt, `all` Q/bigGslb.txt and `static` Q/bigStatic.txt). Both servers run pinned to
 * CPU 0 (one idle while the other answers) and dnsperf to CPU 1; each kind's A and B runs are back
 * to back, in the other order every other round, so a slow spell of a shared machine lands on both
 * sides of a ratio. The figure is the server's CPU time per answered query (/proc/PID/stat), steadier
 * than qps once dnsperf, not the server, is what saturates. Traffic goes to 127.0.0.1 only.
 */

import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { freePort } from '../helpers/process.ts'
import { shellQuote, waitExit, waitReady } from './process.ts'

const HOST = '127.0.0.1'
const ECS_UK = '8:00011800510245' // 81.2.69.0/24, as scale.ts and run.ts send
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100

interface Side {
  readonly name: 'A' | 'B'
  readonly dir: string
  readonly port: number
  readonly child: ChildProcess
}

interface Run {
  readonly qps: number
  readonly usPerQuery: number
}

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(f[11]) + Number(f[12])) / CLK_TCK
}

function queriesFile(q: string, kind: string): string {
  if (kind === 'all') return join(q, 'bigGslb.txt')
  if (kind === 'static') return join(q, 'bigStatic.txt')
  return join(q, `bigGslb-${kind}.txt`)
}

async function start(name: 'A' | 'B', dir: string, zones: string, pin: boolean): Promise<Side> {
  const port = await freePort()
  const args = ['src/cli.ts', 'serve', '--zones', zones, '--listen', `${HOST}:${port}`, '--log-level', 'warn']
  args.push('--admin', 'off')
  const taskset = pin ? ['taskset', '-c', '0'] : []
  const argv = [...taskset, process.execPath, ...args]
  const child = spawn(argv[0]!, argv.slice(1), { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] })
  process.stderr.write(`${name}: cd ${shellQuote([dir])} && ${shellQuote([...taskset, 'node', ...args])}\n`)
  return { name, dir, port, child }
}

async function dnsperf(side: Side, file: string, seconds: number, pin: boolean): Promise<Run> {
  const args = ['-s', HOST, '-p', String(side.port), '-d', file, '-l', String(seconds), '-c', '4', '-q', '100']
  args.push('-E', ECS_UK)
  const argv = pin ? ['taskset', '-c', '1', 'dnsperf', ...args] : ['dnsperf', ...args]
  const pid = side.child.pid!
  const cpu0 = cpuSeconds(pid)
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: (seconds + 30) * 1000 })
  const used = cpuSeconds(pid) - cpu0
  if (r.status !== 0) throw new Error(`dnsperf failed (${r.status}): ${(r.stdout + r.stderr).slice(-1500)}`)
  const qps = Number(/Queries per second:\s+([\d.]+)/.exec(r.stdout)?.[1])
  const completed = Number(/Queries completed:\s+(\d+)/.exec(r.stdout)?.[1])
  return { qps, usPerQuery: (used * 1e6) / completed }
}

const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length
const f2 = (n: number): string => n.toFixed(2)

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      a: { type: 'string' },
      b: { type: 'string' },
      zones: { type: 'string' },
      queries: { type: 'string' },
      kinds: { type: 'string', default: 'weighted,geo,failover,latency,sticky,multivalue' },
      rounds: { type: 'string', default: '4' },
      seconds: { type: 'string', default: '3' },
      'no-pin': { type: 'boolean', default: false },
    },
  })
  if (!values.a || !values.b || !values.zones || !values.queries) {
    process.stderr.write('usage: node test/bench/versions.ts --a DIR --b DIR --zones ZONES --queries Q [...]\n')
    return 2
  }
  const pin = !values['no-pin']
  const rounds = Number(values.rounds)
  const seconds = Number(values.seconds)
  const kinds = values.kinds.split(',').filter(Boolean)
  const zones = resolve(values.zones)
  const q = resolve(values.queries)
  const sides = [
    await start('A', resolve(values.a), zones, pin),
    await start('B', resolve(values.b), zones, pin),
  ] as const
  try {
    for (const s of sides) await waitReady(s.port, s.child, 120_000, 'localhost')
    // First queries of every service make its answers ahead (the slow path): not measured.
    for (const s of sides) await dnsperf(s, queriesFile(q, 'all'), 3, pin)
    const runs = new Map<string, { A: Run[]; B: Run[] }>(kinds.map((k) => [k, { A: [], B: [] }]))
    for (let round = 1; round <= rounds; round++) {
      for (const kind of kinds) {
        const order = round % 2 === 1 ? sides : ([sides[1], sides[0]] as const)
        const got: Partial<Record<'A' | 'B', Run>> = {}
        for (const s of order) {
          const r = await dnsperf(s, queriesFile(q, kind), seconds, pin)
          got[s.name] = r
          runs.get(kind)![s.name].push(r)
        }
        process.stderr.write(
          `round ${round} ${kind}: A ${f2(got.A!.usPerQuery)} µs (${got.A!.qps.toFixed(0)} qps), ` +
            `B ${f2(got.B!.usPerQuery)} µs (${got.B!.qps.toFixed(0)} qps)\n`,
        )
      }
    }
    const out = [
      `| kind | A µs/query | B µs/query | A / B (mean) | A / B per round | A qps | B qps |`,
      `|:--|--:|--:|--:|:--|--:|--:|`,
    ]
    for (const [kind, { A, B }] of runs) {
      const a = mean(A.map((r) => r.usPerQuery))
      const b = mean(B.map((r) => r.usPerQuery))
      const each = A.map((r, i) => f2(r.usPerQuery / B[i]!.usPerQuery)).join(', ')
      out.push(
        `| ${kind} | ${f2(a)} | ${f2(b)} | ${(a / b).toFixed(3)} | ${each} | ` +
          `${mean(A.map((r) => r.qps)).toFixed(0)} | ${mean(B.map((r) => r.qps)).toFixed(0)} |`,
      )
    }
    process.stdout.write(
      `${out.join('\n')}\n\nA = ${sides[0].dir}, B = ${sides[1].dir}; below 1: A needs less CPU per query\n`,
    )
    return 0
  } finally {
    for (const s of sides) {
      s.child.kill('SIGTERM')
      if (!(await waitExit(s.child, 5000))) s.child.kill('SIGKILL')
    }
  }
}

process.exitCode = await main()
