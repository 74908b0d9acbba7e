import dnsPacket from 'dns-packet'
import { describe, expect, it } from 'vitest'
import { parseName } from '../../../src/dns/name.ts'
import { T, typeNumber } from '../../../src/dns/types.ts'
import { ZoneError } from '../../../src/errors.ts'
import type { Token } from '../../../src/zone/masterfile.ts'
import { tokenize } from '../../../src/zone/masterfile.ts'
import { parseRdata, parseTtl, rdataToString, unescapeText } from '../../../src/zone/rdata.ts'
import { MAX_TTL } from '../../../src/zone/types.ts'

const ORIGIN = parseName('example.com.')
const POS = { file: 'test.zone', line: 7 }

function fields(text: string): readonly Token[] {
  return tokenize(text)[0]?.tokens ?? []
}

function typeOf(mnemonic: string): number {
  const type = typeNumber(mnemonic)
  if (type === undefined) throw new Error(`bad type in test: ${mnemonic}`)
  return type
}

function parse(mnemonic: string, text: string, origin = ORIGIN): Buffer {
  return parseRdata(typeOf(mnemonic), fields(text), origin, POS)
}

function parseError(mnemonic: string, text: string, origin = ORIGIN): ZoneError {
  try {
    parse(mnemonic, text, origin)
  } catch (e) {
    if (e instanceof ZoneError) return e
    throw e
  }
  throw new Error(`expected ${mnemonic} ${JSON.stringify(text)} to fail`)
}

/** dns-packet's per-type decoders, which expect the rdata behind its 2-byte length. */
function decode(mnemonic: string, rdata: Buffer): unknown {
  const codecs = dnsPacket as unknown as Record<string, { decode(buf: Buffer): unknown }>
  const length = Buffer.alloc(2)
  length.writeUInt16BE(rdata.length)
  return codecs[mnemonic.toLowerCase()]!.decode(Buffer.concat([length, rdata]))
}

/** Wire form of a name as hex, for hand-written expectations. */
function nameHex(text: string): string {
  return parseName(text).wire.toString('hex')
}

describe('parseRdata for well-formed presentation rdata', () => {
  const cases: { type: string; text: string; hex: string; shown: string }[] = [
    { type: 'A', text: '192.0.2.1', hex: 'c0000201', shown: '192.0.2.1' },
    { type: 'A', text: '0.0.0.0', hex: '00000000', shown: '0.0.0.0' },
    { type: 'AAAA', text: '2001:db8::1', hex: '20010db8000000000000000000000001', shown: '2001:db8::1' },
    { type: 'AAAA', text: '::', hex: '0'.repeat(32), shown: '::' },
    { type: 'AAAA', text: '::1', hex: '0'.repeat(30) + '01', shown: '::1' },
    { type: 'AAAA', text: '1:2:3:4:5:6:7:8', hex: '00010002000300040005000600070008', shown: '1:2:3:4:5:6:7:8' },
    { type: 'AAAA', text: '::ffff:1.2.3.4', hex: '00000000000000000000ffff01020304', shown: '::ffff:1.2.3.4' },
    { type: 'AAAA', text: '::1.2.3.4', hex: '0'.repeat(24) + '01020304', shown: '::102:304' },
    { type: 'AAAA', text: '64:ff9b::192.0.2.33', hex: '0064ff9b0000000000000000c0000221', shown: '64:ff9b::c000:221' },
    { type: 'AAAA', text: 'FE80:0:0:1::', hex: 'fe800000000000010000000000000000', shown: 'fe80:0:0:1::' },
    { type: 'NS', text: 'ns1', hex: nameHex('ns1.example.com.'), shown: 'ns1.example.com.' },
    { type: 'NS', text: 'ns.other.net.', hex: nameHex('ns.other.net.'), shown: 'ns.other.net.' },
    { type: 'CNAME', text: '@', hex: nameHex('example.com.'), shown: 'example.com.' },
    { type: 'CNAME', text: 'a\\.b', hex: '03612e62' + nameHex('example.com.'), shown: 'a\\.b.example.com.' },
    { type: 'PTR', text: 'host\\032one.', hex: '08686f7374206f6e6500', shown: 'host\\032one.' },
    { type: 'DNAME', text: 'target.net.', hex: nameHex('target.net.'), shown: 'target.net.' },
    { type: 'MX', text: '10 mail', hex: '000a' + nameHex('mail.example.com.'), shown: '10 mail.example.com.' },
    { type: 'MX', text: '0 .', hex: '000000', shown: '0 .' },
    { type: 'TXT', text: '"hello world"', hex: '0b68656c6c6f20776f726c64', shown: '"hello world"' },
    { type: 'TXT', text: 'a "b c" ""', hex: '016103622063' + '00', shown: '"a" "b c" ""' },
    { type: 'TXT', text: '"say \\"hi\\""', hex: '0873617920226869' + '22', shown: '"say \\"hi\\""' },
    { type: 'TXT', text: '"\\000\\255\\\\"', hex: '0300ff5c', shown: '"\\000\\255\\\\"' },
    { type: 'TXT', text: 'semi\\;colon', hex: '0a73656d693b636f6c6f6e', shown: '"semi;colon"' },
    { type: 'TXT', text: '"é"', hex: '02c3a9', shown: '"\\195\\169"' },
    { type: 'SPF', text: '"v=spf1 -all"', hex: '0b763d73706631202d616c6c', shown: '"v=spf1 -all"' },
    {
      type: 'SRV',
      text: '1 2 5060 sip',
      hex: '0001000213c4' + nameHex('sip.example.com.'),
      shown: '1 2 5060 sip.example.com.',
    },
    {
      type: 'CAA',
      text: '0 issue "letsencrypt.org"',
      hex: '0005' + Buffer.from('issueletsencrypt.org').toString('hex'),
      shown: '0 issue "letsencrypt.org"',
    },
    {
      type: 'CAA',
      text: '128 iodef mailto:a@b.example',
      hex: '8005' + Buffer.from('iodefmailto:a@b.example').toString('hex'),
      shown: '128 iodef "mailto:a@b.example"',
    },
    { type: 'CAA', text: '0 issue ";"', hex: '0005' + Buffer.from('issue;').toString('hex'), shown: '0 issue ";"' },
    { type: 'HINFO', text: '"INTEL" unix', hex: '05494e54454c04756e6978', shown: '"INTEL" "unix"' },
    {
      type: 'NAPTR',
      text: '100 10 "u" "E2U+sip" "!^.*$!sip:x@y!" .',
      hex: '0064000a' + Buffer.from('\x01u\x07E2U+sip\x0e!^.*$!sip:x@y!\x00').toString('hex'),
      shown: '100 10 "u" "E2U+sip" "!^.*$!sip:x@y!" .',
    },
    {
      type: 'DS',
      text: '12345 8 2 49FD46E6C4B45C55D4AC69CBD3CD34AC 1AFE51DE9B06E27E5F57F0F0E3E6BA6C',
      hex: '303908' + '02' + '49fd46e6c4b45c55d4ac69cbd3cd34ac1afe51de9b06e27e5f57f0f0e3e6ba6c',
      shown: '12345 8 2 49FD46E6C4B45C55D4AC69CBD3CD34AC1AFE51DE9B06E27E5F57F0F0E3E6BA6C',
    },
    {
      type: 'SSHFP',
      text: '4 2 ' + 'ab'.repeat(32),
      hex: '0402' + 'ab'.repeat(32),
      shown: '4 2 ' + 'AB'.repeat(32),
    },
    {
      type: 'TLSA',
      text: '3 1 1 ' + '0f'.repeat(16) + ' ' + 'F0'.repeat(16),
      hex: '030101' + '0f'.repeat(16) + 'f0'.repeat(16),
      shown: '3 1 1 ' + '0F'.repeat(16) + 'F0'.repeat(16),
    },
    { type: 'TLSA', text: '0 0 0 30820122', hex: '00000030820122', shown: '0 0 0 30820122' },
  ]

  it.each(cases)('encodes $type $text', ({ type, text, hex, shown }) => {
    const rdata = parse(type, text)
    expect(rdata.toString('hex')).toBe(hex)
    expect(rdataToString(typeOf(type), rdata)).toBe(shown)
  })

  it('encodes SOA with BIND time units and every field in order', () => {
    const rdata = parse('SOA', 'ns1 hostmaster.example.com. 2024010101 1h 15M 1w2d 300')
    const soa = decode('SOA', rdata)
    expect(soa).toEqual({
      mname: 'ns1.example.com',
      rname: 'hostmaster.example.com',
      serial: 2024010101,
      refresh: 3600,
      retry: 900,
      expire: 777600,
      minimum: 300,
    })
    expect(rdataToString(T.SOA, rdata)).toBe('ns1.example.com. hostmaster.example.com. 2024010101 3600 900 777600 300')
  })

  it('accepts the largest SOA serial and timers that do not fit a TTL', () => {
    const rdata = parse('SOA', '. . 4294967295 4294967295 0 0 0')
    expect(rdata.readUInt32BE(2)).toBe(4294967295)
    expect(rdata.readUInt32BE(6)).toBe(4294967295)
  })

  it('produces MX, SRV and TXT rdata that dns-packet decodes to the same values', () => {
    expect(decode('MX', parse('MX', '5 mx.example.net.'))).toEqual({ preference: 5, exchange: 'mx.example.net' })
    expect(decode('SRV', parse('SRV', '10 60 443 web'))).toEqual({
      priority: 10,
      weight: 60,
      port: 443,
      target: 'web.example.com',
    })
    expect(decode('TXT', parse('TXT', '"one" two'))).toEqual([Buffer.from('one'), Buffer.from('two')])
  })

  it('produces CAA, HINFO, NAPTR, DS, SSHFP and TLSA rdata that dns-packet decodes', () => {
    expect(decode('CAA', parse('CAA', '0 issuewild "ca.example"'))).toMatchObject({
      flags: 0,
      tag: 'issuewild',
      value: 'ca.example',
    })
    expect(decode('HINFO', parse('HINFO', 'PDP-11 UNIX'))).toEqual({ cpu: 'PDP-11', os: 'UNIX' })
    expect(decode('NAPTR', parse('NAPTR', '1 2 "s" "SIP+D2U" "" _sip._udp'))).toEqual({
      order: 1,
      preference: 2,
      flags: 's',
      services: 'SIP+D2U',
      regexp: '',
      replacement: '_sip._udp.example.com',
    })
    expect(decode('DS', parse('DS', '60485 5 1 2BB183AF5F22588179A53B0A98631FAD1A292118'))).toEqual({
      keyTag: 60485,
      algorithm: 5,
      digestType: 1,
      digest: Buffer.from('2BB183AF5F22588179A53B0A98631FAD1A292118', 'hex'),
    })
    expect(decode('SSHFP', parse('SSHFP', '1 1 dd465c09cfa51fb45020cc83316fff21b9ec74ac'))).toEqual({
      algorithm: 1,
      hash: 1,
      fingerprint: 'DD465C09CFA51FB45020CC83316FFF21B9EC74AC',
    })
    expect(decode('TLSA', parse('TLSA', '2 0 1 ' + 'aa'.repeat(32)))).toEqual({
      usage: 2,
      selector: 0,
      matchingType: 1,
      certificate: Buffer.alloc(32, 0xaa),
    })
  })

  it('keeps the case of names inside rdata as written', () => {
    expect(rdataToString(T.CNAME, parse('CNAME', 'WWW.Example.COM.'))).toBe('WWW.Example.COM.')
  })

  it('treats a quoted "@" in a name field as a literal label, not the origin', () => {
    expect(parse('CNAME', '"@"').toString('hex')).toBe('0140' + nameHex('example.com.'))
  })

  it('accepts a TXT character-string of exactly 255 bytes after unescaping', () => {
    const rdata = parse('TXT', `"${'\\065'.repeat(255)}"`)
    expect(rdata.length).toBe(256)
    expect(rdata[0]).toBe(255)
    expect(rdata.subarray(1).every((b) => b === 0x41)).toBe(true)
  })
})

describe('parseRdata for RFC 3597 generic rdata', () => {
  const cases: { type: string; text: string; hex: string; shown: string }[] = [
    { type: 'TYPE65534', text: '\\# 3 0a0B0c', hex: '0a0b0c', shown: '\\# 3 0A0B0C' },
    { type: 'TYPE65534', text: '\\# 4 0a0b 0c0d', hex: '0a0b0c0d', shown: '\\# 4 0A0B0C0D' },
    { type: 'TYPE65534', text: '\\# 0', hex: '', shown: '\\# 0' },
    { type: 'TYPE1', text: '\\# 4 0A000001', hex: '0a000001', shown: '10.0.0.1' },
    { type: 'A', text: '\\# 4 C0000201', hex: 'c0000201', shown: '192.0.2.1' },
    { type: 'AAAA', text: '\\# 16 ' + '00'.repeat(15) + '01', hex: '00'.repeat(15) + '01', shown: '::1' },
    { type: 'MX', text: '\\# 3 000a00', hex: '000a00', shown: '10 .' },
    { type: 'TXT', text: '\\# 6 0568656c6c6f', hex: '0568656c6c6f', shown: '"hello"' },
    { type: 'NS', text: '\\# 5 036e733100', hex: '036e733100', shown: 'ns1.' },
    { type: 'NSEC', text: '\\# 3 00 0001', hex: '000001', shown: '\\# 3 000001' },
  ]

  it.each(cases)('encodes $type $text', ({ type, text, hex, shown }) => {
    const rdata = parse(type, text)
    expect(rdata.toString('hex')).toBe(hex)
    expect(rdataToString(typeOf(type), rdata)).toBe(shown)
  })
})

describe('parseRdata rejects malformed rdata', () => {
  const cases: { type: string; text: string; field: string; detail: string }[] = [
    { type: 'A', text: '300.1.2.3', field: 'A address', detail: 'expected an IPv4 address, got "300.1.2.3"' },
    { type: 'A', text: '1.2.3', field: 'A address', detail: 'expected an IPv4 address' },
    { type: 'A', text: '2001:db8::1', field: 'A address', detail: 'expected an IPv4 address' },
    { type: 'A', text: '', field: 'rdata', detail: 'A needs 1 field (address), got 0' },
    { type: 'A', text: '1.2.3.4 5.6.7.8', field: 'rdata', detail: 'A needs 1 field (address), got 2' },
    { type: 'AAAA', text: '192.0.2.1', field: 'AAAA address', detail: 'expected an IPv6 address, got "192.0.2.1"' },
    { type: 'AAAA', text: '1::2::3', field: 'AAAA address', detail: 'expected an IPv6 address' },
    { type: 'AAAA', text: 'fe80::1%eth0', field: 'AAAA address', detail: 'expected an IPv6 address' },
    { type: 'AAAA', text: '1:2:3:4:5:6:7:8:9', field: 'AAAA address', detail: 'expected an IPv6 address' },
    { type: 'NS', text: 'a..b', field: 'NS target', detail: 'empty label' },
    { type: 'NS', text: 'ns1 ns2', field: 'rdata', detail: 'NS needs 1 field' },
    { type: 'CNAME', text: `${'x'.repeat(64)}.`, field: 'CNAME target', detail: 'longer than 63' },
    { type: 'PTR', text: 'bad\\', field: 'PTR target', detail: 'dangling backslash' },
    { type: 'SOA', text: 'ns1 host 1 2 3 4', field: 'rdata', detail: 'SOA needs 7 fields' },
    { type: 'SOA', text: 'ns1 host 4294967296 1 2 3 4', field: 'SOA serial', detail: 'expected an integer' },
    { type: 'SOA', text: 'ns1 host 1h 1 2 3 4', field: 'SOA serial', detail: 'got "1h"' },
    { type: 'SOA', text: 'ns1 host 1 1x 2 3 4', field: 'SOA refresh', detail: 'BIND units' },
    { type: 'SOA', text: 'ns1 host 1 2 1h30 3 4', field: 'SOA retry', detail: 'got "1h30"' },
    { type: 'SOA', text: 'ns1 host 1 2 3 -4 5', field: 'SOA expire', detail: 'got "-4"' },
    { type: 'SOA', text: 'ns1 host 1 2 3 4 5000000000', field: 'SOA minimum', detail: 'expected seconds' },
    { type: 'MX', text: '65536 mail', field: 'MX preference', detail: 'expected an integer 0..65535, got "65536"' },
    { type: 'MX', text: 'ten mail', field: 'MX preference', detail: 'got "ten"' },
    { type: 'MX', text: '10', field: 'rdata', detail: 'MX needs 2 fields (preference exchange), got 1' },
    { type: 'TXT', text: '', field: 'rdata', detail: 'TXT needs at least one character-string' },
    { type: 'TXT', text: `"${'a'.repeat(256)}"`, field: 'TXT string', detail: '256 bytes' },
    { type: 'TXT', text: '"\\25"', field: 'TXT string', detail: 'bad \\DDD escape' },
    { type: 'TXT', text: '"\\256"', field: 'TXT string', detail: 'above 255' },
    { type: 'TXT', text: 'end\\', field: 'TXT string', detail: 'dangling backslash' },
    { type: 'SPF', text: `${'b'.repeat(300)}`, field: 'SPF string', detail: 'more than 255' },
    { type: 'SRV', text: '1 2 web', field: 'rdata', detail: 'SRV needs 4 fields (priority weight port target)' },
    { type: 'SRV', text: '1 2 70000 web', field: 'SRV port', detail: 'got "70000"' },
    { type: 'CAA', text: '256 issue "ca"', field: 'CAA flags', detail: 'expected an integer 0..255' },
    { type: 'CAA', text: '0 is-sue "ca"', field: 'CAA tag', detail: 'letters and digits, got "is-sue"' },
    { type: 'CAA', text: '0 "" "ca"', field: 'CAA tag', detail: 'letters and digits' },
    { type: 'CAA', text: '0 issue', field: 'rdata', detail: 'CAA needs 3 fields' },
    { type: 'HINFO', text: 'cpu-only', field: 'rdata', detail: 'HINFO needs 2 fields (cpu os)' },
    { type: 'HINFO', text: `x "${'y'.repeat(256)}"`, field: 'HINFO os', detail: 'more than 255' },
    { type: 'NAPTR', text: '1 2 "u" "sip" "re"', field: 'rdata', detail: 'NAPTR needs 6 fields' },
    { type: 'NAPTR', text: '1 x "u" "sip" "" .', field: 'NAPTR preference', detail: 'got "x"' },
    { type: 'NAPTR', text: '1 2 "u" "sip" "" a..b', field: 'NAPTR replacement', detail: 'empty label' },
    { type: 'DS', text: '1 8 2', field: 'rdata', detail: 'DS needs at least 4 fields' },
    { type: 'DS', text: '70000 8 2 ' + 'aa'.repeat(32), field: 'DS key tag', detail: 'got "70000"' },
    { type: 'DS', text: '1 8 2 XYZ', field: 'DS digest', detail: 'hex digits, got "XYZ"' },
    { type: 'DS', text: '1 8 2 abc', field: 'DS digest', detail: 'even number of hex digits' },
    { type: 'DS', text: '1 8 2 ' + 'aa'.repeat(20), field: 'DS digest', detail: 'digest type 2 needs 32 bytes' },
    { type: 'SSHFP', text: '1 3 ' + 'aa'.repeat(32), field: 'SSHFP fingerprint type', detail: 'expected 1 (SHA-1)' },
    { type: 'SSHFP', text: '1 1 ' + 'aa'.repeat(32), field: 'SSHFP fingerprint', detail: 'needs 20 bytes' },
    { type: 'SSHFP', text: '1 1', field: 'rdata', detail: 'SSHFP needs at least 3 fields' },
    { type: 'TLSA', text: '3 1 1 ' + 'aa'.repeat(31), field: 'TLSA data', detail: 'matching type 1 needs 32 bytes' },
    { type: 'TLSA', text: '3 1 256 aa', field: 'TLSA matching type', detail: 'got "256"' },
    { type: 'TLSA', text: '3 1 1', field: 'rdata', detail: 'TLSA needs at least 4 fields' },
    { type: 'TYPE65534', text: '010203', field: 'rdata', detail: 'use RFC 3597 syntax: \\# <length> <hex>' },
    { type: 'NSEC', text: 'next.example.com. A', field: 'rdata', detail: 'no presentation format is known for NSEC' },
    { type: 'TYPE65534', text: '\\#', field: 'rdata', detail: 'needs a length' },
    { type: 'TYPE65534', text: '\\# x 00', field: 'rdata', detail: 'expected an RFC 3597 length' },
    { type: 'TYPE65534', text: '\\# 70000', field: 'rdata', detail: 'expected an RFC 3597 length' },
    { type: 'TYPE65534', text: '\\# 3 0102', field: 'rdata', detail: '\\# says 3 bytes but the hex holds 2' },
    { type: 'TYPE65534', text: '\\# 0 00', field: 'rdata', detail: '\\# says 0 bytes but the hex holds 1' },
    { type: 'TYPE65534', text: '\\# 1 0g', field: 'rdata', detail: 'hex digits' },
    { type: 'A', text: '\\# 3 010203', field: 'rdata', detail: 'bad A rdata in \\# form: expected 4 bytes, got 3' },
    { type: 'AAAA', text: '\\# 4 01020304', field: 'rdata', detail: 'expected 16 bytes, got 4' },
    { type: 'MX', text: '\\# 2 000a', field: 'rdata', detail: 'bad MX rdata' },
    { type: 'NS', text: '\\# 2 0100', field: 'rdata', detail: 'bad NS rdata' },
    { type: 'NS', text: '\\# 2 0000', field: 'rdata', detail: '1 bytes after the name' },
    { type: 'TXT', text: '\\# 2 0500', field: 'rdata', detail: 'bad TXT rdata' },
    { type: 'TXT', text: '\\# 0', field: 'rdata', detail: 'no character-string' },
    { type: 'CAA', text: '\\# 3 00012d', field: 'rdata', detail: 'tag is not letters and digits' },
  ]

  it.each(cases)('rejects $type "$text" in field $field', ({ type, text, field, detail }) => {
    const err = parseError(type, text)
    expect(err.field).toBe(field)
    expect(err.detail).toContain(detail)
    expect(err.file).toBe('test.zone')
    expect(err.line).toBe(7)
  })

  it('rejects a relative name when there is no origin', () => {
    const err = (() => {
      try {
        parseRdata(T.CNAME, fields('www'), undefined, POS)
      } catch (e) {
        return e
      }
      return undefined
    })()
    expect(err).toBeInstanceOf(ZoneError)
    if (!(err instanceof ZoneError)) return
    expect(err.field).toBe('CNAME target')
    expect(err.detail).toContain('no origin')
  })

  it('rejects rdata longer than 65535 bytes', () => {
    const text = Array.from({ length: 260 }, () => 'x'.repeat(255)).join(' ')
    const err = parseError('TXT', text)
    expect(err.field).toBe('rdata')
    expect(err.detail).toBe('TXT rdata is 66560 bytes, more than 65535')
    expect(parseError('TLSA', '3 0 0 ' + 'ab'.repeat(65533)).detail).toBe('TLSA rdata is 65536 bytes, more than 65535')
    expect(parse('TYPE65534', '\\# 65535 ' + 'ab'.repeat(65535)).length).toBe(65535)
  })

  it('formats the message as file:line: field: detail', () => {
    expect(parseError('A', '300.1.2.3').message).toBe(
      'test.zone:7: A address: expected an IPv4 address, got "300.1.2.3"',
    )
  })
})

describe('rdataToString', () => {
  it('falls back to RFC 3597 form for malformed rdata of a known type', () => {
    expect(rdataToString(T.A, Buffer.from([1, 2, 3]))).toBe('\\# 3 010203')
    expect(rdataToString(T.MX, Buffer.from([0, 10]))).toBe('\\# 2 000A')
  })

  it('renders types it does not know in RFC 3597 form', () => {
    expect(rdataToString(65534, Buffer.from('hi'))).toBe('\\# 2 6869')
    expect(rdataToString(65534, Buffer.alloc(0))).toBe('\\# 0')
  })

  it('renders the longest run of zero groups as :: and leaves a single zero group alone', () => {
    const addr = Buffer.from('20010db8000000010000000000000001', 'hex')
    expect(rdataToString(T.AAAA, addr)).toBe('2001:db8:0:1::1')
    expect(rdataToString(T.AAAA, Buffer.from('20010db8000100010001000100010001', 'hex'))).toBe('2001:db8:1:1:1:1:1:1')
    expect(rdataToString(T.AAAA, Buffer.from('20010db8000100000001000100010001', 'hex'))).toBe('2001:db8:1:0:1:1:1:1')
  })

  it('round-trips presentation text through parseRdata for every rendered type', () => {
    const samples: [string, string][] = [
      ['A', '203.0.113.9'],
      ['AAAA', '2001:db8::53'],
      ['MX', '20 mx2.example.com.'],
      ['TXT', '"a \\"quoted\\" word" "\\009tab"'],
      ['CAA', '0 issue "ca.example; account=1"'],
      ['NAPTR', '10 20 "s" "SIP+D2T" "" _sip._tcp.example.com.'],
      ['SOA', 'ns.example.com. admin.example.com. 7 3600 600 86400 60'],
    ]
    for (const [type, text] of samples) {
      const shown = rdataToString(typeOf(type), parse(type, text))
      expect(parse(type, shown).equals(parse(type, text)), `${type} ${text} -> ${shown}`).toBe(true)
    }
  })
})

describe('unescapeText', () => {
  it.each([
    ['plain', '706c61696e'],
    ['a\\.b', '612e62'],
    ['\\"', '22'],
    ['\\\\', '5c'],
    ['\\065\\066C', '414243'],
    ['\\000', '00'],
  ])('turns %s into the right bytes', (text, hex) => {
    const out = unescapeText(text)
    expect(Buffer.isBuffer(out) ? out.toString('hex') : out).toBe(hex)
  })

  it('returns the problem for a malformed escape', () => {
    expect(unescapeText('\\2x1')).toContain('bad \\DDD escape')
  })
})

describe('parseTtl', () => {
  it.each([
    ['0', 0],
    ['3600', 3600],
    ['1h30m', 5400],
    ['1W2D3H4M5S', 604800 + 2 * 86400 + 3 * 3600 + 4 * 60 + 5],
    ['2h2h', 14400],
    ['90s', 90],
    ['2147483647', MAX_TTL],
  ])('reads %s as %i seconds', (text, seconds) => {
    expect(parseTtl(text, MAX_TTL)).toBe(seconds)
  })

  it.each(['', 'h', '1h30', '1x', '-1', '1.5', ' 1', '2147483648', '3551w'])('rejects %j', (text) => {
    expect(parseTtl(text, MAX_TTL)).toBeUndefined()
  })

  it('accepts values up to the given maximum only', () => {
    expect(parseTtl('4294967295', 0xffffffff)).toBe(0xffffffff)
    expect(parseTtl('4294967296', 0xffffffff)).toBeUndefined()
  })
})
