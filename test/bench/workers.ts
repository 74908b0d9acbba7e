/**
 * `npm run bench:workers`: what `gslb serve --workers N` adds, measured with a load generator that
 * leaves the server room. dnsperf needs about as much CPU per query as the server, so on a 2-core
 * machine it holds the server to about one core whatever N is (BENCHMARKS.md, "Several cores").
 * test/bench/loadgen/loadgen.c sends and receives in batches of up to 64 datagrams per system
 * call from 16 sockets (16 flows for SO_REUSEPORT to spread); it is compiled here with `cc`.
 *
 *   node test/bench/workers.ts [--workers 1,2] [--rounds 3] [--seconds 5] [--warmup 2]
 *                              [--sockets 16] [--outstanding 100] [--zones test/bench/zones]
 *                              [--queries FILE]
 *
 * Each round starts a fresh server per N (unpinned: the kernel places its threads and the
 * generator's), in the other order every other round, warms it up, and runs the generator for
 * `--seconds`. Reported per N: answers per second (median), the CPU the server and the generator
 * used (in cores: CPU seconds per second), the server's CPU per answer, and the rate against the
 * first N. Queries: FILE in dnsperf's format (A and AAAA lines), by default the static names of
 * the bench zones. Traffic goes to 127.0.0.1 only (the generator refuses anything else).
 */

import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { freePort } from '../helpers/process.ts'
import { shellQuote, waitExit, waitReady } from './process.ts'

const ROOT = new URL('../../', import.meta.url).pathname.replace(/\/$/, '')
const HOST = '127.0.0.1'
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100
const STATIC_NAMES = ['www', 'api', 'cdn', 'static'].map((n) => `${n}.bench.example. A`)

interface GenResult {
  readonly received: number
  readonly lost: number
  readonly seconds: number
  readonly qps: number
  readonly cpuSeconds: number
}

interface Run extends GenResult {
  readonly serverCpu: number
}

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(f[11]) + Number(f[12])) / CLK_TCK
}

function buildLoadgen(): string {
  const out = join(ROOT, 'build', 'loadgen')
  mkdirSync(join(ROOT, 'build'), { recursive: true })
  const cc = spawnSync('cc', ['-O2', '-Wall', '-o', out, join(ROOT, 'test/bench/loadgen/loadgen.c')], {
    encoding: 'utf8',
  })
  if (cc.error || cc.status !== 0) {
    throw new Error(`cannot compile the load generator with cc: ${cc.error?.message ?? cc.stderr}`)
  }
  return out
}

function generate(bin: string, port: number, file: string, seconds: number, sockets: number, q: number): GenResult {
  const args = ['-s', HOST, '-p', String(port), '-d', file, '-l', String(seconds)]
  args.push('-c', String(sockets), '-q', String(q))
  const r = spawnSync(bin, args, { encoding: 'utf8', timeout: (seconds + 30) * 1000 })
  if (r.status !== 0) throw new Error(`loadgen failed (${r.status}): ${r.stderr}`)
  return JSON.parse(r.stdout) as GenResult
}

async function serve(zones: string, workers: number): Promise<{ child: ChildProcess; port: number }> {
  const port = await freePort()
  const args = ['src/cli.ts', 'serve', '--zones', zones, '--listen', `${HOST}:${port}`, '--admin', 'off']
  args.push('--log-level', 'warn', '--workers', String(workers))
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] })
  process.stderr.write(`bench:workers: ${shellQuote(['node', ...args])}\n`)
  await waitReady(port, child, 60_000, 'www.bench.example')
  return { child, port }
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      workers: { type: 'string', default: '1,2' },
      rounds: { type: 'string', default: '3' },
      seconds: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '2' },
      sockets: { type: 'string', default: '16' },
      outstanding: { type: 'string', default: '100' },
      zones: { type: 'string', default: 'test/bench/zones' },
      queries: { type: 'string' },
    },
  })
  const counts = values.workers.split(',').map(Number)
  const [rounds, seconds, warmup] = [Number(values.rounds), Number(values.seconds), Number(values.warmup)]
  const [sockets, outstanding] = [Number(values.sockets), Number(values.outstanding)]
  if (counts.some((n) => !Number.isInteger(n) || n < 1) || !(rounds >= 1) || !(seconds > 0) || !(warmup >= 0)) {
    process.stderr.write('usage: node test/bench/workers.ts [--workers 1,2] [--rounds N] [--seconds S] ...\n')
    return 2
  }
  const bin = buildLoadgen()
  const tmp = mkdtempSync(join(tmpdir(), 'gslb-bench-workers-'))
  const file = values.queries ?? join(tmp, 'queries.txt')
  if (!values.queries) writeFileSync(file, `${STATIC_NAMES.join('\n')}\n`)
  const runs = new Map<number, Run[]>(counts.map((n) => [n, []]))
  try {
    for (let round = 1; round <= rounds; round++) {
      const order = round % 2 === 1 ? counts : [...counts].reverse()
      for (const n of order) {
        const s = await serve(resolve(values.zones), n)
        try {
          if (warmup > 0) generate(bin, s.port, file, warmup, sockets, outstanding)
          const cpu0 = cpuSeconds(s.child.pid!)
          const g = generate(bin, s.port, file, seconds, sockets, outstanding)
          const run = { ...g, serverCpu: cpuSeconds(s.child.pid!) - cpu0 }
          runs.get(n)!.push(run)
          process.stderr.write(
            `round ${round}, --workers ${n}: ${g.qps.toFixed(0)} answers/s, lost ${g.lost}, ` +
              `server ${(run.serverCpu / g.seconds).toFixed(2)} cores, generator ${(g.cpuSeconds / g.seconds).toFixed(2)} cores\n`,
          )
        } finally {
          s.child.kill('SIGTERM')
          if (!(await waitExit(s.child, 10_000))) s.child.kill('SIGKILL')
        }
      }
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true })
  }
  const base = median(runs.get(counts[0]!)!.map((r) => r.qps))
  const out = [
    '| server | answers/s (median) | per round | lost | server cores | generator cores | server µs/answer | vs first |',
    '|:--|--:|:--|--:|--:|--:|--:|--:|',
  ]
  for (const [n, rs] of runs) {
    const qps = median(rs.map((r) => r.qps))
    const cores = median(rs.map((r) => r.serverCpu / r.seconds))
    const gen = median(rs.map((r) => r.cpuSeconds / r.seconds))
    const us = median(rs.map((r) => (r.serverCpu * 1e6) / r.received))
    out.push(
      `| \`--workers ${n}\` | ${qps.toFixed(0)} | ${rs.map((r) => r.qps.toFixed(0)).join(', ')} | ` +
        `${rs.reduce((a, r) => a + r.lost, 0)} | ${cores.toFixed(2)} | ${gen.toFixed(2)} | ${us.toFixed(2)} | ` +
        `${(qps / base).toFixed(2)}x |`,
    )
  }
  process.stdout.write(
    `${out.join('\n')}\n\n${bin} -s ${HOST} -p PORT -d FILE -l ${seconds} -c ${sockets} -q ${outstanding}\n`,
  )
  return 0
}

process.exitCode = await main()
