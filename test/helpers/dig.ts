/**
 * Runs the real `dig` (bind9-dnsutils) or `kdig` (knot-dnsutils) against a test server and parses
 * the parts of its output the tests assert on.
 */

import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

const run = promisify(execFile)

export interface DigRecord {
  readonly name: string
  readonly ttl: number
  readonly class: string
  readonly type: string
  readonly data: string
}

export interface DigResult {
  readonly status: string
  readonly flags: ReadonlySet<string>
  readonly answer: readonly DigRecord[]
  readonly authority: readonly DigRecord[]
  readonly additional: readonly DigRecord[]
  /** The OPT pseudosection lines (EDNS, NSID, CLIENT-SUBNET...), empty when the response had no OPT. */
  readonly opt: readonly string[]
  /** "UDP" or "TCP", as dig reports the transport it finally used. */
  readonly transport: string
  readonly size: number
  readonly raw: string
}

function parseRecord(line: string): DigRecord {
  const [name, ttl, klass, type, ...rest] = line.split(/\s+/)
  return { name: name!, ttl: Number(ttl), class: klass!, type: type!, data: rest.join(' ') }
}

export function parseDig(raw: string): DigResult {
  let status = ''
  let flags = new Set<string>()
  const sections: Record<string, DigRecord[]> = { ANSWER: [], AUTHORITY: [], ADDITIONAL: [] }
  const opt: string[] = []
  let current: string | undefined
  let transport = ''
  let size = 0
  for (const line of raw.split('\n')) {
    const h = /status: (\w+)/.exec(line)
    if (line.startsWith(';; ->>HEADER<<-') && h) status = h[1]!
    const f = /^;; flags: ([^;]*);/.exec(line)
    if (f) flags = new Set(f[1]!.trim().split(/\s+/).filter(Boolean))
    const s = /^;; (\w+) (SECTION|PSEUDOSECTION):/.exec(line)
    if (s) {
      current = s[1]
      continue
    }
    const srv = /^;; SERVER: .*\((UDP|TCP)\)/.exec(line)
    if (srv) transport = srv[1]!
    const sz = /^;; MSG SIZE\s+rcvd: (\d+)/.exec(line)
    if (sz) size = Number(sz[1])
    if (line.trim() === '') {
      current = undefined
      continue
    }
    if (current === 'OPT') opt.push(line.replace(/^; /, ''))
    else if (current && current in sections && !line.startsWith(';')) sections[current]!.push(parseRecord(line))
  }
  return {
    status,
    flags,
    answer: sections['ANSWER']!,
    authority: sections['AUTHORITY']!,
    additional: sections['ADDITIONAL']!,
    opt,
    transport,
    size,
    raw,
  }
}

/** `dig @host -p port <args>` with +norec by default and +time/+tries kept short for tests. */
export async function dig(host: string, port: number, ...args: string[]): Promise<DigResult> {
  const { stdout } = await run('dig', [`@${host}`, '-p', String(port), '+norec', '+time=2', '+tries=1', ...args], {
    timeout: 10_000,
  })
  return parseDig(stdout)
}

/** Same as `dig` but with Knot's kdig, whose output format matches closely enough for parseDig. */
export async function kdig(host: string, port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run('kdig', [`@${host}`, '-p', String(port), '+norec', '+time=2', '+retry=0', ...args], {
    timeout: 10_000,
  })
  return stdout
}

/** Answer records as "name type data" strings, lowercased names, for order-insensitive comparison. */
export function rrStrings(records: readonly DigRecord[]): string[] {
  return records.map((r) => `${r.name.toLowerCase()} ${r.type} ${r.data}`).sort()
}
