/**
 * The fast YAML reader (config/yaml-fast) must give exactly what `yaml`'s parseDocument gives
 * (values, scalar types, flow flags, the line of every node) or decline with undefined, so the
 * caller falls back to `yaml`. Checked on hand-written edge cases, on every YAML file in the
 * repository, and on generated documents.
 */

import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { isMap, isScalar, isSeq, LineCounter, parseDocument } from 'yaml'
import { readFastYaml } from '../../../src/config/yaml-fast.ts'
import { seededRandom } from '../../../src/policy/random.ts'
import { runSync } from '../../../src/zone/cooperative.ts'

/** A document as plain data: what consumers read, with each node's line. */
function shape(node: unknown, lc: LineCounter): unknown {
  const range = (node as { range?: [number, number, number] } | null)?.range
  const line = range ? lc.linePos(range[0]).line : undefined
  if (isMap(node))
    return { map: node.items.map((p) => [shape(p.key, lc), shape(p.value, lc)]), flow: !!node.flow, line }
  if (isSeq(node)) return { seq: node.items.map((i) => shape(i, lc)), flow: !!node.flow, line }
  if (isScalar(node)) return { value: node.value, type: node.type, line }
  return { other: String(node) }
}

function both(text: string): { yaml: unknown; fast: unknown; yamlErrors: number } {
  const lc1 = new LineCounter()
  const doc = parseDocument(text, { lineCounter: lc1, prettyErrors: false, uniqueKeys: true })
  const lc2 = new LineCounter()
  const fast = runSync(readFastYaml(text, lc2))
  return {
    yaml: shape(doc.contents, lc1),
    fast: fast === undefined ? undefined : shape(fast, lc2),
    yamlErrors: doc.errors.length,
  }
}

/** Either the same document as yaml (which must accept it), or undefined. */
function expectSameOrDeclined(text: string): 'same' | 'declined' {
  const r = both(text)
  if (r.fast === undefined) return 'declined'
  expect(r.yamlErrors, `fast reader accepted a document yaml rejects:\n${text}`).toBe(0)
  expect(r.fast, text).toEqual(r.yaml)
  return 'same'
}

const ACCEPTED: Record<string, string> = {
  'plain mapping with every core scalar type': [
    'zone: example.com   # comment',
    'ttl: 300',
    'neg: -121.89',
    'exp: 1e3',
    'hex: 0x1F',
    'oct: 0o17',
    'yes: true',
    'no: False',
    'nothing: ~',
    'empty:',
    'addr: 2001:db8::1',
    'v4: 192.0.2.1',
    "single: 'it''s'",
    'double: "a # b"',
    '',
  ].join('\n'),
  'literal blocks with chomping and blank lines': [
    'records: |',
    '  @ SOA ns1 host 1 2 3 4 5',
    '',
    '    indented more',
    '  # not a comment inside a block',
    '',
    'strip: |-',
    '  a',
    'keep: |+',
    '  b',
    '',
    'after: 1',
    '',
  ].join('\n'),
  'nested mappings, sequences at and below their key': [
    'pools:',
    '  eu:',
    '    location: [50.11, 8.68]',
    '    endpoints:',
    '      eu-1: { address: [192.0.2.11, "2001:db8::1"], weight: 3 }',
    '      eu-2: 192.0.2.12',
    'services:',
    '  www:',
    '    chain:',
    '      - geo: { continents: { EU: eu }, default: us }',
    '      - weighted',
    '      - { first: 1 }',
    '      - failover:',
    '      - latency:',
    '          table: { eu: { eu: 10 } }',
    '    tests:',
    '    - { ecs: 81.2.69.0/24, expectPool: eu }',
    '    - client: 198.51.100.7',
    '      down: [eu-1, eu-2]',
    '    allDown: fail-open',
    '',
  ].join('\n'),
  'flow edge cases': [
    'a: {}',
    'b: []',
    'c: [x, "y", \'z\', 1, -2, { k: v }]',
    'd: { "quoted key": 1, plain: a:b }',
    'e: [a, b,]',
    '',
  ].join('\n'),
}

const DECLINED: Record<string, string> = {
  anchor: 'a: &x 1\nb: *x\n',
  tag: 'a: !!str 1\n',
  'complex key': '? a\n: b\n',
  'merge key': 'base: { a: 1 }\nother:\n  <<: { b: 2 }\n',
  folded: 'records: >\n  a\n  b\n',
  'multi-line plain scalar': 'a: one\n  two\n',
  'multi-line flow': 'a: [1,\n  2]\n',
  'escaped double quotes': 'a: "tab\\there"\n',
  tabs: 'a:\n\tb: 1\n',
  crlf: 'a: 1\r\nb: 2\r\n',
  'document marker': '---\na: 1\n',
  'duplicate key': 'a: 1\na: 2\n',
  'duplicate flow key': 'a: { b: 1, b: 2 }\n',
  'bad indentation': 'a:\n    b: 1\n  c: 2\n',
  'mapping in a plain value': 'a: b: c\n',
  'not a mapping at the root': '- a\n- b\n',
  'literal block without final newline': 'a: |\n  x',
  'indentation indicator': 'a: |2\n   x\n',
  'alias-looking key': '*.x: 1\n',
  'comment right after a flow collection': 'a: [1]#c\n',
}

describe('fast YAML reader', () => {
  for (const [name, text] of Object.entries(ACCEPTED)) {
    it(`reads ${name} exactly as yaml does`, () => {
      expect(expectSameOrDeclined(text)).toBe('same')
    })
  }

  for (const [name, text] of Object.entries(DECLINED)) {
    it(`leaves ${name} to yaml`, () => {
      expect(both(text).fast).toBeUndefined()
    })
  }

  it('reads every YAML file of the repository exactly as yaml does', () => {
    const root = new URL('../../../', import.meta.url).pathname
    const files: string[] = []
    const walk = (dir: string): void => {
      for (const e of readdirSync(dir)) {
        if (e === 'node_modules' || e.startsWith('.')) continue
        const p = join(dir, e)
        if (statSync(p).isDirectory()) walk(p)
        else if (/\.ya?ml$/.test(e)) files.push(p)
      }
    }
    for (const d of ['zones', 'test', 'docs']) walk(join(root, d))
    expect(files.length).toBeGreaterThan(3)
    let same = 0
    for (const f of files) if (expectSameOrDeclined(readFileSync(f, 'utf8')) === 'same') same++
    expect(same).toBeGreaterThan(0)
  })

  it('agrees with yaml on generated documents (or declines them)', () => {
    const rnd = seededRandom(7)
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!
    const scalars = [
      'a',
      'b-1',
      '1',
      '-1.5',
      'true',
      'null',
      '~',
      '"q"',
      "'s'",
      '192.0.2.1',
      '0x10',
      '2001:db8::5',
      'x#y',
    ]
    const keys = ['a', 'b', 'c', 'd', 'e', '"k"', '1']
    const value = (depth: number, indent: number): string[] => {
      const r = rnd()
      if (depth > 2 || r < 0.4) return [` ${pick(scalars)}${rnd() < 0.2 ? ' # note' : ''}`]
      if (r < 0.55) return [` [${Array.from({ length: Math.floor(rnd() * 3) }, () => pick(scalars)).join(', ')}]`]
      if (r < 0.7) return [` { ${pick(keys)}: ${pick(scalars)} }`]
      if (r < 0.85) {
        const pad = ' '.repeat(indent + 2)
        return ['', ...Array.from({ length: 1 + Math.floor(rnd() * 3) }, () => `${pad}- ${pick(scalars)}`)]
      }
      return ['', ...mapping(depth + 1, indent + 2)]
    }
    const mapping = (depth: number, indent: number): string[] => {
      const out: string[] = []
      for (let i = 0; i < 1 + Math.floor(rnd() * 4); i++) {
        const [first, ...rest] = value(depth, indent)
        out.push(`${' '.repeat(indent)}${pick(keys)}:${first}`, ...rest)
      }
      return out
    }
    let same = 0
    for (let n = 0; n < 400; n++) {
      if (expectSameOrDeclined(`${mapping(0, 0).join('\n')}\n`) === 'same') same++
    }
    // Most generated documents are in the subset; the rest (duplicate keys mostly) are declined.
    expect(same).toBeGreaterThan(100)
  })
})
