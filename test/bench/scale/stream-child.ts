/**
 * The reload stream of `bench:scale` in a process of its own, so that nothing the bench itself
 * does (generating zones, its own garbage collection) delays sending queries or reading answers.
 *
 *   node test/bench/scale/stream-child.ts PORT QUERIES_FILE     (started by scale.ts with fork)
 *
 * QUERIES_FILE holds one `name qtype-number` per line. Messages from the parent: `{ mark: NAME }`
 * records the current time under NAME; `{ stop: true }` stops the stream and sends back
 * `{ result, marks }` (times on this process's clock), then exits.
 */

import { readFileSync } from 'node:fs'
import { type StreamResult, startStream } from './stream.ts'

const [portText, file] = process.argv.slice(2)
const queries = readFileSync(file!, 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((l) => {
    const [name, qtype] = l.split(' ')
    return { name: name!, qtype: Number(qtype) }
  })
const stream = startStream(Number(portText), queries, 1)
const marks: Record<string, number> = {}

process.on('message', (m: { mark?: string; stop?: boolean }) => {
  if (m.mark !== undefined) marks[m.mark] = stream.now()
  if (m.stop) {
    void stream.stop().then((result: StreamResult) => {
      process.send!({ result, marks }, () => process.exit(0))
    })
  }
})
process.send!({ ready: true })
