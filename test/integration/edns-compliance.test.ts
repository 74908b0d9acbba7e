/**
 * EDNS and header compliance, the way ISC's DNS Flag Day tester judges it. `genreport` (ISC "DNS
 * Compliance Testing", the engine behind ednscomp.isc.org and the DNS Flag Day 2019 checker)
 * sends one query per named test and grades each reply; RFC 8906 section 8 gives the same checks
 * as dig command lines. Every probe below is the dig command genreport documents for that test,
 * sent to the real listening server, and `problems()` applies the grading rules, restated from
 * RFC 1035, RFC 3225, RFC 6891, RFC 7873 and RFC 8906:
 *
 * - the opcode is echoed; the rcode is NOERROR for QUERY (BADCOOKIE allowed when a cookie was
 *   sent and a server cookie came back), NOTIMP for other opcodes, BADVERS for EDNS version > 0;
 * - OPT is in the reply exactly when the query had one, with version 0, and no EDNS flag other
 *   than DO set ("Z bits must be zero", RFC 6891 6.1.4); an unknown option is never echoed;
 * - a NOERROR SOA query has the SOA in the answer; a BADVERS or non-QUERY reply has no records;
 * - AA on authoritative NOERROR answers to QUERY, never on other opcodes; RD echoed for QUERY
 *   only; AD and CD only when the query set them (AD also after DO); the header Z bit clear;
 * - with `+ignore` (TC answers accepted) the reply fits the advertised size (512 without EDNS);
 * - a COOKIE option in the reply, if any, is 16..40 bytes and starts with the client cookie.
 *
 * genreport only requires RA clear for non-QUERY opcodes; this server is authoritative-only, so
 * the checks here require RA clear everywhere (README "DNS behaviour").
 *
 * Groups follow genreport: EDNS (its default set, what DNS Flag Day 2019 graded), FULL (`-f`),
 * COMM (`-c`: queries as BIND 9.11 named and dig send them) and TYPE (`-t`). The zone is the
 * fixture test/fixtures/zones/example.org.zone (unsigned). docs/conformance.md lists the results.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type DigResult, dig, parseDig } from '../helpers/dig.ts'
import { startTestServer, type TestServer } from '../helpers/server.ts'

const ZONE = 'example.org'
const CLIENT_COOKIE = '0102030405060708'

let s: TestServer
const q = (...args: string[]) => dig('127.0.0.1', s.port, ...args)

beforeAll(async () => {
  s = await startTestServer()
})
afterAll(async () => {
  await s.stop()
})

/** What a probe sent, as far as grading the reply needs it. */
interface Probe {
  /** genreport's test name. */
  readonly test: string
  /** dig arguments after `@server -p port +norec +time=2 +tries=1` (see test/helpers/dig.ts). */
  readonly args: readonly string[]
  /** Query type; undefined for `+header-only` queries (no question). */
  readonly qtype?: string
  /** EDNS version sent; undefined when the query has no OPT. */
  readonly edns?: number
  readonly dnssecOk?: boolean
  readonly rd?: boolean
  readonly ad?: boolean
  readonly cd?: boolean
  readonly opcode?: number
  /** A client cookie was sent. */
  readonly cookie?: boolean
  /** `+ignore`: TC replies are graded as they are, and must fit this many bytes. */
  readonly fitIn?: number
}

/** The parts of dig's output parseDig leaves out: opcode, header MBZ, counts, OPT details. */
interface Inspected {
  readonly opcode: string
  readonly headerMbz: boolean
  readonly counts: {
    readonly query: number
    readonly answer: number
    readonly authority: number
    readonly additional: number
  }
  readonly opt?: {
    readonly version: number
    readonly flags: ReadonlySet<string>
    readonly mbz: number
    readonly udp: number
  }
  /** Unknown options dig prints as `OPT=<code>`. */
  readonly unknownOptions: readonly number[]
  /** The COOKIE option as hex, when the reply has one. */
  readonly cookie?: string
}

function inspect(r: DigResult): Inspected {
  const header = /^;; ->>HEADER<<- opcode: (\w+), status: \w+/m.exec(r.raw)
  const flagsLine = /^;; flags: ([^\n]*)$/m.exec(r.raw)?.[1] ?? ''
  const count = (what: string) => Number(new RegExp(`${what}: (\\d+)`).exec(flagsLine)?.[1] ?? Number.NaN)
  const edns = /EDNS: version: (\d+), flags:([^;]*);(?: MBZ: (0x[0-9a-f]+),)? udp: (\d+)/i.exec(r.opt.join('\n'))
  const cookie = r.opt.map((l) => /^COOKIE: ([0-9a-f]+)/i.exec(l)?.[1]).find((c) => c !== undefined)
  return {
    opcode: header?.[1] ?? '',
    headerMbz: /MBZ:/.test(flagsLine),
    counts: {
      query: count('QUERY'),
      answer: count('ANSWER'),
      authority: count('AUTHORITY'),
      additional: count('ADDITIONAL'),
    },
    ...(edns
      ? {
          opt: {
            version: Number(edns[1]),
            flags: new Set(edns[2]!.trim().split(/\s+/).filter(Boolean)),
            mbz: edns[3] ? Number.parseInt(edns[3], 16) : 0,
            udp: Number(edns[4]),
          },
        }
      : {}),
    unknownOptions: r.opt.flatMap((l) => {
      const m = /^OPT=(\d+)/.exec(l)
      return m ? [Number(m[1])] : []
    }),
    ...(cookie ? { cookie: cookie.toLowerCase() } : {}),
  }
}

const OPCODE_NAMES: Record<number, string> = { 0: 'QUERY', 15: 'RESERVED15' }

/** Everything wrong with a reply to probe `p`, as short tags (empty: the reply passes). */
function problems(p: Probe, r: DigResult): string[] {
  const i = inspect(r)
  const out: string[] = []
  const opcode = p.opcode ?? 0
  const version = p.edns
  const serverCookie = i.cookie !== undefined && i.cookie.length >= 32 && i.cookie.length <= 80

  if (r.status === '') return ['no-reply']
  if (i.opcode !== OPCODE_NAMES[opcode]) out.push(`opcode:${i.opcode}`)

  // Rcode.
  if (version !== undefined && version > 0) {
    if (r.status !== 'BADVERS') out.push(r.status)
  } else if (opcode !== 0) {
    if (r.status !== 'NOTIMP') out.push(r.status)
  } else if (r.status !== 'NOERROR' && !(p.cookie && r.status === 'BADCOOKIE' && serverCookie)) {
    out.push(r.status)
  }

  // OPT presence and content.
  if (version !== undefined && !i.opt) out.push('noopt')
  if (version === undefined && i.opt) out.push('opt')
  if (i.opt && i.opt.version !== 0) out.push('version-not-zero')
  if (i.opt && i.opt.mbz !== 0) out.push('mbz')
  if (i.unknownOptions.includes(100)) out.push('echoed')
  if (p.cookie && i.cookie !== undefined && (!serverCookie || !i.cookie.startsWith(CLIENT_COOKIE))) {
    out.push('cookie-mismatch')
  }

  // Sections.
  const soaInAnswer = r.answer.some((a) => a.type === 'SOA' && a.name.toLowerCase() === `${ZONE}.`)
  if (p.qtype === 'SOA' && (version ?? 0) === 0 && p.fitIn === undefined && r.status === 'NOERROR' && !soaInAnswer) {
    out.push('nosoa')
  }
  if (soaInAnswer && ((version ?? 0) > 0 || r.status !== 'NOERROR')) out.push('soa')
  if (opcode !== 0) {
    if (p.qtype === undefined && i.counts.query !== 0) out.push('non-empty-question-section')
    if (i.counts.answer !== 0) out.push('non-empty-answer-section')
    if (i.counts.authority !== 0) out.push('non-empty-authority-section')
    if (i.counts.additional !== (version === undefined ? 0 : 1)) out.push('non-empty-additional-section')
  }

  // Header flags.
  const has = (f: string) => r.flags.has(f)
  if (!has('aa') && opcode === 0 && (version ?? 0) === 0 && r.status === 'NOERROR') out.push('noaa')
  if (has('aa') && opcode !== 0) out.push('aa')
  if (has('ra')) out.push('ra')
  if (has('rd') && (opcode !== 0 || !p.rd)) out.push('rd')
  if (!has('rd') && p.rd && opcode === 0) out.push('nord')
  if (has('ad') && (opcode !== 0 || (!p.ad && !p.dnssecOk))) out.push('ad')
  if (has('cd') && (opcode !== 0 || !p.cd)) out.push('cd')
  if (i.headerMbz) out.push('z')

  // Size, when truncated replies are accepted as they are.
  if (p.fitIn !== undefined && r.size > p.fitIn) out.push('toobig')
  return out
}

async function run(p: Probe): Promise<{ r: DigResult; problems: string[] }> {
  const r = await q(...p.args)
  return { r, problems: problems(p, r) }
}

/** The command line a person would type to reproduce a probe (for failure messages and docs). */
function cmd(p: Probe): string {
  return `dig @127.0.0.1 -p PORT +norec ${p.args.join(' ')}`
}

// genreport's default set: what DNS Flag Day 2019 graded ("EDNS" group).
const EDNS_GROUP: readonly Probe[] = [
  { test: 'dns', args: ['+noedns', '+noad', 'SOA', ZONE], qtype: 'SOA' },
  { test: 'edns', args: ['+edns=0', '+nocookie', '+noad', 'SOA', ZONE], qtype: 'SOA', edns: 0 },
  {
    test: 'edns1',
    args: ['+edns=1', '+noednsneg', '+nocookie', '+noad', 'SOA', ZONE],
    qtype: 'SOA',
    edns: 1,
  },
  {
    test: 'edns@512',
    args: ['+edns=0', '+nocookie', '+noad', '+dnssec', '+ignore', '+bufsize=512', 'DNSKEY', ZONE],
    qtype: 'DNSKEY',
    edns: 0,
    dnssecOk: true,
    fitIn: 512,
  },
  {
    test: 'ednsopt',
    args: ['+edns=0', '+nocookie', '+noad', '+ednsopt=100', 'SOA', ZONE],
    qtype: 'SOA',
    edns: 0,
  },
  {
    test: 'edns1opt',
    args: ['+edns=1', '+noednsneg', '+nocookie', '+noad', '+ednsopt=100', 'SOA', ZONE],
    qtype: 'SOA',
    edns: 1,
  },
  {
    test: 'do',
    args: ['+edns=0', '+nocookie', '+noad', '+dnssec', 'SOA', ZONE],
    qtype: 'SOA',
    edns: 0,
    dnssecOk: true,
  },
  {
    test: 'ednsflags',
    args: ['+edns=0', '+nocookie', '+noad', '+ednsflags=0x0080', 'SOA', ZONE],
    qtype: 'SOA',
    edns: 0,
  },
  {
    test: 'optlist',
    args: ['+edns=0', '+noad', '+nsid', '+subnet=0.0.0.0/0', '+expire', `+cookie=${CLIENT_COOKIE}`, 'SOA', ZONE],
    qtype: 'SOA',
    edns: 0,
    cookie: true,
  },
  {
    test: 'ednstcp',
    args: ['+edns=0', '+nocookie', '+noad', '+dnssec', '+bufsize=512', '+tcp', 'DNSKEY', ZONE],
    qtype: 'DNSKEY',
    edns: 0,
    dnssecOk: true,
  },
]

// genreport -f ("FULL" group): header flags, unknown opcode and type, TCP, options one by one.
const FULL_GROUP: readonly Probe[] = [
  { test: 'aa', args: ['+noedns', '+noad', '+aaflag', 'SOA', ZONE], qtype: 'SOA' },
  { test: 'ad', args: ['+noedns', '+ad', 'SOA', ZONE], qtype: 'SOA', ad: true },
  { test: 'cd', args: ['+noedns', '+noad', '+cd', 'SOA', ZONE], qtype: 'SOA', cd: true },
  { test: 'ra', args: ['+noedns', '+noad', '+raflag', 'SOA', ZONE], qtype: 'SOA' },
  { test: 'rd', args: ['+noedns', '+noad', '+rec', 'SOA', ZONE], qtype: 'SOA', rd: true },
  { test: 'tc', args: ['+noedns', '+noad', '+tcflag', 'SOA', ZONE], qtype: 'SOA' },
  { test: 'zflag', args: ['+noedns', '+noad', '+zflag', 'SOA', ZONE], qtype: 'SOA' },
  { test: 'opcode', args: ['+noedns', '+noad', '+header-only', '+opcode=15'], opcode: 15 },
  { test: 'type666', args: ['+noedns', '+noad', 'TYPE666', ZONE], qtype: 'TYPE666' },
  { test: 'tcp', args: ['+noedns', '+noad', '+tcp', 'SOA', ZONE], qtype: 'SOA' },
  {
    test: 'docd',
    args: ['+edns=0', '+nocookie', '+noad', '+dnssec', '+cd', 'SOA', ZONE],
    qtype: 'SOA',
    edns: 0,
    dnssecOk: true,
    cd: true,
  },
  {
    test: 'edns1do',
    args: ['+edns=1', '+noednsneg', '+nocookie', '+noad', '+dnssec', 'SOA', ZONE],
    qtype: 'SOA',
    edns: 1,
    dnssecOk: true,
  },
  { test: 'ednsnsid', args: ['+edns=0', '+nocookie', '+noad', '+nsid', 'SOA', ZONE], qtype: 'SOA', edns: 0 },
  {
    test: 'ednscookie',
    args: ['+edns=0', '+noad', `+cookie=${CLIENT_COOKIE}`, 'SOA', ZONE],
    qtype: 'SOA',
    edns: 0,
    cookie: true,
  },
  { test: 'ednsexpire', args: ['+edns=0', '+nocookie', '+noad', '+expire', 'SOA', ZONE], qtype: 'SOA', edns: 0 },
  {
    test: 'ednssubnet',
    args: ['+edns=0', '+nocookie', '+noad', '+subnet=0.0.0.0/0', 'SOA', ZONE],
    qtype: 'SOA',
    edns: 0,
  },
  {
    test: 'edns1nsid',
    args: ['+edns=1', '+noednsneg', '+nocookie', '+noad', '+nsid', 'SOA', ZONE],
    qtype: 'SOA',
    edns: 1,
  },
  {
    test: 'edns1cookie',
    args: ['+edns=1', '+noednsneg', '+noad', `+cookie=${CLIENT_COOKIE}`, 'SOA', ZONE],
    qtype: 'SOA',
    edns: 1,
    cookie: true,
  },
  {
    test: 'edns1expire',
    args: ['+edns=1', '+noednsneg', '+nocookie', '+noad', '+expire', 'SOA', ZONE],
    qtype: 'SOA',
    edns: 1,
  },
  {
    test: 'edns1subnet',
    args: ['+edns=1', '+noednsneg', '+nocookie', '+noad', '+subnet=0.0.0.0/0', 'SOA', ZONE],
    qtype: 'SOA',
    edns: 1,
  },
]

// genreport -f "opcodeflg": unknown opcode with every header flag set (tc rd ra cd ad aa z).
const OPCODEFLG: Probe = {
  test: 'opcodeflg',
  args: ['+noedns', '+header-only', '+opcode=15', '+tcflag', '+rec', '+raflag', '+cd', '+ad', '+aaflag', '+zflag'],
  opcode: 15,
  rd: true,
  cd: true,
  ad: true,
}

// genreport -c ("COMM" group): what BIND 9.11's named and dig send.
const COMM_GROUP: readonly Probe[] = [
  {
    test: 'bind11',
    args: ['+edns=0', `+cookie=${CLIENT_COOKIE}`, '+noad', '+dnssec', 'SOA', ZONE],
    qtype: 'SOA',
    edns: 0,
    dnssecOk: true,
    cookie: true,
  },
  {
    test: 'dig11',
    args: ['+edns=0', `+cookie=${CLIENT_COOKIE}`, '+ad', '+rec', 'SOA', ZONE],
    qtype: 'SOA',
    edns: 0,
    cookie: true,
    rd: true,
    ad: true,
  },
]

// genreport -t ("TYPE" group): a plain query for each of these types at the apex. Numeric forms so
// that no dig version's mnemonic table matters (MD=3 ... DLV=32769, then the unassigned 1000).
const TYPE_GROUP: ReadonlyArray<readonly [string, number]> = [
  ['A', 1],
  ['NS', 2],
  ['MD', 3],
  ['MF', 4],
  ['CNAME', 5],
  ['SOA', 6],
  ['MB', 7],
  ['MG', 8],
  ['MR', 9],
  ['NULL', 10],
  ['WKS', 11],
  ['PTR', 12],
  ['HINFO', 13],
  ['MINFO', 14],
  ['MX', 15],
  ['TXT', 16],
  ['RP', 17],
  ['AFSDB', 18],
  ['X25', 19],
  ['ISDN', 20],
  ['RT', 21],
  ['NSAP', 22],
  ['NSAP-PTR', 23],
  ['SIG', 24],
  ['KEY', 25],
  ['PX', 26],
  ['GPOS', 27],
  ['AAAA', 28],
  ['LOC', 29],
  ['NXT', 30],
  ['SRV', 33],
  ['NAPTR', 35],
  ['KX', 36],
  ['CERT', 37],
  ['A6', 38],
  ['DNAME', 39],
  ['APL', 42],
  ['DS', 43],
  ['SSHFP', 44],
  ['IPSECKEY', 45],
  ['RRSIG', 46],
  ['NSEC', 47],
  ['DNSKEY', 48],
  ['DHCID', 49],
  ['NSEC3', 50],
  ['NSEC3PARAM', 51],
  ['TLSA', 52],
  ['SMIMEA', 53],
  ['HIP', 55],
  ['CDS', 59],
  ['CDNSKEY', 60],
  ['OPENPGPKEY', 61],
  ['SPF', 99],
  ['NID', 104],
  ['L32', 105],
  ['L64', 106],
  ['LP', 107],
  ['EUI48', 108],
  ['EUI64', 109],
  ['URI', 256],
  ['CAA', 257],
  ['AVC', 258],
  ['DOA', 259],
  ['DLV', 32769],
  ['TYPE1000', 1000],
]

describe('genreport EDNS group (the DNS Flag Day 2019 checks)', () => {
  it.each(EDNS_GROUP.map((p) => [p.test, p] as const))('%s', async (_name, p) => {
    const { r, problems: bad } = await run(p)
    expect(bad, `${cmd(p)}\n${r.raw}`).toEqual([])
  })

  it('plain DNS: NOERROR, AA, the SOA, and no OPT in the reply', async () => {
    const r = await q('+noedns', 'SOA', ZONE)
    expect(r.status).toBe('NOERROR')
    expect(r.flags.has('aa')).toBe(true)
    expect(r.answer.map((a) => a.type)).toEqual(['SOA'])
    expect(r.opt).toEqual([])
  })

  it('EDNS version 0: OPT version 0 echoed with the SOA', async () => {
    const r = await q('+edns=0', '+nocookie', 'SOA', ZONE)
    expect(r.status).toBe('NOERROR')
    expect(inspect(r).opt).toMatchObject({ version: 0, mbz: 0 })
    expect(r.answer.map((a) => a.type)).toEqual(['SOA'])
  })

  it('EDNS version 1: BADVERS with an OPT of version 0 and an empty answer (RFC 6891 6.1.3)', async () => {
    for (const extra of [[], ['+ednsopt=100'], ['+dnssec'], ['+ednsflags=0x80']]) {
      const r = await q('+edns=1', '+noednsneg', '+nocookie', ...extra, 'SOA', ZONE)
      expect(r.status, extra.join(' ')).toBe('BADVERS')
      expect(inspect(r).opt, extra.join(' ')).toMatchObject({ version: 0, mbz: 0 })
      expect(r.answer, extra.join(' ')).toEqual([])
      expect(inspect(r).unknownOptions, extra.join(' ')).toEqual([])
    }
  })

  it('unknown EDNS option: ignored, answered as if absent, not echoed (RFC 6891 6.1.2)', async () => {
    for (const opt of ['+ednsopt=100', '+ednsopt=100:abcdef', '+ednsopt=65001:00', '+ednsopt=65535']) {
      const r = await q('+edns=0', '+nocookie', opt, 'SOA', ZONE)
      expect(r.status, opt).toBe('NOERROR')
      expect(
        r.answer.map((a) => a.type),
        opt,
      ).toEqual(['SOA'])
      expect(inspect(r).unknownOptions, opt).toEqual([])
    }
  })

  it('unknown EDNS flag: answered, and cleared in the reply ("Z bits must be zero", RFC 6891 6.1.4)', async () => {
    for (const flags of ['0x0080', '0x4000', '0x7fff']) {
      const r = await q('+edns=0', '+nocookie', `+ednsflags=${flags}`, 'SOA', ZONE)
      expect(r.status, flags).toBe('NOERROR')
      expect(
        r.answer.map((a) => a.type),
        flags,
      ).toEqual(['SOA'])
      expect(inspect(r).opt?.mbz, flags).toBe(0)
      expect(r.opt.join('\n'), flags).not.toContain('MBZ')
    }
  })

  it('DNSSEC OK: the DO bit is copied into the reply (RFC 3225 3), also with an unknown flag beside it', async () => {
    const r = await q('+edns=0', '+nocookie', '+dnssec', 'SOA', ZONE)
    expect(inspect(r).opt?.flags).toEqual(new Set(['do']))
    const mixed = await q('+edns=0', '+nocookie', '+dnssec', '+ednsflags=0x0080', 'SOA', ZONE)
    expect(inspect(mixed).opt).toMatchObject({ flags: new Set(['do']), mbz: 0 })
    const without = await q('+edns=0', '+nocookie', 'SOA', ZONE)
    expect(inspect(without).opt?.flags).toEqual(new Set())
  })

  it('EDNS over TCP: OPT echoed, full answer', async () => {
    const r = await q('+edns=0', '+nocookie', '+dnssec', '+bufsize=512', '+tcp', 'SOA', ZONE)
    expect(r.transport).toBe('TCP')
    expect(r.status).toBe('NOERROR')
    expect(inspect(r).opt).toMatchObject({ version: 0, mbz: 0, flags: new Set(['do']) })
    expect(r.answer.map((a) => a.type)).toEqual(['SOA'])
  })

  it('truncation at 512 with DO: a large answer sets TC, fits 512 bytes and keeps the OPT', async () => {
    // 40 A records (~680 bytes) cannot fit the 512 bytes the client offers.
    const r = await q('+edns=0', '+nocookie', '+dnssec', '+bufsize=512', '+ignore', 'big.example.org', 'A')
    expect(r.transport).toBe('UDP')
    expect(r.status).toBe('NOERROR')
    expect(r.flags.has('tc')).toBe(true)
    expect(r.size).toBeLessThanOrEqual(512)
    expect(inspect(r).opt).toMatchObject({ version: 0, mbz: 0, flags: new Set(['do']) })
    // ...and dig's retry over TCP gets everything.
    const full = await q('+edns=0', '+nocookie', '+dnssec', '+bufsize=512', 'big.example.org', 'A')
    expect(full.transport).toBe('TCP')
    expect(full.answer).toHaveLength(40)
  })

  it('an EDNS buffer size below 512 counts as 512 (RFC 6891 6.2.5)', async () => {
    // The NS answer with glue is over 100 bytes but well under 512: no truncation.
    const r = await q('+edns=0', '+nocookie', '+bufsize=100', '+ignore', 'NS', ZONE)
    expect(r.size).toBeGreaterThan(100)
    expect(r.flags.has('tc')).toBe(false)
    expect(r.answer).toHaveLength(2)
  })
})

describe('genreport FULL group', () => {
  it.each(FULL_GROUP.map((p) => [p.test, p] as const))('%s', async (_name, p) => {
    const { r, problems: bad } = await run(p)
    expect(bad, `${cmd(p)}\n${r.raw}`).toEqual([])
  })

  // genreport's opcodeflg grades CD on a reply to a non-QUERY opcode as a failure ("cd"); Knot
  // clears it too. Regression test for the copy errorResponse used to make.
  it('opcodeflg: unknown opcode with every flag set gets NOTIMP with CD clear', async () => {
    const r = await q(...OPCODEFLG.args)
    expect(r.status).toBe('NOTIMP')
    expect(r.flags.has('cd')).toBe(false)
  })

  // genreport's reading: RD on a reply to a non-QUERY opcode is a failure ("rd"); for an opcode we
  // do not implement, the flag bits may mean something else, so none is echoed.
  it('opcodeflg: unknown opcode with every flag set gets NOTIMP with RD clear', async () => {
    const r = await q(...OPCODEFLG.args)
    expect(r.status).toBe('NOTIMP')
    expect(r.flags.has('rd')).toBe(false)
  })

  it('opcodeflg: every other flag (aa ra ad tc z) is clear and the sections are empty', async () => {
    const r = await q(...OPCODEFLG.args)
    expect(problems(OPCODEFLG, r).filter((t) => t !== 'rd' && t !== 'cd')).toEqual([])
    expect(r.flags.has('tc')).toBe(false)
  })

  it('opcode 15 with EDNS: NOTIMP, and the OPT is still echoed (RFC 6891 7)', async () => {
    const p: Probe = {
      test: 'opcode+edns',
      args: ['+edns=0', '+nocookie', '+header-only', '+opcode=15'],
      opcode: 15,
      edns: 0,
    }
    const r = await q(...p.args)
    expect(r.status).toBe('NOTIMP')
    expect(inspect(r).opt).toMatchObject({ version: 0, mbz: 0 })
    expect(problems(p, r)).toEqual([])
  })

  it('opcode 15 with a question: NOTIMP, no records, OPT only when the query had one', async () => {
    const plain = await q('+noedns', '+opcode=15', 'SOA', ZONE)
    expect(plain.status).toBe('NOTIMP')
    expect(plain.answer).toEqual([])
    expect(plain.authority).toEqual([])
    expect(plain.opt).toEqual([])
    expect(plain.flags.has('aa')).toBe(false)
    const withOpt = await q('+edns=0', '+nocookie', '+opcode=15', 'SOA', ZONE)
    expect(withOpt.status).toBe('NOTIMP')
    expect(inspect(withOpt).opt).toMatchObject({ version: 0 })
    expect(withOpt.answer).toEqual([])
  })

  it('unusual types: NOERROR/NODATA with the SOA, never FORMERR or NOTIMP (RFC 3597, RFC 8906 8.1.2)', async () => {
    for (const type of ['TYPE666', 'TYPE1000', 'TYPE65280', 'TYPE65535']) {
      const r = await q('+noedns', type, ZONE)
      expect(r.status, type).toBe('NOERROR')
      expect(r.flags.has('aa'), type).toBe(true)
      expect(r.answer, type).toEqual([])
      expect(
        r.authority.map((a) => a.type),
        type,
      ).toEqual(['SOA'])
    }
  })

  it('RD is echoed when set and RA is never set, with or without recursion desired', async () => {
    for (const rec of ['+rec', '+norec']) {
      for (const [name, type, status] of [
        [ZONE, 'SOA', 'NOERROR'],
        ['nope.example.org', 'A', 'NXDOMAIN'],
        ['www.example.net', 'A', 'REFUSED'],
      ] as const) {
        for (const edns of ['+noedns', '+edns=0']) {
          const what = `${rec} ${edns} ${name} ${type}`
          const r = await q(edns, rec, name, type)
          expect(r.status, what).toBe(status)
          expect(r.flags.has('ra'), what).toBe(false)
          expect(r.flags.has('rd'), what).toBe(rec === '+rec')
        }
      }
    }
    const badvers = await q('+rec', '+edns=1', '+noednsneg', 'SOA', ZONE)
    expect(badvers.flags.has('ra')).toBe(false)
    const notimp = await q('+rec', '+opcode=15', '+header-only')
    expect(notimp.flags.has('ra')).toBe(false)
  })
})

describe('genreport COMM group', () => {
  it.each(COMM_GROUP.map((p) => [p.test, p] as const))('%s', async (_name, p) => {
    const { r, problems: bad } = await run(p)
    expect(bad, `${cmd(p)}\n${r.raw}`).toEqual([])
  })
})

describe('DNS cookies (RFC 7873): option 10 ignored or answered correctly', () => {
  it('+nocookie: no COOKIE in the reply', async () => {
    const r = await q('+edns=0', '+nocookie', 'SOA', ZONE)
    expect(inspect(r).cookie).toBeUndefined()
    expect(r.status).toBe('NOERROR')
  })

  it.each([
    ['dig default client cookie', ['+cookie']],
    ['fixed client cookie', [`+cookie=${CLIENT_COOKIE}`]],
    ['client cookie plus a made-up server cookie', [`+cookie=${CLIENT_COOKIE}1122334455667788`]],
  ])('%s: NOERROR with the SOA; a COOKIE reply, if any, echoes the client cookie', async (_name, args) => {
    const r = await q('+edns=0', ...args, 'SOA', ZONE)
    expect(r.status).toBe('NOERROR')
    expect(r.answer.map((a) => a.type)).toEqual(['SOA'])
    const cookie = inspect(r).cookie
    if (cookie !== undefined) {
      expect(cookie.length).toBeGreaterThanOrEqual(32)
      expect(cookie.length).toBeLessThanOrEqual(80)
      if (args[0] !== '+cookie') expect(cookie.startsWith(CLIENT_COOKIE)).toBe(true)
    }
  })
})

describe('genreport TYPE group', () => {
  it('answers a plain query for every listed type with NOERROR, AA and no OPT', async () => {
    const failures: string[] = []
    const queue = [...TYPE_GROUP]
    const worker = async () => {
      for (let next = queue.shift(); next; next = queue.shift()) {
        const [name, code] = next
        const p: Probe = { test: name, args: ['+noedns', '+noad', `TYPE${code}`, ZONE], qtype: name }
        const { problems: bad } = await run(p)
        if (bad.length > 0) failures.push(`${name} (TYPE${code}): ${bad.join(',')}`)
      }
    }
    await Promise.all([worker(), worker(), worker(), worker()])
    expect(failures.sort()).toEqual([])
  })
})

describe('the grader itself', () => {
  it('flags every fault of a badly behaved reply (dig 9.18 output format)', () => {
    const raw = [
      ';; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 1',
      ';; flags: qr ra ad; MBZ: 0x4; QUERY: 1, ANSWER: 0, AUTHORITY: 1, ADDITIONAL: 1',
      '',
      ';; OPT PSEUDOSECTION:',
      '; EDNS: version: 1, flags:; MBZ: 0x0080, udp: 4096',
      '; OPT=100:',
      '; COOKIE: 1111111111111111aabbccddeeff0011 (bad)',
      ';; QUESTION SECTION:',
      ';example.org.\t\t\tIN\tSOA',
      '',
      ';; AUTHORITY SECTION:',
      'example.org.\t\t120\tIN\tSOA\tns1.example.org. hostmaster.example.org. 1 2 3 4 5',
      '',
      ';; SERVER: 127.0.0.1#53(127.0.0.1) (UDP)',
      ';; MSG SIZE  rcvd: 600',
    ].join('\n')
    const p: Probe = { test: 'optlist', args: [], qtype: 'SOA', edns: 0, cookie: true }
    expect(problems(p, parseDig(raw))).toEqual([
      'version-not-zero',
      'mbz',
      'echoed',
      'cookie-mismatch',
      'nosoa',
      'noaa',
      'ra',
      'ad',
      'z',
    ])
    expect(problems({ ...p, fitIn: 512 }, parseDig(raw))).toContain('toobig')
    expect(problems({ test: 'dns', args: [], qtype: 'SOA' }, parseDig(raw))).toContain('opt')
  })
})
