import { describe, expect, it } from 'vitest'
import { nameToString, parseName } from '../../../src/dns/name.ts'
import { T, typeName } from '../../../src/dns/types.ts'
import type { MasterFileOptions } from '../../../src/zone/masterfile.ts'
import { MAX_INCLUDE_DEPTH, parseMasterFile, tokenize } from '../../../src/zone/masterfile.ts'
import { rdataToString } from '../../../src/zone/rdata.ts'
import type { RR } from '../../../src/zone/types.ts'
import { CLASS_IN } from '../../../src/zone/types.ts'

const ORIGIN = parseName('example.com.')

/** Joins lines so tests can show a zone file line by line. */
const zone = (...lines: string[]): string => lines.join('\n')

/** One record as a comparable line: "line owner ttl TYPE rdata". */
function show(rr: RR): string {
  return `${rr.pos.line} ${nameToString(rr.owner)} ${rr.ttl} ${typeName(rr.type)} ${rdataToString(rr.type, rr.rdata)}`
}

function parse(text: string, opts: Partial<MasterFileOptions> = {}) {
  const result = parseMasterFile(text, { file: 'db.example', origin: ORIGIN, defaultTtl: 3600, ...opts })
  return { ...result, shown: result.records.map(show), problems: result.errors.map((e) => e.message) }
}

/** The text of every token, per logical line. */
function texts(text: string, firstLine?: number): string[][] {
  return tokenize(text, firstLine).map((l) => l.tokens.map((t) => t.text))
}

describe('tokenize', () => {
  it('splits fields on spaces and tabs and drops comments', () => {
    expect(texts('www  300\tIN A 192.0.2.1 ; web server\n')).toEqual([['www', '300', 'IN', 'A', '192.0.2.1']])
  })

  it('skips blank and comment-only lines but keeps counting lines', () => {
    const lines = tokenize('\n; comment\n   \n\t; indented comment\nwww A 192.0.2.1\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]!.line).toBe(5)
    expect(lines[0]!.indented).toBe(false)
  })

  it('keeps quoted strings as one token marked quoted, with spaces, semicolons and parentheses inside', () => {
    const [line] = tokenize('txt TXT "a b; (c)" plain')
    expect(line!.tokens.map((t) => [t.text, t.quoted])).toEqual([
      ['txt', false],
      ['TXT', false],
      ['a b; (c)', true],
      ['plain', false],
    ])
  })

  it('keeps escapes unresolved in the token text, inside and outside quotes', () => {
    expect(texts('a\\ b\\;c "x\\"y" \\(d\\)')).toEqual([['a\\ b\\;c', 'x\\"y', '\\(d\\)']])
  })

  it('keeps an empty quoted string as a token', () => {
    const [line] = tokenize('t TXT ""')
    expect(line!.tokens[2]).toEqual({ text: '', quoted: true, line: 1 })
  })

  it('marks quoted "@" and "1h" as quoted so they are not special', () => {
    const [line] = tokenize('"@" "1h"')
    expect(line!.tokens.every((t) => t.quoted)).toBe(true)
  })

  it('joins lines inside parentheses into one entry that starts on the first line', () => {
    const lines = tokenize('x\n@ SOA ns host (\n  1 ; serial\n  2 3 ; timers\n  4 5 )\nnext A 1.2.3.4', 10)
    expect(lines.map((l) => l.line)).toEqual([10, 11, 15])
    expect(lines[1]!.tokens.map((t) => t.text)).toEqual(['@', 'SOA', 'ns', 'host', '1', '2', '3', '4', '5'])
    expect(lines[1]!.tokens.map((t) => t.line)).toEqual([11, 11, 11, 11, 12, 13, 13, 14, 14])
  })

  it('flags lines that start with whitespace as indented', () => {
    expect(tokenize('a A 1.2.3.4\n  A 5.6.7.8\n\tTXT x').map((l) => l.indented)).toEqual([false, true, true])
  })

  it('treats CR of CRLF line endings as whitespace', () => {
    expect(texts('a A 1.2.3.4\r\n  TXT x\r\n')).toEqual([
      ['a', 'A', '1.2.3.4'],
      ['TXT', 'x'],
    ])
  })

  it('reports an unbalanced closing parenthesis on its entry', () => {
    const lines = tokenize('a A 1.2.3.4 )\nb A 1.2.3.4')
    expect(lines[0]!.error).toContain('unbalanced ")"')
    expect(lines[1]!.error).toBeUndefined()
  })

  it('reports a parenthesis that is never closed at the line where the entry starts', () => {
    const lines = tokenize('a A 1.2.3.4\nb SOA ( 1 2\n3 4', 20)
    expect(lines[1]!.line).toBe(21)
    expect(lines[1]!.error).toBe('"(" opened on line 21 is never closed')
  })

  it('reports an unterminated quoted string and keeps going on the next line', () => {
    const lines = tokenize('a TXT "open\nb A 1.2.3.4')
    expect(lines[0]!.error).toContain('unterminated quoted string')
    expect(lines[1]!.tokens.map((t) => t.text)).toEqual(['b', 'A', '1.2.3.4'])
  })
})

describe('parseMasterFile records', () => {
  it('parses a realistic BIND-style zone', () => {
    const text = zone(
      '; example.com zone',
      '$TTL 1d',
      '$ORIGIN example.com.',
      '@       IN  SOA ns1.example.com. hostmaster.example.com. (',
      '            2024052001 ; serial',
      '            2h         ; refresh',
      '            30m        ; retry',
      '            2w         ; expire',
      '            1h )       ; negative caching',
      '        IN  NS  ns1',
      '        IN  NS  ns2.example.net.',
      '        IN  MX  10 mail',
      '        IN  TXT "v=spf1 mx -all"',
      'ns1     IN  A   192.0.2.53',
      'mail    300 IN  A 192.0.2.25',
      '        300 IN  AAAA 2001:db8::25',
      'www     IN  CNAME @',
      '_sip._tcp IN SRV 10 60 5060 sip',
      '@       IN  CAA 0 issue "letsencrypt.org"',
      '_443._tcp.www IN TLSA 3 1 1 (',
      '            0123456789abcdef0123456789abcdef',
      '            0123456789abcdef0123456789abcdef )',
    )
    const { records, errors, origin } = parseMasterFile(text, { file: 'db.example' })
    expect(errors).toEqual([])
    expect(origin && nameToString(origin)).toBe('example.com.')
    expect(records.map(show)).toEqual([
      '4 example.com. 86400 SOA ns1.example.com. hostmaster.example.com. 2024052001 7200 1800 1209600 3600',
      '10 example.com. 86400 NS ns1.example.com.',
      '11 example.com. 86400 NS ns2.example.net.',
      '12 example.com. 86400 MX 10 mail.example.com.',
      '13 example.com. 86400 TXT "v=spf1 mx -all"',
      '14 ns1.example.com. 86400 A 192.0.2.53',
      '15 mail.example.com. 300 A 192.0.2.25',
      '16 mail.example.com. 300 AAAA 2001:db8::25',
      '17 www.example.com. 86400 CNAME example.com.',
      '18 _sip._tcp.example.com. 86400 SRV 10 60 5060 sip.example.com.',
      '19 example.com. 86400 CAA 0 issue "letsencrypt.org"',
      '20 _443._tcp.www.example.com. 86400 TLSA 3 1 1 ' + '0123456789ABCDEF'.repeat(4),
    ])
  })

  it('fills in class IN, the file name and the line on every record', () => {
    const { records } = parse('\n\nwww A 192.0.2.1', { file: 'zones/a.zone' })
    expect(records).toHaveLength(1)
    expect(records[0]!.class).toBe(CLASS_IN)
    expect(records[0]!.pos).toEqual({ file: 'zones/a.zone', line: 3 })
    expect(records[0]!.rdata).toEqual(Buffer.from([192, 0, 2, 1]))
  })

  it('accepts TTL and class in either order, or either alone', () => {
    const { shown, problems } = parse(
      zone(
        'a 300 IN A 192.0.2.1',
        'b IN 300 A 192.0.2.2',
        'c IN A 192.0.2.3',
        'd 5m A 192.0.2.4',
        'e CLASS1 A 192.0.2.5',
      ),
    )
    expect(problems).toEqual([])
    expect(shown).toEqual([
      '1 a.example.com. 300 A 192.0.2.1',
      '2 b.example.com. 300 A 192.0.2.2',
      '3 c.example.com. 3600 A 192.0.2.3',
      '4 d.example.com. 300 A 192.0.2.4',
      '5 e.example.com. 3600 A 192.0.2.5',
    ])
  })

  it('accepts lowercase types and classes', () => {
    expect(parse('a in aaaa ::1').shown).toEqual(['1 a.example.com. 3600 AAAA ::1'])
  })

  it('reuses the previous owner on lines that start with whitespace, across comments and blank lines', () => {
    const { shown } = parse(zone('host A 192.0.2.1', '; comment', '', '  TXT "same owner"', '\tMX 5 @'))
    expect(shown).toEqual([
      '1 host.example.com. 3600 A 192.0.2.1',
      '4 host.example.com. 3600 TXT "same owner"',
      '5 host.example.com. 3600 MX 5 example.com.',
    ])
  })

  it('keeps the previous owner when the record after it has bad rdata', () => {
    const { shown, problems } = parse(zone('host A 999.1.1.1', '  A 192.0.2.1'))
    expect(problems).toEqual(['db.example:1: A address: expected an IPv4 address, got "999.1.1.1"'])
    expect(shown).toEqual(['2 host.example.com. 3600 A 192.0.2.1'])
  })

  it('does not let an indented line inherit an older owner past an owner that failed to parse', () => {
    const { shown, problems } = parse(zone('good A 192.0.2.1', 'bad..name A 192.0.2.2', '  A 192.0.2.3'))
    expect(shown).toEqual(['1 good.example.com. 3600 A 192.0.2.1'])
    expect(problems).toHaveLength(2)
    expect(problems[0]).toContain('db.example:2: owner: empty label')
    expect(problems[1]).toBe('db.example:3: owner: line starts with whitespace but the owner on line 2 is in error')
  })

  it('rejects an indented first record because there is no owner to reuse', () => {
    const { errors } = parse('  A 192.0.2.1')
    expect(errors.map((e) => [e.line, e.field])).toEqual([[1, 'owner']])
    expect(errors[0]!.detail).toContain('no previous owner')
  })

  it('reads @ as the origin, absolute names as written and relative names below the origin', () => {
    const { shown } = parse(zone('@ A 192.0.2.1', 'abs.other.org. A 192.0.2.2', 'a.b A 192.0.2.3'))
    expect(shown).toEqual([
      '1 example.com. 3600 A 192.0.2.1',
      '2 abs.other.org. 3600 A 192.0.2.2',
      '3 a.b.example.com. 3600 A 192.0.2.3',
    ])
  })

  it('decodes escapes in owner names, and a quoted "@" is a literal label', () => {
    const { records } = parse(zone('a\\.b A 192.0.2.1', '\\065bc A 192.0.2.2', '"@" A 192.0.2.3', 'sp\\ ace A 1.1.1.1'))
    expect(records.map((r) => nameToString(r.owner))).toEqual([
      'a\\.b.example.com.',
      'Abc.example.com.',
      '\\@.example.com.',
      'sp\\032ace.example.com.',
    ])
    expect(records[0]!.owner.labels).toBe(3)
    expect(records[0]!.owner.wire.subarray(0, 4)).toEqual(Buffer.from([3, 0x61, 0x2e, 0x62]))
  })

  it('treats quoted text in the TTL or class position as the type', () => {
    const { errors } = parse('a "1h" A 192.0.2.1')
    expect(errors.map((e) => [e.field, e.detail])).toEqual([['type', expect.stringContaining('unknown type "1h"')]])
  })

  it('parses TXT with escapes, several strings and unquoted words', () => {
    const { records } = parse('t TXT "a \\"b\\"" c\\;d "\\255" ""')
    expect(records[0]!.rdata).toEqual(
      Buffer.concat([Buffer.from('\x05a "b"', 'latin1'), Buffer.from('\x03c;d'), Buffer.from([1, 255, 0])]),
    )
  })

  it('parses a multi-line SOA with comments inside the parentheses and records after it', () => {
    const text = zone(
      '@ IN SOA ns1 hostmaster ( ; start',
      '  1   ; serial (not a paren)',
      '  ; a whole comment line inside',
      '  7200 3600 1209600',
      '  300',
      ') ; end',
      'www A 192.0.2.1',
    )
    const { shown, problems } = parse(text)
    expect(problems).toEqual([])
    expect(shown).toEqual([
      '1 example.com. 3600 SOA ns1.example.com. hostmaster.example.com. 1 7200 3600 1209600 300',
      '7 www.example.com. 3600 A 192.0.2.1',
    ])
  })

  it('accepts RFC 3597 generic records for unknown and known types', () => {
    const { shown, problems } = parse(
      zone('u TYPE65534 \\# 4 DEADBEEF', 'a TYPE1 \\# 4 C0000201', 'b A \\# 4 C0000202', 'e TYPE65280 \\# 0'),
    )
    expect(problems).toEqual([])
    expect(shown).toEqual([
      '1 u.example.com. 3600 TYPE65534 \\# 4 DEADBEEF',
      '2 a.example.com. 3600 A 192.0.2.1',
      '3 b.example.com. 3600 A 192.0.2.2',
      '4 e.example.com. 3600 TYPE65280 \\# 0',
    ])
  })

  it('parses DNAME and leaves accepting it to the caller', () => {
    const { records } = parse('old DNAME new.example.net.')
    expect(records.map((r) => [r.type, rdataToString(r.type, r.rdata)])).toEqual([[T.DNAME, 'new.example.net.']])
  })
})

describe('parseMasterFile TTLs', () => {
  it('takes the TTL from the record, then $TTL, then the default, then the SOA minimum', () => {
    const cases: { text: string; defaultTtl?: number; ttls: number[] }[] = [
      { text: zone('$TTL 60', 'a 30 A 192.0.2.1', 'b A 192.0.2.2'), defaultTtl: 90, ttls: [30, 60] },
      { text: zone('a A 192.0.2.1'), defaultTtl: 90, ttls: [90] },
      { text: zone('@ 10 SOA ns host 1 2 3 4 1h30m', 'a A 192.0.2.1'), ttls: [10, 5400] },
      { text: zone('@ SOA ns host 1 2 3 4 120', 'a A 192.0.2.1'), ttls: [120, 120] },
    ]
    for (const c of cases) {
      const { records, errors } = parseMasterFile(c.text, {
        file: 'z',
        origin: ORIGIN,
        ...(c.defaultTtl === undefined ? {} : { defaultTtl: c.defaultTtl }),
      })
      expect(errors).toEqual([])
      expect(
        records.map((r) => r.ttl),
        c.text,
      ).toEqual(c.ttls)
    }
  })

  it('reports a record with no TTL when there is no $TTL, no default and no SOA yet', () => {
    const result = parseMasterFile('a A 192.0.2.1', { file: 'z', origin: ORIGIN })
    expect(result.records).toEqual([])
    expect(result.errors.map((e) => [e.line, e.field, e.detail])).toEqual([
      [1, 'TTL', expect.stringContaining('no TTL and no $TTL')],
    ])
  })

  it('reads BIND TTL units case-insensitively in $TTL and on records', () => {
    const { records } = parse(zone('$TTL 1W2d', 'a 1H30M A 192.0.2.1', 'b A 192.0.2.2', 'c 45S A 192.0.2.3'))
    expect(records.map((r) => r.ttl)).toEqual([5400, 9 * 86400, 45])
  })

  it.each([
    ['a 2147483648 A 192.0.2.1', 'TTL'],
    ['a 1h30 A 192.0.2.1', 'TTL'],
    ['a 5x A 192.0.2.1', 'TTL'],
    ['$TTL forever', '$TTL'],
    ['$TTL 4000000000', '$TTL'],
  ])('rejects the TTL in %j', (text, field) => {
    const { errors } = parse(text)
    expect(errors.map((e) => e.field)).toEqual([field])
    expect(errors[0]!.detail).toContain('expected a TTL 0..2147483647')
  })

  it('accepts the largest TTL', () => {
    expect(parse('a 2147483647 A 192.0.2.1').records[0]!.ttl).toBe(2147483647)
  })
})

describe('parseMasterFile directives', () => {
  it('applies $ORIGIN, absolute or relative to the current origin', () => {
    const { shown, origin } = parse(
      zone('$ORIGIN sub', 'a A 192.0.2.1', '$ORIGIN other.org.', 'b A 192.0.2.2', '@ A 192.0.2.3'),
    )
    expect(shown).toEqual([
      '2 a.sub.example.com. 3600 A 192.0.2.1',
      '4 b.other.org. 3600 A 192.0.2.2',
      '5 other.org. 3600 A 192.0.2.3',
    ])
    expect(origin && nameToString(origin)).toBe('other.org.')
  })

  it('reports relative names when there is no origin at all', () => {
    const result = parseMasterFile(zone('www 60 A 192.0.2.1', '$ORIGIN rel', 'abs. 60 CNAME www'), { file: 'z' })
    expect(result.records).toEqual([])
    expect(result.origin).toBeUndefined()
    expect(result.errors.map((e) => [e.line, e.field])).toEqual([
      [1, 'owner'],
      [2, '$ORIGIN'],
      [3, 'CNAME target'],
    ])
  })

  it('rejects directives with the wrong number of arguments, unknown directives and $GENERATE', () => {
    const { errors } = parse(zone('$ORIGIN', '$TTL 1 2', '$INCLUDE', '$FOO bar', '$GENERATE 1-10 host$ A 10.0.0.$'))
    expect(errors.map((e) => [e.line, e.field])).toEqual([
      [1, '$ORIGIN'],
      [2, '$TTL'],
      [3, '$INCLUDE'],
      [4, 'directive'],
      [5, '$GENERATE'],
    ])
    expect(errors[4]!.detail).toContain('not supported')
  })

  const files: Record<string, string> = {
    'hosts.inc': zone('web A 192.0.2.80', '  AAAA 2001:db8::80'),
    'origin.inc': zone('$ORIGIN inner.example.com.', 'x A 192.0.2.9'),
    'broken.inc': zone('ok A 192.0.2.1', '', 'bad A 1.2.3', 'bad2 MX x y'),
    'ttl.inc': 'd A 192.0.2.4',
    'loop.inc': '$INCLUDE loop.inc',
  }
  const readInclude = (path: string, fromFile: string): { file: string; text: string } => {
    const text = files[path]
    if (text === undefined) throw new Error(`no such file (from ${fromFile})`)
    return { file: `zones/${path}`, text }
  }

  it('reads $INCLUDE files in place, naming the included file on its records', () => {
    const { records, shown, problems } = parse(zone('a A 192.0.2.1', '$INCLUDE hosts.inc', 'b A 192.0.2.2'), {
      readInclude,
    })
    expect(problems).toEqual([])
    expect(shown).toEqual([
      '1 a.example.com. 3600 A 192.0.2.1',
      '1 web.example.com. 3600 A 192.0.2.80',
      '2 web.example.com. 3600 AAAA 2001:db8::80',
      '3 b.example.com. 3600 A 192.0.2.2',
    ])
    expect(records.map((r) => r.pos.file)).toEqual(['db.example', 'zones/hosts.inc', 'zones/hosts.inc', 'db.example'])
  })

  it('applies the $INCLUDE origin argument inside the included file only', () => {
    const { shown } = parse(zone('$INCLUDE "hosts.inc" lab', 'after A 192.0.2.3'), { readInclude })
    expect(shown).toEqual([
      '1 web.lab.example.com. 3600 A 192.0.2.80',
      '2 web.lab.example.com. 3600 AAAA 2001:db8::80',
      '2 after.example.com. 3600 A 192.0.2.3',
    ])
  })

  it('does not let an $ORIGIN inside an included file leak back to the includer', () => {
    const { shown, origin } = parse(zone('$INCLUDE origin.inc', 'y A 192.0.2.10'), { readInclude })
    expect(shown).toEqual(['2 x.inner.example.com. 3600 A 192.0.2.9', '2 y.example.com. 3600 A 192.0.2.10'])
    expect(origin && nameToString(origin)).toBe('example.com.')
  })

  it('passes the current $TTL into included files', () => {
    const { records } = parse(zone('$TTL 42', '$INCLUDE ttl.inc'), { readInclude })
    expect(records.map((r) => r.ttl)).toEqual([42])
  })

  it('reports errors in an included file with its own name and line numbers', () => {
    const { shown, problems } = parse(zone('', '$INCLUDE broken.inc', 'z A 192.0.2.26'), { readInclude, firstLine: 50 })
    expect(shown).toEqual(['1 ok.example.com. 3600 A 192.0.2.1', '52 z.example.com. 3600 A 192.0.2.26'])
    expect(problems).toEqual([
      'zones/broken.inc:3: A address: expected an IPv4 address, got "1.2.3"',
      'zones/broken.inc:4: MX preference: expected an integer 0..65535, got "x"',
    ])
  })

  it('stops an include loop at the depth limit with one error', () => {
    const { errors } = parse('$INCLUDE loop.inc', { readInclude })
    expect(errors).toHaveLength(1)
    expect(errors[0]!.file).toBe('zones/loop.inc')
    expect(errors[0]!.field).toBe('$INCLUDE')
    expect(errors[0]!.detail).toContain(`more than ${MAX_INCLUDE_DEPTH} nested`)
  })

  it('reports a missing include file and an $INCLUDE without a reader', () => {
    expect(parse('$INCLUDE nope.inc', { readInclude }).problems).toEqual([
      'db.example:1: $INCLUDE: cannot read "nope.inc": no such file (from db.example)',
    ])
    expect(parse('$INCLUDE hosts.inc').errors.map((e) => e.detail)).toEqual(['$INCLUDE is not available here'])
  })
})

describe('parseMasterFile errors', () => {
  it('rejects classes other than IN', () => {
    const { errors } = parse(zone('a CH A 192.0.2.1', 'b 60 HS A 192.0.2.1', 'c CLASS3 A 192.0.2.1', 'd CS TXT x'))
    expect(errors.map((e) => [e.line, e.field])).toEqual([
      [1, 'class'],
      [2, 'class'],
      [3, 'class'],
      [4, 'class'],
    ])
    expect(errors[0]!.detail).toBe('only class IN is supported, got CH')
  })

  it('rejects unknown type mnemonics, meta-types and a missing type', () => {
    const { errors } = parse(zone('a FOO 1', 'b ANY \\# 0', 'c OPT \\# 0', 'd 300 IN', 'e TYPE70000 \\# 0'))
    expect(errors.map((e) => [e.line, e.field])).toEqual([
      [1, 'type'],
      [2, 'type'],
      [3, 'type'],
      [4, 'type'],
      [5, 'type'],
    ])
    expect(errors[0]!.detail).toContain('unknown type "FOO"')
    expect(errors[1]!.detail).toContain('meta-type')
    expect(errors[3]!.detail).toContain('missing type')
  })

  it('rejects an unknown type written without RFC 3597 syntax', () => {
    const { errors } = parse('a TYPE65534 deadbeef')
    expect(errors.map((e) => e.field)).toEqual(['rdata'])
    expect(errors[0]!.detail).toContain('\\# <length> <hex>')
  })

  it('collects every error in a text and still returns the good records', () => {
    const text = zone(
      'ok1 A 192.0.2.1',
      'bad1 A 192.0.2.256',
      'bad2 MX 10',
      'bad3 TXT "never closed',
      'ok2 AAAA 2001:db8::2',
      'bad4 A 192.0.2.1 )',
      'bad5 ( A',
      '   192.0.2.9',
    )
    const { shown, errors } = parse(text)
    expect(shown).toEqual(['1 ok1.example.com. 3600 A 192.0.2.1', '5 ok2.example.com. 3600 AAAA 2001:db8::2'])
    expect(errors.map((e) => [e.line, e.field])).toEqual([
      [2, 'A address'],
      [3, 'rdata'],
      [4, 'syntax'],
      [6, 'syntax'],
      [7, 'syntax'],
    ])
    expect(errors[4]!.detail).toBe('"(" opened on line 7 is never closed')
  })

  it('numbers lines from firstLine in errors and record positions', () => {
    const text = zone('a A 192.0.2.1', '', 'b A nope', '@ SOA ns host (', ' 1 2 3 4 5 )', 'c A 192.0.2.3')
    const { records, errors } = parse(text, { firstLine: 101, file: 'config.yaml' })
    expect(records.map((r) => `${r.pos.file}:${r.pos.line}`)).toEqual([
      'config.yaml:101',
      'config.yaml:104',
      'config.yaml:106',
    ])
    expect(errors.map((e) => e.message)).toEqual(['config.yaml:103: A address: expected an IPv4 address, got "nope"'])
  })

  it('carries the rdata field name and the record start line for errors in a multi-line record', () => {
    const { errors } = parse(zone('x A 1.2.3.4', '@ SOA ns host (', '  1 2', '  3 4', '  bad )'))
    expect(errors.map((e) => [e.line, e.field])).toEqual([[2, 'SOA minimum']])
  })
})

describe('parseMasterFile performance', () => {
  it('parses 100k records in well under a few seconds', () => {
    const lines = ['$TTL 300', '@ SOA ns host 1 2 3 4 5']
    for (let i = 0; i < 100_000; i++) {
      lines.push(i % 2 === 0 ? `h${i} IN A 10.0.${(i >> 8) & 255}.${i & 255}` : '  TXT "v=spf1 -all" ; note')
    }
    const started = performance.now()
    const { records, errors } = parse(lines.join('\n'))
    const elapsed = performance.now() - started
    expect(errors).toEqual([])
    expect(records).toHaveLength(100_001)
    expect(elapsed).toBeLessThan(5000)
  })
})
