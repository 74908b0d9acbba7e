/**
 * Differential test: the BIND-style zone in test/fixtures/compare (corp.example, with an $INCLUDE)
 * is loaded unchanged by our server and by Knot DNS (`knotd`, Debian package `knot`), both on
 * 127.0.0.1, and every case below is asked of both with the real `dig`. The answers must agree on
 * rcode, flags (AA, TC, ...), the question echo, the EDNS header, and the answer, authority and
 * additional sections compared as sets of (lowercased owner, TTL, class, type, rdata).
 *
 * Where the two servers may legitimately differ, the difference is named in the case and checked
 * against what the RFCs require instead (see TOLERATED DIFFERENCES below); nothing is ignored
 * silently. Every case is also checked against the RFC shape of its kind (answer, NODATA, NXDOMAIN,
 * referral, ...) on both servers, so that two servers agreeing on a wrong answer is caught as well.
 *
 * Run: npx vitest run test/integration/knot-compare.test.ts
 * Skips (with a message) when `knotd` is not installed: apt-get install knot bind9-dnsutils.
 *
 * TOLERATED DIFFERENCES (each is applied only where a case or comment says so):
 * - Letter case of names. Knot stores names lowercased and prints rdata names lowercased; we keep the
 *   zone file's case, and name compression may copy the case of an earlier occurrence (even from
 *   the question). Names compare case-insensitively (RFC 1034 3.1, RFC 4343 section 3), and case
 *   preservation on output is not guaranteed across compression (RFC 4343 section 4.1, RFC 3597
 *   section 5), so owners and the rdata of name-bearing types are lowercased before comparing.
 *   Other rdata (TXT, CAA, HINFO, ...) is compared exactly.
 * - QTYPE=ANY (`any`). RFC 8482 section 4.1 lets a server answer ANY with any non-empty subset of
 *   the RRsets at the name (Knot: one RRset; we: A and AAAA when present). Checked instead: same
 *   rcode and flags, a non-empty answer on both, and every RRset given is the complete RRset that an
 *   explicit query for that type returns.
 * - Truncated responses (TC=1 on both). RFC 2181 section 9 leaves what a truncated response holds to
 *   the server (a partial RRset may even be left in); the client must retry over TCP. Checked
 *   instead: same rcode and flags, and every record present is in the full (TCP) answer.
 * - Optional additional data (`knotExtraAdditional`). RFC 1034 4.3.2 step 6 and RFC 2782 make target
 *   addresses for MX/NS/SRV an optimisation ("if available"); Knot also adds addresses it finds
 *   only through a wildcard. Checked instead: our additional section is a subset of Knot's, and
 *   whatever Knot has beyond it is exactly the listed records.
 * - The CD bit (`cd`). RFC 4035 section 3.1.6: a security-aware server MUST copy CD from the query
 *   to the response; Knot 3.2 does not copy it. We must copy it; Knot's CD is not checked.
 * - Extended DNS Errors. Knot adds EDE 20 "Not Authoritative" to REFUSED responses; EDE is optional
 *   (RFC 8914 section 3), so `EDE:` lines of the OPT pseudosection are not compared.
 */

import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { once } from 'node:events'
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type DigRecord, type DigResult, dig } from '../helpers/dig.ts'
import { FIXTURES, startTestServer, type TestServer } from '../helpers/server.ts'

const ZONE_DIR = join(FIXTURES, 'compare')
const APEX = 'corp.example.'
const SERIAL = '2024061501'
const HOST = '127.0.0.1'

const knotVersion = spawnSync('knotd', ['--version'], { encoding: 'utf8' })
const HAVE_KNOT = knotVersion.status === 0
if (!HAVE_KNOT) {
  console.warn(
    'knot-compare: skipped because `knotd` is not installed (' +
      (knotVersion.error?.message ?? `exit ${knotVersion.status}`) +
      '); install it with `apt-get install knot`',
  )
}

// ---------------------------------------------------------------------------------------------
// Cases

/** What the response must look like per the RFCs, on both servers. */
type Kind =
  /** NOERROR, AA, non-empty answer (unless truncated). */
  | 'answer'
  /** NOERROR, AA, no answer or only a CNAME chain, the apex SOA in authority (RFC 2308 2.2). */
  | 'nodata'
  /** NXDOMAIN, AA, the apex SOA in authority; the answer may hold the CNAME chain (RFC 6604). */
  | 'nxdomain'
  /** NOERROR, no AA, no answer (or only a CNAME chain), the cut's NS in authority (RFC 1034 4.3.2). */
  | 'referral'
  /** A header-only error: REFUSED, BADVERS, NOTIMP... (given in `status`), no AA. */
  | 'error'

interface Case {
  readonly qname: string
  readonly qtype: string
  readonly kind: Kind
  /** Default UDP. */
  readonly transport?: 'udp' | 'tcp'
  /** EDNS UDP payload size to offer; false sends no OPT. Default 1232. */
  readonly edns?: number | false
  /** Further dig options (+dnssec, +cdflag, -c CH, ...). */
  readonly extra?: readonly string[]
  /** Expected TC flag (default false). */
  readonly tc?: boolean
  /** Expected rcode for kind 'error'. */
  readonly status?: string
  /** For referrals: the owner of the NS RRset in authority. */
  readonly cut?: string
  /** RFC 8482 ANY handling may differ (see the header). */
  readonly any?: boolean
  /** CD bit may differ: we must copy it (RFC 4035 3.1.6), Knot does not. */
  readonly cd?: boolean
  /** Additional records Knot may have that we leave out (optional data, see the header). */
  readonly knotExtraAdditional?: readonly string[]
  readonly note?: string
}

const big = { pool: `pool.${APEX}`, keys: `_pubkeys.${APEX}` }

const CASES: readonly Case[] = [
  // --- apex ---------------------------------------------------------------------------------
  { qname: APEX, qtype: 'SOA', kind: 'answer' },
  { qname: APEX, qtype: 'NS', kind: 'answer', note: 'glue A+AAAA for ns1 and NS2 in additional' },
  { qname: APEX, qtype: 'NS', kind: 'answer', edns: false },
  { qname: APEX, qtype: 'MX', kind: 'answer', note: 'in-zone exchanges in additional, mx.example.net not' },
  { qname: APEX, qtype: 'TXT', kind: 'answer', note: 'SPF in two character-strings, verification token' },
  { qname: APEX, qtype: 'CAA', kind: 'answer' },
  { qname: APEX, qtype: 'A', kind: 'answer' },
  { qname: APEX, qtype: 'AAAA', kind: 'answer', transport: 'tcp' },
  { qname: APEX, qtype: 'DNSKEY', kind: 'nodata', note: 'NODATA at the apex' },
  { qname: APEX, qtype: 'ANY', kind: 'answer', any: true },
  { qname: APEX, qtype: 'ANY', kind: 'answer', any: true, transport: 'tcp' },

  // --- hosts (most from the $INCLUDEd corp.example.hosts) -----------------------------------
  { qname: `www.${APEX}`, qtype: 'A', kind: 'answer' },
  { qname: 'wWw.CoRp.ExAmPlE.', qtype: 'AAAA', kind: 'answer', note: 'mixed-case query' },
  { qname: `api.${APEX}`, qtype: 'A', kind: 'answer', note: 'owner written "Api" in the file' },
  { qname: 'API.Corp.Example.', qtype: 'AAAA', kind: 'answer' },
  { qname: `www.${APEX}`, qtype: 'TXT', kind: 'nodata', note: 'NODATA at an existing name' },
  { qname: `vpn.${APEX}`, qtype: 'A', kind: 'answer', note: "the include's $ORIGIN did not leak" },
  { qname: `bench1.lab.${APEX}`, qtype: 'A', kind: 'answer', note: '$ORIGIN inside the include' },
  { qname: 'Bench2.LAB.corp.example.', qtype: 'AAAA', kind: 'answer' },
  { qname: `lab.${APEX}`, qtype: 'A', kind: 'nodata', note: 'empty non-terminal from the include' },
  { qname: `build.${APEX}`, qtype: 'HINFO', kind: 'answer' },
  { qname: `build.${APEX}`, qtype: 'ANY', kind: 'answer', any: true },
  { qname: `legacy.${APEX}`, qtype: 'TYPE65400', kind: 'answer', note: 'RFC 3597 generic record' },
  { qname: `legacy.${APEX}`, qtype: 'A', kind: 'nodata' },
  { qname: 'MAIL2.corp.example.', qtype: 'A', kind: 'answer' },
  { qname: `selector1._domainkey.${APEX}`, qtype: 'TXT', kind: 'answer', note: '\\; escapes in a string' },
  { qname: `_dmarc.${APEX}`, qtype: 'TXT', kind: 'answer' },

  // --- names that do not exist ----------------------------------------------------------------
  { qname: `nothere.${APEX}`, qtype: 'A', kind: 'nxdomain' },
  { qname: 'Nope.Corp.Example.', qtype: 'MX', kind: 'nxdomain' },
  { qname: `nothere.${APEX}`, qtype: 'A', kind: 'nxdomain', transport: 'tcp', edns: false },
  { qname: `x.www.${APEX}`, qtype: 'A', kind: 'nxdomain', note: 'below a leaf' },

  // --- CNAME chains ---------------------------------------------------------------------------
  { qname: `portal.${APEX}`, qtype: 'A', kind: 'answer', note: '1 hop' },
  { qname: `docs.${APEX}`, qtype: 'A', kind: 'answer', note: '3 hops' },
  { qname: 'DOCS.corp.example.', qtype: 'AAAA', kind: 'answer', transport: 'tcp' },
  { qname: `docs.${APEX}`, qtype: 'TXT', kind: 'nodata', note: 'chain ends in NODATA' },
  { qname: `docs.${APEX}`, qtype: 'CNAME', kind: 'answer', note: 'QTYPE CNAME is not chased' },
  { qname: `cdn.${APEX}`, qtype: 'A', kind: 'answer', note: 'chain leaves the zone' },
  { qname: `old-wiki.${APEX}`, qtype: 'A', kind: 'nxdomain', note: 'dangling: NXDOMAIN with the CNAME (RFC 6604)' },
  { qname: `shop.${APEX}`, qtype: 'A', kind: 'answer', note: 'into the *.apps wildcard' },
  { qname: `git.${APEX}`, qtype: 'A', kind: 'referral', cut: `eng.${APEX}`, note: 'into a delegation' },
  { qname: `web.${APEX}`, qtype: 'A', kind: 'answer', edns: false, tc: true, note: 'CNAME fits, 40 A do not' },
  { qname: `web.${APEX}`, qtype: 'A', kind: 'answer' },

  // --- wildcards (RFC 4592) -------------------------------------------------------------------
  { qname: `x.apps.${APEX}`, qtype: 'A', kind: 'answer' },
  { qname: 'Deep.Er.Apps.Corp.Example.', qtype: 'TXT', kind: 'answer', note: 'two labels below, mixed case' },
  { qname: `x.apps.${APEX}`, qtype: 'AAAA', kind: 'nodata', note: 'wildcard NODATA' },
  { qname: `x.apps.${APEX}`, qtype: 'ANY', kind: 'answer', any: true },
  { qname: `*.apps.${APEX}`, qtype: 'A', kind: 'answer', note: 'the wildcard owner itself' },
  { qname: `x.*.apps.${APEX}`, qtype: 'A', kind: 'nxdomain', note: 'RFC 4592 2.2.1: no *.*.apps' },
  { qname: `billing.apps.${APEX}`, qtype: 'A', kind: 'answer' },
  { qname: `billing.apps.${APEX}`, qtype: 'TXT', kind: 'nodata', note: 'an existing name blocks the wildcard' },
  { qname: `foo.billing.apps.${APEX}`, qtype: 'A', kind: 'nxdomain', note: 'closest encloser has no wildcard' },
  { qname: `apps.${APEX}`, qtype: 'A', kind: 'nodata', note: 'parent of the wildcard is an ENT' },
  {
    qname: `_http._tcp.apps.${APEX}`,
    qtype: 'SRV',
    kind: 'answer',
    knotExtraAdditional: [`gateway.apps.${APEX} 3600 IN A 203.0.113.80`],
    note: 'SRV target exists only through *.apps',
  },
  { qname: `foo._tcp.apps.${APEX}`, qtype: 'A', kind: 'nxdomain', note: 'ENT _tcp.apps blocks *.apps' },
  { qname: `pr-42.preview.${APEX}`, qtype: 'A', kind: 'answer', note: 'wildcard CNAME' },
  { qname: `PR-42.Preview.${APEX}`, qtype: 'TXT', kind: 'nodata', note: 'wildcard CNAME, chain ends in NODATA' },
  { qname: `pr-42.preview.${APEX}`, qtype: 'CNAME', kind: 'answer' },

  // --- empty non-terminals --------------------------------------------------------------------
  { qname: `eu.dc.${APEX}`, qtype: 'A', kind: 'nodata' },
  { qname: `dc.${APEX}`, qtype: 'TXT', kind: 'nodata' },
  { qname: `x.eu.dc.${APEX}`, qtype: 'A', kind: 'nxdomain' },
  { qname: `db1.eu.dc.${APEX}`, qtype: 'A', kind: 'answer' },
  { qname: `_tcp.${APEX}`, qtype: 'SRV', kind: 'nodata' },

  // --- SRV and PTR ----------------------------------------------------------------------------
  { qname: `_sip._tcp.${APEX}`, qtype: 'SRV', kind: 'answer', note: 'target addresses in additional' },
  { qname: `_sip._tcp.${APEX}`, qtype: 'SRV', kind: 'answer', transport: 'tcp', edns: false },
  { qname: `_ldap._tcp.dc.${APEX}`, qtype: 'SRV', kind: 'answer' },
  { qname: `_autodiscover._tcp.${APEX}`, qtype: 'SRV', kind: 'answer' },
  { qname: `b._dns-sd._udp.${APEX}`, qtype: 'PTR', kind: 'answer' },
  { qname: `lb._dns-sd._udp.${APEX}`, qtype: 'PTR', kind: 'answer' },

  // --- delegations ----------------------------------------------------------------------------
  { qname: `eng.${APEX}`, qtype: 'A', kind: 'referral', cut: `eng.${APEX}`, note: 'in-domain glue A+AAAA' },
  { qname: `eng.${APEX}`, qtype: 'NS', kind: 'referral', cut: `eng.${APEX}`, note: 'NS at the cut: not AA' },
  { qname: `eng.${APEX}`, qtype: 'DS', kind: 'answer', note: 'DS is parent-side data (RFC 4035 3.1.4.1)' },
  { qname: `eng.${APEX}`, qtype: 'SOA', kind: 'referral', cut: `eng.${APEX}` },
  { qname: `eng.${APEX}`, qtype: 'ANY', kind: 'referral', cut: `eng.${APEX}` },
  { qname: `ns1.eng.${APEX}`, qtype: 'A', kind: 'referral', cut: `eng.${APEX}`, note: 'glue name' },
  { qname: 'NS2.ENG.corp.example.', qtype: 'AAAA', kind: 'referral', cut: `eng.${APEX}` },
  { qname: `ns1.eng.${APEX}`, qtype: 'DS', kind: 'referral', cut: `eng.${APEX}`, note: 'DS below the cut' },
  { qname: `a.b.c.eng.${APEX}`, qtype: 'TXT', kind: 'referral', cut: `eng.${APEX}`, transport: 'tcp' },
  { qname: `partner.${APEX}`, qtype: 'NS', kind: 'referral', cut: `partner.${APEX}`, note: 'no glue' },
  { qname: `partner.${APEX}`, qtype: 'DS', kind: 'nodata', note: 'unsigned child: NODATA at the cut' },
  { qname: `deep.below.partner.${APEX}`, qtype: 'A', kind: 'referral', cut: `partner.${APEX}` },
  { qname: `hr.${APEX}`, qtype: 'NS', kind: 'referral', cut: `hr.${APEX}`, note: 'sibling glue ns1, ns2' },
  { qname: `x.hr.${APEX}`, qtype: 'AAAA', kind: 'referral', cut: `hr.${APEX}`, edns: false },

  // --- big RRsets and truncation --------------------------------------------------------------
  { qname: big.pool, qtype: 'A', kind: 'answer', edns: false, tc: true, note: '40 A > 512 bytes' },
  { qname: big.pool, qtype: 'A', kind: 'answer', edns: 512, tc: true },
  { qname: big.pool, qtype: 'A', kind: 'answer', edns: 1232 },
  { qname: 'POOL.corp.example.', qtype: 'A', kind: 'answer', transport: 'tcp', edns: false },
  { qname: big.keys, qtype: 'TXT', kind: 'answer', edns: false, tc: true, note: '~2 KB of TXT' },
  { qname: big.keys, qtype: 'TXT', kind: 'answer', edns: 1232, tc: true },
  { qname: big.keys, qtype: 'TXT', kind: 'answer', transport: 'tcp' },
  { qname: big.keys, qtype: 'TXT', kind: 'answer', transport: 'tcp', edns: false },

  // --- protocol details -----------------------------------------------------------------------
  { qname: `www.${APEX}`, qtype: 'A', kind: 'answer', extra: ['+dnssec'], note: 'DO bit echoed (RFC 3225)' },
  { qname: `www.${APEX}`, qtype: 'A', kind: 'answer', extra: ['+rec'], note: 'RD copied, no RA' },
  { qname: `www.${APEX}`, qtype: 'A', kind: 'answer', extra: ['+cdflag'], cd: true },
  { qname: `www.${APEX}`, qtype: 'A', kind: 'error', status: 'BADVERS', extra: ['+edns=1', '+noednsneg'] },
  { qname: 'example.net.', qtype: 'A', kind: 'error', status: 'REFUSED', note: 'not our zone' },
  { qname: 'example.', qtype: 'SOA', kind: 'error', status: 'REFUSED', note: 'parent of our zone' },
  {
    qname: APEX,
    qtype: 'SOA',
    kind: 'error',
    status: 'NOTIMP',
    extra: ['+opcode=status'],
    note: 'OPT must be echoed with NOTIMP too (RFC 6891 6.1.1)',
  },
]

// ---------------------------------------------------------------------------------------------
// Querying and normalising

function digArgs(c: Case): string[] {
  const args = [c.qname, c.qtype, '+nocookie', '+time=3', '+tries=2']
  // +notcp matters: dig 9.18 sends ANY over TCP unless told otherwise.
  if ((c.transport ?? 'udp') === 'tcp') args.push('+tcp')
  else args.push('+notcp', '+ignore')
  const edns = c.edns ?? 1232
  args.push(edns === false ? '+noedns' : `+bufsize=${edns}`)
  return [...args, ...(c.extra ?? [])]
}

function label(c: Case): string {
  const opts = [
    (c.transport ?? 'udp').toUpperCase(),
    c.edns === false ? 'no EDNS' : `EDNS ${c.edns ?? 1232}`,
    ...(c.extra ?? []),
  ].join(' ')
  return `${c.qname} ${c.qtype} (${opts})${c.note ? ` - ${c.note}` : ''}`
}

/** Types whose rdata holds domain names, compared case-insensitively (RFC 4343). */
const NAME_RDATA = new Set(['NS', 'CNAME', 'PTR', 'MX', 'SRV', 'SOA', 'DNAME'])

function norm(r: DigRecord): string {
  const data = NAME_RDATA.has(r.type) ? r.data.toLowerCase() : r.data
  return `${r.name.toLowerCase()} ${r.ttl} ${r.class} ${r.type} ${data}`
}

function set(records: readonly DigRecord[]): string[] {
  return records.map(norm).sort()
}

/** The question as dig printed it, exactly (the servers copy the client's question). */
function question(d: DigResult): string {
  const lines = d.raw.split('\n')
  const at = lines.findIndex((l) => l.startsWith(';; QUESTION SECTION:'))
  return at < 0 ? '' : (lines[at + 1] ?? '').replace(/\s+/g, ' ')
}

/** OPT pseudosection without Extended DNS Errors (optional, RFC 8914 section 3). */
function opt(d: DigResult): string[] {
  return d.opt.filter((l) => !l.startsWith('EDE:'))
}

function flags(d: DigResult, withoutCd: boolean): string[] {
  return [...d.flags].filter((f) => !(withoutCd && f === 'cd')).sort()
}

function show(d: DigResult): string {
  return d.raw
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith(';; Query time') && !l.startsWith(';; WHEN'))
    .join('\n')
}

// ---------------------------------------------------------------------------------------------
// Knot

interface Knot {
  readonly port: number
  readonly proc: ChildProcess
  readonly dir: string
  log(): string
  stop(): Promise<void>
}

/** A port free on 127.0.0.1 for both TCP and UDP at the time of asking. */
async function freePort(): Promise<number> {
  for (;;) {
    const srv = createServer()
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject)
      srv.listen(0, HOST, () => resolve())
    })
    const addr = srv.address()
    const port = typeof addr === 'object' && addr ? addr.port : 0
    const udp = createSocket('udp4')
    const udpFree = await new Promise<boolean>((resolve) => {
      udp.once('error', () => resolve(false))
      udp.bind(port, HOST, () => resolve(true))
    })
    await new Promise<void>((resolve) => udp.close(() => resolve()))
    await new Promise<void>((resolve) => srv.close(() => resolve()))
    if (udpFree) return port
  }
}

function knotConfig(dir: string, port: number): string {
  return `# knot-compare test instance: loopback only, reads the zone file, never writes it back
server:
    listen: ${HOST}@${port}
    rundir: "${dir}"
    identity: ""
    version: ""
    nsid: ""
    udp-workers: 2
    tcp-workers: 2
    background-workers: 1
    udp-max-payload: 1232
    answer-rotation: off
database:
    storage: "${join(dir, 'db')}"
log:
  - target: stderr
    any: info
template:
  - id: default
    storage: "${join(dir, 'zones')}"
    semantic-checks: off
    zonefile-load: whole
    zonefile-sync: -1
    journal-content: none
zone:
  - domain: ${APEX}
    file: corp.example.zone
`
}

async function startKnotOnce(): Promise<Knot> {
  const dir = mkdtempSync(join(tmpdir(), 'knot-cmp-'))
  cpSync(ZONE_DIR, join(dir, 'zones'), { recursive: true })
  mkdirSync(join(dir, 'db'))
  const port = await freePort()
  const conf = join(dir, 'knot.conf')
  writeFileSync(conf, knotConfig(dir, port))
  const proc = spawn('knotd', ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  proc.stdout?.on('data', (b: Buffer) => (output += b.toString()))
  proc.stderr?.on('data', (b: Buffer) => (output += b.toString()))
  let exited = false
  proc.once('exit', () => (exited = true))
  // Should the test worker die without afterAll, do not leave knotd behind.
  const killOnExit = (): void => {
    if (!exited) proc.kill('SIGKILL')
  }
  process.once('exit', killOnExit)

  const knot: Knot = {
    port,
    proc,
    dir,
    log: () => output,
    async stop() {
      process.off('exit', killOnExit)
      if (!exited && proc.exitCode === null) {
        const gone = once(proc, 'exit')
        proc.kill('SIGTERM')
        const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000)
        await gone
        clearTimeout(timer)
      }
      rmSync(dir, { recursive: true, force: true })
    },
  }

  // Knot loads zones after it starts listening: wait until it answers the SOA with our serial.
  const deadline = Date.now() + 15_000
  while (Date.now() < deadline && !exited) {
    try {
      const r = await dig(HOST, port, APEX, 'SOA', '+nocookie', '+time=1', '+tries=1')
      if (r.status === 'NOERROR' && r.flags.has('aa') && r.answer[0]?.data.includes(` ${SERIAL} `)) return knot
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  await knot.stop()
  throw new Error(`knotd did not serve ${APEX} on ${HOST}@${port}:\n${output}`)
}

async function startKnot(): Promise<Knot> {
  // The free port may be taken between asking and knotd binding it: try a few ports.
  let last: unknown
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startKnotOnce()
    } catch (e) {
      last = e
    }
  }
  throw last
}

/**
 * Local addresses of the IP sockets a process holds (Linux /proc), as "address:port" hex strings
 * from /proc/net/{tcp,udp}{,6}. Undefined when /proc is not available.
 */
function socketAddresses(pid: number): string[] | undefined {
  let fds: string[]
  try {
    fds = readdirSync(`/proc/${pid}/fd`)
  } catch {
    return undefined
  }
  const inodes = new Set<string>()
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))
      if (m) inodes.add(m[1]!)
    } catch {
      // fd closed meanwhile
    }
  }
  const out: string[] = []
  for (const table of ['tcp', 'tcp6', 'udp', 'udp6']) {
    let text: string
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, 'utf8')
    } catch {
      continue
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/)
      if (f.length > 9 && inodes.has(f[9]!)) out.push(`${table} ${f[1]}`)
    }
  }
  return out
}

const LOOPBACK_HEX = new Set(['0100007F', '00000000000000000000000001000000'])

// ---------------------------------------------------------------------------------------------

describe.skipIf(!HAVE_KNOT)('corp.example answers the same as Knot DNS', () => {
  let knot: Knot | undefined
  let ours: TestServer | undefined
  const knotFull = new Map<string, Promise<DigResult>>()

  beforeAll(async () => {
    ours = await startTestServer({ zones: ZONE_DIR })
    knot = await startKnot()
  })

  afterAll(async () => {
    await knot?.stop()
    await ours?.stop()
  })

  const ask = (port: number, c: Case): Promise<DigResult> => dig(HOST, port, ...digArgs(c))

  /** The untruncated answer of a server over TCP for `qname qtype`. */
  const full = (port: number, qname: string, qtype: string): Promise<DigResult> =>
    dig(HOST, port, qname, qtype, '+nocookie', '+time=3', '+tries=2', '+tcp')

  /** Knot's answer for an explicit type, cached: the reference RRset for ANY and TC checks. */
  const knotRRset = (qname: string, qtype: string): Promise<DigResult> => {
    const key = `${qname.toLowerCase()} ${qtype}`
    let p = knotFull.get(key)
    if (!p) {
      p = full(knot!.port, qname, qtype)
      knotFull.set(key, p)
    }
    return p
  }

  it('both servers listen on loopback only', () => {
    expect(ours!.server.addresses.map((a) => a.host)).toEqual([HOST])
    const socks = socketAddresses(knot!.proc.pid!)
    if (socks === undefined) return // no /proc: the config's listen line is all we have
    expect(socks.length).toBeGreaterThan(0)
    for (const s of socks) {
      const addr = s.split(' ')[1]!.split(':')[0]!
      // 0.0.0.0 with port 0 would be an unbound socket; knotd has none, so anything else is an error.
      expect(LOOPBACK_HEX.has(addr), `knotd socket ${s} is not on loopback`).toBe(true)
    }
  })

  it('Knot loaded the same zone (serial, $INCLUDEd hosts)', async () => {
    const k = await dig(HOST, knot!.port, `bench2.lab.${APEX}`, 'AAAA', '+nocookie')
    const o = await dig(HOST, ours!.port, `bench2.lab.${APEX}`, 'AAAA', '+nocookie')
    expect(set(k.answer)).toEqual([`bench2.lab.${APEX} 3600 IN AAAA 2001:db8:113::12`])
    expect(set(o.answer)).toEqual(set(k.answer))
    expect(knot!.log()).not.toMatch(/\berror\b/i)
  })

  /** RFC shape of the response, whichever server gave it. */
  function checkKind(c: Case, d: DigResult, who: string): void {
    const ctx = `${who}: ${label(c)}\n${show(d)}`
    const truncated = c.tc === true
    expect(d.flags.has('tc'), ctx).toBe(truncated)
    expect(d.transport, ctx).toBe((c.transport ?? 'udp').toUpperCase())
    expect(d.flags.has('qr'), ctx).toBe(true)
    // EDNS in, EDNS out (RFC 6891 6.1.1); none in, none out.
    const ednsSent = c.edns !== false
    expect(d.opt.length > 0, `${ctx}\n(OPT present must match the query)`).toBe(ednsSent)
    const soaOnly = (): void => {
      if (truncated) return
      expect(
        d.authority.map((r) => `${r.name.toLowerCase()} ${r.type}`),
        ctx,
      ).toEqual([`${APEX} SOA`])
      // RFC 2308 section 5: negative TTL is min(SOA TTL, SOA MINIMUM) = 300 here.
      expect(d.authority[0]!.ttl, ctx).toBe(300)
    }
    const onlyCnames = (): void => {
      for (const r of d.answer) expect(r.type, ctx).toBe('CNAME')
    }
    switch (c.kind) {
      case 'answer':
        expect(d.status, ctx).toBe('NOERROR')
        expect(d.flags.has('aa'), ctx).toBe(true)
        if (!truncated) expect(d.answer.length, ctx).toBeGreaterThan(0)
        break
      case 'nodata':
        expect(d.status, ctx).toBe('NOERROR')
        expect(d.flags.has('aa'), ctx).toBe(true)
        onlyCnames()
        soaOnly()
        break
      case 'nxdomain':
        expect(d.status, ctx).toBe('NXDOMAIN')
        expect(d.flags.has('aa'), ctx).toBe(true)
        onlyCnames()
        soaOnly()
        break
      case 'referral': {
        expect(d.status, ctx).toBe('NOERROR')
        onlyCnames()
        // AA describes the first owner in the answer (RFC 1035 4.1.1): set only after an in-zone CNAME.
        expect(d.flags.has('aa'), ctx).toBe(d.answer.length > 0)
        const ns = d.authority.filter((r) => r.type === 'NS')
        expect(ns.length, ctx).toBeGreaterThan(0)
        expect(ns.length, ctx).toBe(d.authority.length)
        for (const r of ns) expect(r.name.toLowerCase(), ctx).toBe(c.cut)
        break
      }
      case 'error':
        expect(d.status, ctx).toBe(c.status)
        expect(d.flags.has('aa'), ctx).toBe(false)
        expect(d.answer.length + d.authority.length + d.additional.length, ctx).toBe(0)
        break
    }
  }

  async function compare(c: Case): Promise<void> {
    const [k, o] = await Promise.all([ask(knot!.port, c), ask(ours!.port, c)])
    const ctx = `${label(c)}\n--- knot ---\n${show(k)}\n--- ours ---\n${show(o)}`

    checkKind(c, k, 'knot')
    checkKind(c, o, 'ours')

    expect(o.status, ctx).toBe(k.status)
    expect(question(o), ctx).toBe(question(k))
    expect(opt(o), ctx).toEqual(opt(k))
    // Tolerated: CD (RFC 4035 3.1.6 says copy it; Knot does not). We must copy it.
    if (c.cd) expect(o.flags.has('cd'), `${ctx}\n(CD must be copied, RFC 4035 3.1.6)`).toBe(true)
    expect(flags(o, c.cd === true), ctx).toEqual(flags(k, c.cd === true))

    if (c.tc) {
      // Tolerated: what a truncated response holds (RFC 2181 section 9). Whatever is there must
      // be in the full answer.
      for (const [who, d, port] of [
        ['knot', k, knot!.port],
        ['ours', o, ours!.port],
      ] as const) {
        const f = await full(port, c.qname, c.qtype)
        const all = new Set([...f.answer, ...f.authority, ...f.additional].map(norm))
        for (const r of [...d.answer, ...d.authority, ...d.additional]) {
          expect(all.has(norm(r)), `${who} truncated response has ${norm(r)}, not in the full answer\n${ctx}`).toBe(
            true,
          )
        }
      }
      return
    }

    if (c.any) {
      // Tolerated: RFC 8482 4.1, any non-empty subset of complete RRsets.
      for (const [who, d] of [
        ['knot', k],
        ['ours', o],
      ] as const) {
        if (c.kind === 'answer') expect(d.answer.length, `${who}\n${ctx}`).toBeGreaterThan(0)
        for (const type of new Set(d.answer.map((r) => r.type))) {
          const ref = await knotRRset(c.qname, type)
          const want = set(ref.answer.filter((r) => r.type === type))
          expect(set(d.answer.filter((r) => r.type === type)), `${who} ANY: ${type} RRset incomplete\n${ctx}`).toEqual(
            want,
          )
        }
      }
      expect(set(o.authority), ctx).toEqual(set(k.authority))
      return
    }

    expect(set(o.answer), ctx).toEqual(set(k.answer))
    expect(set(o.authority), ctx).toEqual(set(k.authority))

    const extra = new Set((c.knotExtraAdditional ?? []).map((s) => s.replace(/\s+/g, ' ')))
    if (extra.size === 0) {
      expect(set(o.additional), ctx).toEqual(set(k.additional))
    } else {
      // Tolerated: optional additional data (RFC 1034 4.3.2 step 6, RFC 2782). Ours is a subset of
      // Knot's, and Knot's surplus is exactly what the case lists.
      const kAdd = set(k.additional)
      const oAdd = set(o.additional)
      for (const r of oAdd) expect(kAdd, `ours has ${r} that knot has not\n${ctx}`).toContain(r)
      for (const r of kAdd.filter((x) => !oAdd.includes(x)))
        expect(extra.has(r), `knot has ${r} that ours lacks, and it is not listed as tolerated\n${ctx}`).toBe(true)
    }
  }

  for (const c of CASES) {
    it(label(c), () => compare(c))
  }
})
