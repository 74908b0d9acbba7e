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
 * Needs root (for the network namespace) and zonemaster-cli + dig (apt-get install zonemaster-cli
 * bind9-dnsutils); skips with the reason otherwise. By hand, see docs/conformance.md.
 */

import { spawn, spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { FIXTURES } from '../helpers/server.ts'

const DIR = join(FIXTURES, 'zonemaster')
const RUN = join(DIR, 'run.sh')

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
 * - DELEGATION01 NO_IPV6_NS_CHILD, NO_IPV6_NS_DEL: IPv6 is off (--no-ipv6): loopback has a single
 *   IPv6 address (::1), so two distinct IPv6 name servers cannot exist here.
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

/** Runs run.sh in a fresh network namespace and returns Zonemaster's messages at DEBUG and above. */
async function zonemaster(env: Record<string, string> = {}): Promise<ZmMessage[]> {
  const child = spawn('unshare', ['--net', 'sh', RUN, '--level', 'DEBUG', '--json'], {
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
  if (code !== 0) throw new Error(`run.sh exited ${code}\nstdout:\n${out}\nstderr:\n${err}`)
  return JSON.parse(out) as ZmMessage[]
}

const key = (m: ZmMessage) => `${m.testcase} ${m.tag}`
const atLeastWarning = (m: ZmMessage) => ['WARNING', 'ERROR', 'CRITICAL'].includes(m.level)

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
    // Many cases (connectivity, nameserver05 and 10-13, ...) log nothing below DEBUG when they pass.
    const started = new Set(clean.filter((m) => m.tag === 'TEST_CASE_START').map((m) => String(m.args['testcase'])))
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
    expect(expected.filter((t) => !started.has(t))).toEqual([])
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
