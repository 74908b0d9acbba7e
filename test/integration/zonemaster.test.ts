/**
 * Zonemaster (the .se/.fr registries' delegation checker, Debian package `zonemaster-cli`) run
 * against two instances of our server, in undelegated mode (`--ns`): ns1.example.com on
 * 127.53.0.1:53 and ns2.example.com on 127.53.0.2:53, serving test/fixtures/zonemaster/zones.
 *
 * Zonemaster only talks to port 53, and on its own it looks up the parent zone, reverse DNS and
 * ASNs from the real root servers. So test/fixtures/zonemaster/run.sh runs everything inside a
 * private network namespace (`unshare --net`: loopback is the only interface, port 53 is free,
 * nothing can leave the machine) and gives Zonemaster root hints naming a third instance of our
 * server on 127.53.0.3:53 that serves a stand-in root zone (the example.com delegation and PTRs
 * for the two addresses). Every query stays on loopback.
 *
 * The zone is clean, so nothing at WARNING or above may appear except what loopback addresses
 * cause by nature (ALLOWED below, each named). A negative control serves an inconsistent zone on
 * ns2 and checks that Zonemaster notices, so a pass means something.
 *
 * A second suite runs Zonemaster on the shipped zone, zones/example.com.yaml (static records, pools,
 * services, checks), copied byte for byte into a temporary directory: nothing in it is rewritten.
 * Its name servers have documentation addresses (ns1.example.com 192.0.2.53, ns2.example.com
 * 2001:db8::53) that exist nowhere, so test/fixtures/zonemaster/run-zone.sh puts them on the
 * loopback interface of the private network namespace and serves the zone there, IPv6 included;
 * the stand-in root, generated from the zone, holds its delegation, glue and PTRs.
 *
 * Needs root (for the network namespace) and zonemaster-cli + dig (apt-get install zonemaster-cli
 * bind9-dnsutils); skips with the reason otherwise. By hand, see docs/conformance.md.
 */

import { spawn, spawnSync } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { isIPv4, isIPv6 } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readZoneFile } from '../../src/config/zone-file.ts'
import { nameToString } from '../../src/dns/name.ts'
import { T } from '../../src/dns/types.ts'
import { rdataToString } from '../../src/zone/rdata.ts'
import { FIXTURES } from '../helpers/server.ts'

const DIR = join(FIXTURES, 'zonemaster')
const RUN = join(DIR, 'run.sh')
const RUN_ZONE = join(DIR, 'run-zone.sh')
const SHIPPED = new URL('../../zones/example.com.yaml', import.meta.url).pathname

interface ZmMessage {
  readonly level: string
  readonly module: string
  readonly testcase: string
  readonly tag: string
  readonly args: Record<string, unknown>
}

/**
 * WARNING-or-worse messages a clean zone still gets, and why. Only these, for these addresses.
 * - ADDRESS01 NAMESERVER_IP_PRIVATE_NETWORK (ERROR): the name servers are in 127.0.0.0/8, which
 *   IANA's special-purpose registry marks as not globally reachable. Unavoidable on loopback.
 */
const ALLOWED = [
  'ERROR ADDRESS01 NAMESERVER_IP_PRIVATE_NETWORK ns_ip=127.53.0.1',
  'ERROR ADDRESS01 NAMESERVER_IP_PRIVATE_NETWORK ns_ip=127.53.0.2',
]

/**
 * NOTICE messages of the clean run, and why (not failures; listed so that a new one is seen):
 * - DNSSEC07 NEITHER_DNSKEY_NOR_DS, NOT_SIGNED: the zone is unsigned (gslb does not sign).
 * - DELEGATION01 NO_IPV6_NS_CHILD, NO_IPV6_NS_DEL: this run is IPv4-only (--no-ipv6; its name
 *   servers have no IPv6 address). The shipped-zone run below covers IPv6.
 */
const EXPECTED_NOTICES = [
  'DELEGATION01 NO_IPV6_NS_CHILD',
  'DELEGATION01 NO_IPV6_NS_DEL',
  'DNSSEC07 NEITHER_DNSKEY_NOR_DS',
  'UNSPECIFIED NOT_SIGNED',
]

function skipReason(): string | undefined {
  const zm = spawnSync('zonemaster-cli', ['--version'], { encoding: 'utf8' })
  if (zm.status !== 0) {
    return `zonemaster-cli is not installed (${zm.error?.message ?? `exit ${zm.status}`}); apt-get install zonemaster-cli`
  }
  if (spawnSync('dig', ['-v']).status !== 0) return 'dig is not installed; apt-get install bind9-dnsutils'
  if (process.getuid?.() !== 0) {
    return (
      'not root: Zonemaster only queries port 53, which this test binds (127.53.0.1-3:53) inside a ' +
      'private network namespace, and creating one needs root'
    )
  }
  const ns = spawnSync('unshare', ['--net', 'sh', '-c', 'ip link set lo up'], { encoding: 'utf8' })
  if (ns.status !== 0) {
    return (
      `cannot create a private network namespace with port 53 on loopback (unshare --net: ` +
      `${(ns.stderr || ns.error?.message || `exit ${ns.status}`).trim()}); the test never binds port 53 ` +
      `or lets Zonemaster run outside one, as Zonemaster would otherwise query the real root servers`
    )
  }
  return undefined
}

const SKIP = skipReason()
if (SKIP) console.warn(`zonemaster: skipped because ${SKIP}`)

/** Runs a script (run.sh, run-zone.sh) in a fresh network namespace; Zonemaster's messages at DEBUG and above. */
async function zonemaster(env: Record<string, string> = {}, script = RUN): Promise<ZmMessage[]> {
  const child = spawn('unshare', ['--net', 'sh', script, '--level', 'DEBUG', '--json'], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Own process group: on a timeout the servers started by run.sh go down with it.
    detached: true,
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString()
  })
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString()
  })
  const timer = setTimeout(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL')
    } catch {
      // already gone
    }
  }, 100_000)
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  clearTimeout(timer)
  if (code !== 0) throw new Error(`${script} exited ${code}\nstdout:\n${out}\nstderr:\n${err}`)
  return JSON.parse(out) as ZmMessage[]
}

const key = (m: ZmMessage) => `${m.testcase} ${m.tag}`
const atLeastWarning = (m: ZmMessage) => ['WARNING', 'ERROR', 'CRITICAL'].includes(m.level)

/** Test cases that started but are missing from a run: every one that applies to an unsigned zone. */
function missingTestCases(messages: readonly ZmMessage[]): string[] {
  // Many cases (connectivity, nameserver05 and 10-13, ...) log nothing below DEBUG when they pass.
  const started = new Set(messages.filter((m) => m.tag === 'TEST_CASE_START').map((m) => String(m.args['testcase'])))
  const range = (prefix: string, n: number) =>
    Array.from({ length: n }, (_, i) => `${prefix}${String(i + 1).padStart(2, '0')}`)
  const expected = [
    ...range('basic', 2),
    ...range('address', 3),
    ...range('connectivity', 3),
    ...range('consistency', 6),
    ...range('delegation', 7),
    ...range('nameserver', 13),
    ...range('syntax', 8),
    ...range('zone', 10),
  ]
  return expected.filter((t) => !started.has(t))
}

describe.skipIf(SKIP !== undefined)('Zonemaster, undelegated, against two gslb instances', () => {
  let clean: ZmMessage[]
  let skewed: ZmMessage[]

  beforeAll(async () => {
    clean = await zonemaster()
    skewed = await zonemaster({ NS2_ZONES: join(DIR, 'zones-skewed') })
  }, 240_000)

  it('reports nothing at WARNING or above but the loopback-address errors', () => {
    const found = clean.filter(atLeastWarning).map((m) => `${m.level} ${key(m)} ns_ip=${String(m.args['ns_ip'])}`)
    expect(found.sort()).toEqual(ALLOWED)
  })

  it('gives only the expected notices (unsigned zone, no IPv6)', () => {
    const notices = [...new Set(clean.filter((m) => m.level === 'NOTICE').map(key))].sort()
    expect(notices).toEqual(EXPECTED_NOTICES)
  })

  it('really exercised both servers (the passing checks say so)', () => {
    const tags = clean.map(key)
    for (const expected of [
      'BASIC01 HAS_PARENT', // the parent came from the stand-in root
      'BASIC02 HAS_NAMESERVERS',
      'ADDRESS02 NAMESERVERS_IP_WITH_REVERSE',
      'ADDRESS03 NAMESERVER_IP_PTR_MATCH',
      'CONSISTENCY01 ONE_SOA_SERIAL',
      'CONSISTENCY03 ONE_SOA_TIME_PARAMETER_SET',
      'CONSISTENCY04 ONE_NS_SET',
      'CONSISTENCY05 ADDRESSES_MATCH',
      'DELEGATION03 REFERRAL_SIZE_OK',
      'DELEGATION04 ARE_AUTHORITATIVE',
      'DELEGATION06 SOA_EXISTS',
      'NAMESERVER01 NO_RECURSOR',
      'NAMESERVER02 EDNS0_SUPPORT',
      'NAMESERVER03 AXFR_FAILURE', // zone transfers refused, as they should be
      'NAMESERVER06 CAN_BE_RESOLVED',
      'NAMESERVER07 NO_UPWARD_REFERRAL',
      'NAMESERVER08 QNAME_CASE_SENSITIVE',
      'NAMESERVER09 CASE_QUERIES_RESULTS_OK',
      'ZONE06 SOA_DEFAULT_TTL_MAXIMUM_VALUE_OK',
      'ZONE09 Z09_MX_DATA',
    ]) {
      expect(tags, expected).toContain(expected)
    }
    for (const ns of ['ns1.example.com/127.53.0.1', 'ns2.example.com/127.53.0.2']) {
      expect(
        clean.filter((m) => m.tag === 'NO_RECURSOR').map((m) => m.args['ns']),
        ns,
      ).toContain(ns)
    }
  })

  it('ran every test case that applies to an unsigned zone', () => {
    expect(missingTestCases(clean)).toEqual([])
  })

  it('sent every query to our three servers on loopback, and only there', () => {
    // EXTERNAL_QUERY is Zonemaster's DEBUG record of a query it sends; IS_BLACKLISTED would mean a
    // server it tried did not answer (as the real root servers would not, from this namespace).
    const targets = clean.filter((m) => m.tag === 'EXTERNAL_QUERY').map((m) => String(m.args['ip']))
    expect([...new Set(targets)].sort()).toEqual(['127.53.0.1', '127.53.0.2', '127.53.0.3'])
    expect(clean.filter((m) => m.tag === 'IS_BLACKLISTED')).toEqual([])
  })

  it('notices an inconsistent zone on ns2 (negative control)', () => {
    const found = skewed.filter(atLeastWarning).map(key)
    expect(found).toContain('CONSISTENCY01 MULTIPLE_SOA_SERIALS')
    expect(skewed.map(key)).toContain('CONSISTENCY03 MULTIPLE_SOA_TIME_PARAMETER_SET')
  })
})

// ---------------------------------------------------------------------------------------------
// The shipped zone, zones/example.com.yaml

interface Nameserver {
  /** Without the trailing dot, as zonemaster-cli --ns and its messages write it. */
  readonly name: string
  readonly address: string
}

interface ZoneFacts {
  readonly domain: string
  readonly serial: string
  /** One entry per address of each apex NS target, from the zone's own A/AAAA records. */
  readonly nameservers: readonly Nameserver[]
  /** Where the zone's `self` health check probes (this server's own DNS port), as ADDR:PORT. */
  readonly selfCheck: string | undefined
}

/** Reads what the namespace must provide for a zone file: its name servers and their addresses. */
function zoneFacts(path: string): ZoneFacts {
  const zone = readZoneFile(path)
  if (zone.errors.length > 0 || zone.origin === undefined) {
    throw new Error(`${path} does not load: ${zone.errors.map((e) => e.message).join('; ')}`)
  }
  const apex = nameToString(zone.origin)
  const data = (owner: string, type: number) =>
    zone.records
      .filter((r) => r.type === type && nameToString(r.owner).toLowerCase() === owner.toLowerCase())
      .map((r) => rdataToString(r.type, r.rdata))
  const serial = data(apex, T.SOA)[0]?.split(/\s+/)[2]
  if (serial === undefined) throw new Error(`${path}: no SOA at the apex`)
  const nameservers = data(apex, T.NS).flatMap((target) => {
    const addresses = [...data(target, T.A), ...data(target, T.AAAA)]
    if (addresses.length === 0) {
      throw new Error(`${path}: name server ${target} has no address in the zone; run-zone.sh serves in-zone ones`)
    }
    return addresses.map((address) => ({ name: target.replace(/\.$/, ''), address }))
  })
  const self = zone.gslb.probes.find((p) => p.check.name === 'self')?.check
  const selfCheck =
    self?.address !== undefined && self.port !== undefined
      ? `${isIPv6(self.address) ? `[${self.address}]` : self.address}:${self.port}`
      : undefined
  return { domain: apex.replace(/\.$/, ''), serial, nameservers, selfCheck }
}

/** The in-addr.arpa / ip6.arpa name of an address, with the trailing dot. */
function reverseName(address: string): string {
  if (isIPv4(address)) return `${address.split('.').reverse().join('.')}.in-addr.arpa.`
  if (!isIPv6(address) || address.includes('.')) throw new Error(`cannot reverse ${address}`)
  const [head = '', tail] = address.split('::')
  const groups = (s: string) => (s === '' ? [] : s.split(':'))
  const before = groups(head)
  const after = tail === undefined ? [] : groups(tail)
  const all = [...before, ...Array<string>(8 - before.length - after.length).fill('0'), ...after]
  const nibbles = all.map((g) => g.padStart(4, '0')).join('')
  return `${[...nibbles].reverse().join('.')}.ip6.arpa.`
}

/**
 * The stand-in root for a zone (as root/root.zone is for the purpose-made one): the zone's
 * delegation with glue for every name server address, and a PTR for each address.
 */
function rootZone(facts: ZoneFacts): string {
  const names = [...new Set(facts.nameservers.map((ns) => ns.name))]
  return [
    `; Stand-in root for Zonemaster on ${facts.domain}, generated by test/integration/zonemaster.test.ts.`,
    '$ORIGIN .',
    '$TTL 86400',
    '@ SOA a.root.test. hostmaster.root.test. 2026112401 1800 900 604800 86400',
    '@ NS a.root.test.',
    'a.root.test. A 127.53.0.3',
    ...names.map((name) => `${facts.domain}. NS ${name}.`),
    ...facts.nameservers.map((ns) => `${ns.name}. ${isIPv6(ns.address) ? 'AAAA' : 'A'} ${ns.address}`),
    ...facts.nameservers.map((ns) => `${reverseName(ns.address)} PTR ${ns.name}.`),
    '',
  ].join('\n')
}

const shippedFacts = zoneFacts(SHIPPED)

function ipv6SkipReason(): string | undefined {
  if (!shippedFacts.nameservers.some((ns) => isIPv6(ns.address))) return undefined
  const probe = 'ip link set lo up && ip -6 addr add 2001:db8::1/128 dev lo nodad'
  const ns = spawnSync('unshare', ['--net', 'sh', '-c', probe], { encoding: 'utf8' })
  if (ns.status === 0) return undefined
  return (
    `the shipped zone has an IPv6 name server, and a private network namespace here cannot put an IPv6 ` +
    `address on loopback (${(ns.stderr || ns.error?.message || `exit ${ns.status}`).trim()})`
  )
}

const SKIP_SHIPPED = SKIP ?? ipv6SkipReason()
if (SKIP_SHIPPED && !SKIP) console.warn(`zonemaster (shipped zone): skipped because ${SKIP_SHIPPED}`)

/**
 * WARNING-or-worse messages the shipped zone gets however good it is, and why: ADDRESS01
 * NAMESERVER_IP_PRIVATE_NETWORK (ERROR) for each name server address. The example uses the
 * documentation ranges (RFC 5737 192.0.2.0/24, RFC 3849 2001:db8::/32) on purpose, and IANA's
 * special-purpose registry marks them not globally reachable: the same notice the loopback run
 * gets for 127.53.0.x. A real deployment replaces the addresses, and the notice with them.
 */
const shippedAllowed = (facts: ZoneFacts) =>
  facts.nameservers.map((ns) => `ERROR ADDRESS01 NAMESERVER_IP_PRIVATE_NETWORK ns_ip=${ns.address}`)

/**
 * What Zonemaster may find wrong with zones/example.com.yaml, at WARNING or above, besides the
 * documentation addresses: nothing. (It once found DELEGATION01 NOT_ENOUGH_IPV4/IPV6_NS: each name
 * server had one address family only; both now have an A and an AAAA record.)
 */
const SHIPPED_FINDINGS: string[] = []

/**
 * NOTICE messages of the shipped zone, and why (not failures; listed so that a new one is seen):
 * - DNSSEC07 NEITHER_DNSKEY_NOR_DS, NOT_SIGNED: the zone is unsigned (gslb does not sign).
 * (No NO_IPV6_NS notices: this run has IPv6. The SOA refresh is 14400 s, as ZONE02 recommends.)
 */
const SHIPPED_NOTICES = ['DNSSEC07 NEITHER_DNSKEY_NOR_DS', 'UNSPECIFIED NOT_SIGNED']

describe.skipIf(SKIP_SHIPPED !== undefined)('Zonemaster on the shipped zone (zones/example.com.yaml)', () => {
  let tmp: string
  let shipped: ZmMessage[]
  const facts = shippedFacts

  beforeAll(async () => {
    // The zone file byte for byte (its checks, pools and services included), and a root for it.
    tmp = mkdtempSync(join(tmpdir(), 'gslb-zonemaster-'))
    mkdirSync(join(tmp, 'zones'))
    mkdirSync(join(tmp, 'root'))
    copyFileSync(SHIPPED, join(tmp, 'zones', 'example.com.yaml'))
    writeFileSync(join(tmp, 'root', 'root.zone'), rootZone(facts))
    shipped = await zonemaster(
      {
        ZM_DOMAIN: facts.domain,
        ZM_ZONES: join(tmp, 'zones'),
        ZM_ROOT: join(tmp, 'root'),
        ZM_NS: facts.nameservers.map((ns) => `${ns.name}/${ns.address}`).join(' '),
        // The `self` check probes the server's own port (127.0.0.1:5300, as under `npm start`), so the
        // pools are up as they are under `npm start`. Zonemaster asks for none of the service names.
        ZM_EXTRA_LISTEN: facts.selfCheck ?? '',
      },
      RUN_ZONE,
    )
  }, 120_000)

  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true })
  })

  it('served the shipped file unchanged, on its own name server addresses', () => {
    expect(readFileSync(join(tmp, 'zones', 'example.com.yaml'))).toEqual(readFileSync(SHIPPED))
    expect(new Set(facts.nameservers.map((ns) => ns.name)).size).toBeGreaterThanOrEqual(2)
    // Zonemaster saw the shipped SOA serial on every server.
    const serials = shipped.filter((m) => m.tag === 'ONE_SOA_SERIAL').map((m) => String(m.args['serial']))
    expect(serials).toEqual([facts.serial])
  })

  it('reports nothing at WARNING or above but the documentation-address errors and the pinned findings', () => {
    const found = shipped
      .filter(atLeastWarning)
      .map((m) => `${m.level} ${key(m)}${m.args['ns_ip'] === undefined ? '' : ` ns_ip=${String(m.args['ns_ip'])}`}`)
    expect(found.sort()).toEqual([...shippedAllowed(facts), ...SHIPPED_FINDINGS].sort())
    // The address errors are for the documentation ranges, nothing else.
    for (const m of shipped.filter((m) => m.tag === 'NAMESERVER_IP_PRIVATE_NETWORK')) {
      expect(String(m.args['name']), String(m.args['ns_ip'])).toMatch(/^Documentation/)
    }
  })

  it('gives only the expected notices (unsigned zone, SOA refresh)', () => {
    const notices = [...new Set(shipped.filter((m) => m.level === 'NOTICE').map(key))].sort()
    expect(notices).toEqual(SHIPPED_NOTICES)
  })

  it('really exercised both servers, over IPv4 and IPv6', () => {
    const tags = shipped.map(key)
    for (const expected of [
      'BASIC01 HAS_PARENT',
      'ADDRESS02 NAMESERVERS_IP_WITH_REVERSE',
      'ADDRESS03 NAMESERVER_IP_PTR_MATCH',
      'CONSISTENCY01 ONE_SOA_SERIAL',
      'CONSISTENCY03 ONE_SOA_TIME_PARAMETER_SET',
      'CONSISTENCY04 ONE_NS_SET',
      'CONSISTENCY05 ADDRESSES_MATCH',
      'DELEGATION03 REFERRAL_SIZE_OK',
      'DELEGATION04 ARE_AUTHORITATIVE',
      'DELEGATION07 NAMES_MATCH',
      'NAMESERVER02 EDNS0_SUPPORT',
      'NAMESERVER03 AXFR_FAILURE',
      'NAMESERVER04 SAME_SOURCE_IP',
      'NAMESERVER07 NO_UPWARD_REFERRAL',
      'NAMESERVER09 CASE_QUERIES_RESULTS_OK',
      'SYNTAX06 RNAME_RFC822_VALID',
      'ZONE08 MX_RECORD_IS_NOT_CNAME',
      'ZONE09 Z09_MX_DATA',
    ]) {
      expect(tags, expected).toContain(expected)
    }
    const noRecursor = shipped.filter((m) => m.tag === 'NO_RECURSOR').map((m) => String(m.args['ns']))
    expect(noRecursor.sort()).toEqual(facts.nameservers.map((ns) => `${ns.name}/${ns.address}`).sort())
    expect(missingTestCases(shipped)).toEqual([])
  })

  it('sent every query to the name servers and the stand-in root in the namespace, and only there', () => {
    const targets = shipped.filter((m) => m.tag === 'EXTERNAL_QUERY').map((m) => String(m.args['ip']))
    expect([...new Set(targets)].sort()).toEqual(['127.53.0.3', ...facts.nameservers.map((ns) => ns.address)].sort())
    expect(shipped.filter((m) => m.tag === 'IS_BLACKLISTED')).toEqual([])
  })
})
