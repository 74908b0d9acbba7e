/**
 * Zone files that must not load, each paired with the file, line, field and message it must
 * report; and zones that load with warnings. Files are written to a temp directory and read with
 * readZoneFile, then checked with validateZone, as `gslb check` does.
 */

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { readZoneFile } from '../../../src/config/zone-file.ts'
import { loadFile } from '../../../src/config/zone-set.ts'
import { parseName } from '../../../src/dns/name.ts'
import { T } from '../../../src/dns/types.ts'
import type { ZoneError } from '../../../src/errors.ts'
import { validateServicesSteps, validateZone, type ZoneData } from '../../../src/zone/validate.ts'

const base = mkdtempSync(join(tmpdir(), 'gslb-validate-'))
afterAll(() => rmSync(base, { recursive: true, force: true }))

interface Loaded {
  readonly path: string
  readonly dir: string
  readonly errors: readonly ZoneError[]
  readonly warnings: readonly ZoneError[]
  readonly zone: ZoneData | undefined
}

/**
 * Writes `files` (name -> lines) into a fresh directory, with the zone directory at `zones/`, and
 * loads `zones/<file>`. Paths in `files` are relative to the directory above `zones/`.
 */
function load(file: string, lines: readonly string[], files: Record<string, readonly string[]> = {}): Loaded {
  const dir = mkdtempSync(join(base, 'case-'))
  const zones = join(dir, 'zones')
  mkdirSync(zones)
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true })
    writeFileSync(join(dir, name), text.join('\n') + '\n')
  }
  const path = join(zones, file)
  writeFileSync(path, lines.join('\n') + '\n')
  const read = readZoneFile(path, zones)
  if (read.errors.length > 0 || !read.origin) return { path, dir, errors: read.errors, warnings: [], zone: undefined }
  const v = validateZone(read.origin, path, read.records)
  return { path, dir, errors: v.errors, warnings: v.warnings, zone: v.zone }
}

/** "line field" for each problem, the shape the tables below compare. */
const where = (errs: readonly ZoneError[]): string[] => errs.map((e) => `${e.line} ${e.field}`)

/** A minimal good master file for example.com: lines 1-4. */
const HEAD = [
  '$TTL 300',
  '@ 3600 SOA ns1 hostmaster 2026010101 7200 3600 1209600 60',
  '@ 3600 NS ns1',
  'ns1 A 192.0.2.1',
]

/** The same zone as YAML, records starting on line 4. */
const YAML_HEAD = [
  'zone: example.com',
  'ttl: 300',
  'records: |',
  '  @ 3600 SOA ns1 hostmaster 2026010101 7200 3600 1209600 60',
  '  @ 3600 NS ns1',
  '  ns1 A 192.0.2.1',
]

describe('zone files that do not load', () => {
  const cases: Array<{
    name: string
    file?: string
    lines: readonly string[]
    /** Every problem reported, as "line field". */
    problems: string[]
    /** Substring of the first problem's message. */
    message: string
  }> = [
    {
      name: 'a CNAME beside an A record',
      lines: [...HEAD, 'www A 192.0.2.10', 'www CNAME ns1'],
      problems: ['5 CNAME'],
      message: 'www.example.com. has a CNAME and A data',
    },
    {
      name: 'a CNAME followed by TXT at the same name',
      lines: [...HEAD, 'www CNAME ns1', 'www TXT "x"'],
      problems: ['6 CNAME'],
      message: 'has a CNAME and TXT data',
    },
    {
      name: 'a CNAME at the apex (beside SOA and NS)',
      lines: [...HEAD, '@ CNAME www.example.net.'],
      problems: ['2 CNAME', '3 CNAME'],
      message: 'a CNAME must stand alone',
    },
    {
      name: 'two CNAMEs at one name',
      lines: [...HEAD, 'www CNAME ns1', 'www CNAME ns2'],
      problems: ['5 CNAME'],
      message: 'more than one CNAME',
    },
    {
      name: 'an owner outside the zone',
      lines: [...HEAD, 'www.example.net. A 192.0.2.10'],
      problems: ['5 owner'],
      message: 'www.example.net. is outside the zone example.com.',
    },
    {
      name: 'an owner that only ends like the zone (notexample.com)',
      lines: [...HEAD, 'www.notexample.com. A 192.0.2.10'],
      problems: ['5 owner'],
      message: 'is outside the zone',
    },
    {
      name: 'no SOA',
      lines: ['$TTL 300', '@ NS ns1', 'ns1 A 192.0.2.1'],
      problems: ['1 SOA'],
      message: 'has no SOA record at its apex',
    },
    {
      name: 'no NS at the apex',
      lines: ['$TTL 300', 'ns1 A 192.0.2.1', '@ 3600 SOA ns1 hostmaster 1 7200 3600 1209600 60'],
      problems: ['3 NS'],
      message: 'the apex has no NS records',
    },
    {
      name: 'two different SOA records',
      lines: [...HEAD, '@ 3600 SOA ns1 hostmaster 2026010102 7200 3600 1209600 60'],
      problems: ['2 SOA'],
      message: 'more than one SOA',
    },
    {
      name: 'a SOA below the apex',
      lines: [...HEAD, 'sub 3600 SOA ns1 hostmaster 1 7200 3600 1209600 60'],
      problems: ['5 SOA'],
      message: 'SOA record at sub.example.com., not at the apex',
    },
    {
      name: 'a DNAME',
      lines: [...HEAD, 'old DNAME example.net.'],
      problems: ['5 type'],
      message: 'DNAME records are not supported',
    },
    {
      name: 'a TTL of 2^31',
      lines: [...HEAD, 'www 2147483648 A 192.0.2.10'],
      problems: ['5 TTL'],
      message: 'expected a TTL 0..2147483647',
    },
    {
      name: 'a $TTL beyond 2^31 - 1',
      lines: ['$TTL 4294967296', ...HEAD.slice(1)],
      problems: ['1 $TTL'],
      message: 'got "4294967296"',
    },
    {
      name: 'an IPv4 address with a 256',
      lines: [...HEAD, 'www A 192.0.2.256'],
      problems: ['5 A address'],
      message: 'expected an IPv4 address, got "192.0.2.256"',
    },
    {
      name: 'an IPv4 address with three parts',
      lines: [...HEAD, 'www A 192.0.2'],
      problems: ['5 A address'],
      message: 'expected an IPv4 address',
    },
    {
      name: 'an IPv6 address with a non-hex digit',
      lines: [...HEAD, 'www AAAA 2001:db8::g'],
      problems: ['5 AAAA address'],
      message: 'expected an IPv6 address, got "2001:db8::g"',
    },
    {
      name: 'an IPv4 address in an AAAA record',
      lines: [...HEAD, 'www AAAA 192.0.2.1'],
      problems: ['5 AAAA address'],
      message: 'expected an IPv6 address',
    },
    {
      name: 'an unknown type mnemonic',
      lines: [...HEAD, 'www FOO bar'],
      problems: ['5 type'],
      message: 'unknown type "FOO"',
    },
    {
      name: 'every problem in one file, not just the first',
      lines: [...HEAD, 'www A 192.0.2.256', 'www FOO bar', 'x 99999999999 A 192.0.2.1'],
      problems: ['5 A address', '6 type', '7 TTL'],
      message: 'expected an IPv4 address',
    },
    {
      name: 'an unknown YAML key (reported on the key line)',
      file: 'example.com.yaml',
      lines: ['zone: example.com', 'ttl: 300', 'recrods: |', '  @ 3600 SOA ns1 hostmaster 1 7200 3600 1209600 60'],
      problems: ['3 recrods'],
      message: 'unknown key; known keys: zone',
    },
    {
      name: 'a YAML syntax error (a nested mapping on one line)',
      file: 'example.com.yaml',
      lines: ['zone: example.com', 'ttl: 300: 5', ...YAML_HEAD.slice(2)],
      problems: ['2 yaml'],
      message: 'Nested mappings are not allowed',
    },
    {
      name: 'a YAML tab used as indentation',
      file: 'example.com.yaml',
      lines: ['zone: example.com', 'ttl: 300', '\tfoo: 1', ...YAML_HEAD.slice(2)],
      problems: ['3 yaml'],
      message: 'Tabs are not allowed',
    },
    {
      name: 'a YAML duplicate key',
      file: 'example.com.yaml',
      lines: [...YAML_HEAD, 'ttl: 600'],
      problems: ['7 yaml'],
      message: 'Map keys must be unique',
    },
    {
      name: 'records in a folded block scalar',
      file: 'example.com.yaml',
      lines: ['zone: example.com', 'ttl: 300', 'records: >', ...YAML_HEAD.slice(3)],
      problems: ['3 records'],
      message: 'use a literal block (records: |), not a folded one (>)',
    },
    {
      name: 'records as a YAML list',
      file: 'example.com.yaml',
      lines: ['zone: example.com', 'records:', '  - "@ SOA ns1 hostmaster 1 2 3 4 5"'],
      problems: ['2 records'],
      message: 'expected a single value, not a list or mapping',
    },
    {
      name: 'a zone name with an empty label',
      file: 'example.com.yaml',
      lines: ['ttl: 300', 'zone: exa..mple.com', ...YAML_HEAD.slice(2)],
      problems: ['2 zone'],
      message: 'empty label',
    },
    {
      name: 'a zone name with a 64-byte label',
      file: 'example.com.yaml',
      lines: [`zone: ${'a'.repeat(64)}.com`, ...YAML_HEAD.slice(1)],
      problems: ['1 zone'],
      message: 'label longer than 63 bytes',
    },
    {
      name: 'a YAML ttl that is not a TTL',
      file: 'example.com.yaml',
      lines: ['zone: example.com', 'ttl: forever', ...YAML_HEAD.slice(2)],
      problems: ['2 ttl'],
      message: 'got "forever"',
    },
    {
      name: 'a YAML zone without records',
      file: 'example.com.yaml',
      lines: ['zone: example.com', 'ttl: 300'],
      problems: ['1 records'],
      message: 'missing; a zone needs at least its SOA and NS records',
    },
    {
      name: 'a YAML document that is a list',
      file: 'example.com.yaml',
      lines: ['- zone: example.com'],
      problems: ['1 yaml'],
      message: 'must be a mapping',
    },
  ]

  it.each(cases)('reports $name', ({ file, lines, problems, message }) => {
    const r = load(file ?? 'example.com.zone', lines)
    expect(r.zone).toBeUndefined()
    expect(where(r.errors)).toEqual(problems)
    expect(r.errors.every((e) => e.file === r.path)).toBe(true)
    expect(r.errors[0]!.detail).toContain(message)
    // The message carries its own position, so logs and `gslb check` show where to look.
    expect(r.errors[0]!.message).toBe(`${r.path}:${r.errors[0]!.line}: ${r.errors[0]!.field}: ${r.errors[0]!.detail}`)
  })

  it('reports a missing file as an error on line 0, not an exception', () => {
    const path = join(base, 'nope.example.zone')
    const r = readZoneFile(path)
    expect(where(r.errors)).toEqual(['0 file'])
    expect(r.errors[0]!.detail).toContain('ENOENT')
  })
})

describe('line numbers inside a YAML records block', () => {
  it.each([
    {
      name: 'a record error four lines into the block',
      lines: [...YAML_HEAD, '  www A 192.0.2.10', '  bad A 192.0.2.300'],
      problems: ['8 A address'],
    },
    {
      name: 'a record error after comments and blank lines above and inside the block',
      lines: [
        '# example.com, served by gslb',
        '',
        'zone: example.com',
        'ttl: 300',
        '# the records',
        'records: |',
        '  ; SOA first',
        '  @ 3600 SOA ns1 hostmaster 2026010101 7200 3600 1209600 60',
        '',
        '  @ 3600 NS ns1',
        '  ns1 A 192.0.2.1',
        '  ( broken',
      ],
      problems: ['12 syntax'],
    },
    {
      name: 'a validation error (CNAME conflict) inside the block',
      lines: [...YAML_HEAD, '  www A 192.0.2.10', '  www CNAME ns1'],
      problems: ['7 CNAME'],
    },
    {
      name: 'a record after a multi-line SOA in parentheses',
      lines: [
        'zone: example.com',
        'records: |',
        '  $TTL 300',
        '  @ 3600 SOA ns1 hostmaster (',
        '        2026010101 7200 3600',
        '        1209600 60 )',
        '  @ NS ns1',
        '  ns1 A 192.0.2.1',
        '  www AAAA 2001:db8::zz',
      ],
      problems: ['9 AAAA address'],
    },
    {
      name: 'records as the first key, with the zone after it',
      lines: ['records: |', ...YAML_HEAD.slice(3), '  www A 1.2.3', 'zone: example.com', 'ttl: 300'],
      problems: ['5 A address'],
    },
    {
      name: 'a block header with a chomping indicator (records: |-)',
      lines: ['zone: example.com', 'ttl: 300', 'records: |-', ...YAML_HEAD.slice(3), '  www A 1.2.3'],
      problems: ['7 A address'],
    },
  ])('maps $name to the real file line', ({ lines, problems }) => {
    const r = load('example.com.yaml', lines)
    expect(where(r.errors)).toEqual(problems)
  })

  it('gives loaded records their real file lines too', () => {
    const r = load('example.com.yaml', ['# comment', ...YAML_HEAD, '  www A 192.0.2.10'])
    expect(r.errors).toEqual([])
    const www = r.zone!.nodes.get(parseName('www.example.com.').key)!.get(T.A)!
    expect(www.pos).toEqual({ file: r.path, line: 8 })
    expect(r.zone!.soa.pos.line).toBe(5)
  })
})

describe('zones that load with warnings', () => {
  it.each([
    {
      name: 'a TTL that differs within one RRset',
      lines: [...HEAD, 'www 300 A 192.0.2.10', 'www 600 A 192.0.2.11'],
      warnings: ['6 TTL'],
      message: 'TTL 600 differs from 300 used earlier for www.example.com. A (line 5); using 300',
    },
    {
      name: 'data below a delegation (occluded)',
      lines: [...HEAD, 'sub NS ns1.sub', 'ns1.sub A 192.0.2.53', 'www.sub TXT "hidden"'],
      warnings: ['7 owner'],
      message: 'www.sub.example.com. TXT is below the delegation at sub.example.com. and is ignored',
    },
    {
      name: 'non-glue data at a delegation point',
      lines: [...HEAD, 'sub NS ns1.sub', 'ns1.sub A 192.0.2.53', 'sub MX 10 mail'],
      warnings: ['7 owner'],
      message: 'sub.example.com. MX is below the delegation at sub.example.com.',
    },
    {
      name: 'a delegation to an in-domain server without glue',
      lines: [...HEAD, 'sub NS ns1.sub', 'sub NS ns.example.net.'],
      warnings: ['5 NS'],
      message: 'delegation sub.example.com. to ns1.sub.example.com. has no glue address',
    },
    {
      name: 'NS records at a wildcard',
      lines: [...HEAD, '* NS ns1'],
      warnings: ['5 NS'],
      message: 'NS records at a wildcard name have undefined meaning',
    },
  ])('warns about $name and still loads the zone', ({ lines, warnings, message }) => {
    const r = load('example.com.zone', lines)
    expect(r.errors).toEqual([])
    expect(r.zone).toBeDefined()
    expect(where(r.warnings)).toEqual(warnings)
    expect(r.warnings[0]!.detail).toContain(message)
  })

  it('keeps the first TTL for the whole RRset', () => {
    const r = load('example.com.zone', [...HEAD, 'www 300 A 192.0.2.10', 'www 600 A 192.0.2.11'])
    const set = r.zone!.nodes.get(parseName('www.example.com.').key)!.get(T.A)!
    expect(set.ttl).toBe(300)
    expect(set.rdatas).toHaveLength(2)
  })

  it('drops occluded data but keeps glue below the cut', () => {
    const r = load('example.com.zone', [...HEAD, 'sub NS ns1.sub', 'ns1.sub A 192.0.2.53', 'ns1.sub TXT "no"'])
    const node = r.zone!.nodes.get(parseName('ns1.sub.example.com.').key)!
    expect([...node.keys()]).toEqual([T.A])
  })

  it('does not warn about glue-less delegations to servers outside the child', () => {
    const r = load('example.com.zone', [...HEAD, 'sub NS ns1', 'sub NS ns.example.net.'])
    expect(r.warnings).toEqual([])
  })

  it('collapses exact duplicate records silently (an RRset is a set)', () => {
    const r = load('example.com.zone', [...HEAD, 'www A 192.0.2.10', 'WWW A 192.0.2.10'])
    expect(r.warnings).toEqual([])
    expect(r.zone!.nodes.get(parseName('www.example.com.').key)!.get(T.A)!.rdatas).toHaveLength(1)
  })

  it('reads the serial from the SOA', () => {
    expect(load('example.com.zone', HEAD).zone!.serial).toBe(2026010101)
  })
})

describe('$INCLUDE', () => {
  it('reads an included file inside the zone directory, with that file and its lines in positions', () => {
    const r = load('example.com.zone', [...HEAD, '$INCLUDE hosts.inc'], {
      'zones/hosts.inc': ['; hosts', 'www A 192.0.2.10', 'www A 999.0.0.1'],
    })
    expect(where(r.errors)).toEqual(['3 A address'])
    expect(r.errors[0]!.file).toBe(join(r.dir, 'zones', 'hosts.inc'))
  })

  it('reads an include from a subdirectory of the zone directory', () => {
    const r = load('example.com.zone', [...HEAD, '$INCLUDE common/hosts.inc'], {
      'zones/common/hosts.inc': ['www A 192.0.2.10'],
    })
    expect(r.errors).toEqual([])
    expect(r.zone!.nodes.has(parseName('www.example.com.').key)).toBe(true)
  })

  it.each([
    { name: 'a parent-relative path', include: '../secret.inc' },
    { name: 'a path that climbs out through a subdirectory', include: 'sub/../../secret.inc' },
  ])('rejects $name outside the zone directory', ({ include }) => {
    const r = load('example.com.zone', [...HEAD, `$INCLUDE ${include}`], {
      'secret.inc': ['leaked TXT "top secret"'],
      'zones/sub/.keep': [''],
    })
    expect(where(r.errors)).toEqual(['5 $INCLUDE'])
    expect(r.errors[0]!.detail).toContain('is outside the zone directory')
    expect(r.errors[0]!.message).not.toContain('top secret')
  })

  it('rejects an absolute path outside the zone directory', () => {
    const outside = join(base, 'outside.inc')
    writeFileSync(outside, 'leaked TXT "top secret"\n')
    const r = load('example.com.zone', [...HEAD, `$INCLUDE ${outside}`])
    expect(where(r.errors)).toEqual(['5 $INCLUDE'])
    expect(r.errors[0]!.detail).toContain('is outside the zone directory')
  })

  it('rejects an include outside the zone directory from a YAML records block too', () => {
    const r = load('example.com.yaml', [...YAML_HEAD, '  $INCLUDE ../secret.inc'], { 'secret.inc': ['x TXT "y"'] })
    expect(where(r.errors)).toEqual(['7 $INCLUDE'])
  })

  // Regression: src/config/zone-file.ts includeReader tests `rel.startsWith('..')`, so a file inside the
  // zone directory whose name merely starts with two dots (`..shared.inc`) is rejected as "outside
  // the zone directory". The check should compare path segments (rel === '..' or
  // rel.startsWith('..' + sep)).
  it('accepts a file inside the zone directory whose name starts with two dots', () => {
    const r = load('example.com.zone', [...HEAD, '$INCLUDE ..shared.inc'], {
      'zones/..shared.inc': ['www A 192.0.2.10'],
    })
    expect(r.errors).toEqual([])
  })
})

describe('services that collide with the zone data', () => {
  /** A YAML zone with a delegation (sub), `extra` record lines from line 9 on, and a service per owner. */
  function gslbZone(extra: readonly string[], owners: readonly string[]): string[] {
    return [
      ...YAML_HEAD,
      '  sub 3600 NS ns1.sub',
      '  ns1.sub A 192.0.2.2',
      ...extra.map((l) => `  ${l}`),
      'pools:',
      '  p:',
      '    endpoints:',
      '      e1: { address: 192.0.2.10 }',
      'services:',
      ...owners.map((o) => `  ${o}: { pools: [p], chain: [weighted] }`),
    ]
  }

  function loadAll(lines: readonly string[]): ReturnType<typeof loadFile> {
    const l = load('example.com.yaml', lines)
    return loadFile(l.path, dirname(l.path))
  }

  it('rejects a service at a name with a static A, AAAA or CNAME, or at or below a delegation, with file, line and field', () => {
    const owners = ['www', 'mail', 'alias', 'sub', 'deep.sub', 'fine']
    const lines = gslbZone(['www A 192.0.2.3', 'mail AAAA 2001:db8::3', 'alias CNAME www'], owners)
    const res = loadAll(lines)
    expect(res.zone).toBeUndefined()
    const lineOf = (owner: string): number => lines.findIndex((l) => l.startsWith(`  ${owner}:`)) + 1
    expect(res.errors.map((e) => [e.line, e.field, e.message])).toEqual([
      [lineOf('www'), 'services.www.example.com.', expect.stringContaining('also has a static A record (line 9)')],
      [lineOf('mail'), 'services.mail.example.com.', expect.stringContaining('static AAAA record (line 10)')],
      [lineOf('alias'), 'services.alias.example.com.', expect.stringContaining('static CNAME record (line 11)')],
      [
        lineOf('sub'),
        'services.sub.example.com.',
        expect.stringContaining('at or below the delegation sub.example.com.'),
      ],
      [lineOf('deep.sub'), 'services.deep.sub.example.com.', expect.stringContaining('delegation sub.example.com.')],
    ])
    expect(res.errors.every((e) => e.file.endsWith('example.com.yaml'))).toBe(true)
    expect(loadAll(gslbZone([], ['fine', 'other'])).zone?.services).toHaveLength(2)
  })

  it('checks services in steps of a few (a live reload answers between them), finding a conflict at the end', () => {
    const owners = Array.from({ length: 200 }, (_, i) => `svc-${i}`)
    const l = load('example.com.yaml', gslbZone(['svc-199 A 192.0.2.4'], owners))
    const read = readZoneFile(l.path, dirname(l.path))
    const steps = validateServicesSteps(l.zone!, read.gslb.services)
    let yields = 0
    let r = steps.next()
    for (; !r.done; r = steps.next()) yields++
    expect(yields).toBeGreaterThanOrEqual(200 / 8)
    expect(r.value.map((e) => e.field)).toEqual(['services.svc-199.example.com.'])
  })
})
