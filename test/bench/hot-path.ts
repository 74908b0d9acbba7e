/**
 * The query path alone, in process: `Answerer.answer()` over a dnsperf query file, no sockets.
 * What it isolates is the cost of the answer's memory reads: on the scale bench's zone set a query
 * follows a chain of objects that are mostly not in the CPU caches (each miss ~100-250 ns on the
 * bench machine), which dnsperf against a server shows only mixed with the kernel's UDP path and
 * the machine's noise. Use it to compare two versions (two worktrees, runs alternated), not as a
 * rate: a server answers at the rate `npm run bench` and `npm run bench:scale` measure.
 *
 *   node test/bench/hot-path.ts --zones DIR --queries FILE [--ecs 81.2.69.0/24] [--seconds 3]
 *
 * FILE is "name type" per line (dnsperf's format; `npm run bench:scale -- --keep DIR` writes the
 * scale bench's into DIR/queries). Each query carries EDNS, and the ECS option when given. Every
 * query is answered once and checked for NOERROR first; then one second of warm-up and five
 * measured runs of a fifth of `--seconds` each, over the file in order. Prints ns per query (the
 * median run, and the fastest and slowest). Run it pinned (`taskset -c 0`) on an idle core.
 */

import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import dnsPacket from 'dns-packet'
import { ZoneSet } from '../../src/config/zone-set.ts'
import { GeoDatabase } from '../../src/geo/reader.ts'
import { compactHeap, tuneHeapForServing } from '../../src/ops/heap.ts'
import { Answerer } from '../../src/query/handle.ts'

const { values } = parseArgs({
  options: {
    zones: { type: 'string' },
    queries: { type: 'string' },
    ecs: { type: 'string' },
    seconds: { type: 'string', default: '3' },
  },
  strict: true,
})
if (values.zones === undefined || values.queries === undefined) {
  process.stderr.write(
    'usage: node test/bench/hot-path.ts --zones DIR --queries FILE [--ecs A.B.C.D/N] [--seconds S]\n',
  )
  process.exit(2)
}
const seconds = Number(values.seconds)
const ecs = values.ecs?.split('/')

// The heap as `gslb serve` sets it up: the layout of the objects is what this measures.
tuneHeapForServing()
const geo = await GeoDatabase.open([])
const zones = new ZoneSet(values.zones)
const report = zones.reload()
const failed = report.files.filter((f) => f.status === 'rejected')
if (failed.length > 0) {
  process.stderr.write(`hot-path: ${failed.length} zone file(s) did not load\n`)
  process.exit(1)
}
const answerer = new Answerer({ geo })
answerer.table = zones.table
compactHeap()

const lines = readFileSync(values.queries, 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l !== '' && !l.startsWith('#'))
if (lines.length === 0) {
  process.stderr.write(`hot-path: no queries in ${values.queries}\n`)
  process.exit(2)
}
const packets = lines.map((line, i) => {
  const [name, type = 'A'] = line.split(/\s+/)
  const options =
    ecs === undefined
      ? []
      : [
          {
            code: 8,
            family: ecs[0]!.includes(':') ? 2 : 1,
            sourcePrefixLength: Number(ecs[1]),
            scopePrefixLength: 0,
            ip: ecs[0],
          },
        ]
  return dnsPacket.encode({
    type: 'query',
    id: i & 0xffff,
    questions: [{ name: name!.replace(/\.$/, ''), type: type as 'A' }],
    additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, options } as dnsPacket.Answer],
  })
})

let bad = 0
for (const p of packets) {
  const out = answerer.answer(p, 'udp', '127.0.0.1')
  if (out === null || (out[3]! & 0x0f) !== 0) bad++
}
if (bad > 0) {
  process.stderr.write(`hot-path: ${bad} of ${packets.length} queries not answered NOERROR\n`)
  process.exit(1)
}

/** ns per query over whole passes of the file until `ms` have gone by. */
function run(ms: number): number {
  const t0 = process.hrtime.bigint()
  const end = performance.now() + ms
  let n = 0
  while (performance.now() < end) {
    for (let k = 0; k < packets.length; k++) answerer.answer(packets[k]!, 'udp', '127.0.0.1')
    n += packets.length
  }
  return Number(process.hrtime.bigint() - t0) / n
}

run(1000)
const runs: number[] = []
for (let i = 0; i < 5; i++) runs.push(run((seconds * 1000) / 5))
runs.sort((a, b) => a - b)
const f0 = (x: number): string => x.toFixed(0)
process.stdout.write(
  `${values.queries.split('/').pop()}: ${packets.length} queries, ns/query median ${f0(runs[2]!)} (${f0(runs[0]!)}..${f0(runs[4]!)})\n`,
)
