/**
 * @module zone/masterfile
 * RFC 1035 section 5 master files: a tokenizer that turns text into logical lines (parentheses
 * joined, comments dropped, quoted strings kept marked as quoted), and a parser that turns those
 * lines into RRs. The parser never stops at the first problem: it collects a ZoneError per bad
 * line, with file and line, and goes on. Zone semantics (CNAME conflicts, out-of-zone data, ...)
 * are checked elsewhere; here it is only syntax and rdata.
 */

import type { Name } from '../dns/name.ts'
import { parseName } from '../dns/name.ts'
import { T, typeName, typeNumber } from '../dns/types.ts'
import type { SourcePos } from '../errors.ts'
import { NameError, ZoneError } from '../errors.ts'
import { runSync, type Steps } from './cooperative.ts'
import { parseRdata, parseTtl } from './rdata.ts'
import type { RR } from './types.ts'
import { CLASS_IN, MAX_TTL } from './types.ts'

/** One field of a master-file line. `text` is as written (escapes unresolved, quotes removed). */
export interface Token {
  readonly text: string
  readonly quoted: boolean
  /** File line the token starts on. */
  readonly line: number
}

/** One entry (record or directive) after joining parentheses; blank and comment-only lines are dropped. */
export interface LogicalLine {
  readonly tokens: readonly Token[]
  /** File line the entry starts on: what errors and RR.pos report. */
  readonly line: number
  /** The entry starts with a space or tab: its owner is the previous owner. */
  readonly indented: boolean
  /** A syntax problem (unterminated string, unbalanced parenthesis); the entry should be skipped. */
  readonly error?: string
}

export interface MasterFileOptions {
  /** Name used in errors and RR.pos. */
  readonly file: string
  /** Origin in effect before any $ORIGIN. */
  readonly origin?: Name
  /** TTL for records without one when no $TTL is in effect. */
  readonly defaultTtl?: number
  /** File line number of the text's first line (default 1), for text embedded in a larger file. */
  readonly firstLine?: number
  /** Reads a $INCLUDE target; without it $INCLUDE is an error. */
  readonly readInclude?: (path: string, fromFile: string) => { file: string; text: string }
  /** How many $INCLUDEs deep this text already is (default 0). */
  readonly includeDepth?: number
}

export interface MasterFileResult {
  readonly records: RR[]
  readonly errors: ZoneError[]
  /** Origin in effect at the end of the text (changes made inside $INCLUDE files do not count). */
  readonly origin: Name | undefined
}

/** Deepest $INCLUDE nesting allowed; it stops include loops. */
export const MAX_INCLUDE_DEPTH = 8

// ---------------------------------------------------------------------------------------------
// Tokenizer

const TAB = 0x09
const LF = 0x0a
const CR = 0x0d
const SPACE = 0x20
const QUOTE = 0x22
const LPAREN = 0x28
const RPAREN = 0x29
const SEMICOLON = 0x3b
const BACKSLASH = 0x5c

function endsPlainToken(c: number): boolean {
  return (
    c === SPACE || c === TAB || c === LF || c === CR || c === SEMICOLON || c === LPAREN || c === RPAREN || c === QUOTE
  )
}

/**
 * Splits master-file text into logical lines. Tokens are slices of the input (no per-character
 * copying): a backslash keeps the next character in the token, unresolved; quoted tokens lose
 * their quotes and are marked `quoted`. `firstLine` is the file line of the text's first line.
 */
export function tokenize(text: string, firstLine = 1): LogicalLine[] {
  return [...logicalLines(text, firstLine)]
}

/** `tokenize` one logical line at a time, so a large file never exists as one array of tokens. */
export function* logicalLines(text: string, firstLine = 1): Generator<LogicalLine, void, void> {
  let ready: LogicalLine | undefined
  const n = text.length
  let line = firstLine
  let tokens: Token[] = []
  let start = firstLine
  let indented = false
  let error: string | undefined
  let depth = 0
  let parenLine = firstLine
  let atLineStart = true
  const flush = (): void => {
    if (tokens.length > 0 || error !== undefined) {
      ready = error === undefined ? { tokens, line: start, indented } : { tokens, line: start, indented, error }
    }
    tokens = []
    error = undefined
  }
  let i = 0
  while (i < n) {
    const c = text.charCodeAt(i)
    if (atLineStart) {
      atLineStart = false
      if (depth === 0) {
        start = line
        indented = c === SPACE || c === TAB
      }
    }
    if (c === LF) {
      line++
      i++
      atLineStart = true
      if (depth === 0) {
        flush()
        if (ready !== undefined) {
          yield ready
          ready = undefined
        }
      }
    } else if (c === SPACE || c === TAB || c === CR) {
      i++
    } else if (c === SEMICOLON) {
      const eol = text.indexOf('\n', i)
      i = eol < 0 ? n : eol
    } else if (c === LPAREN) {
      if (depth === 0) parenLine = line
      depth++
      i++
    } else if (c === RPAREN) {
      if (depth === 0) error ??= 'unbalanced ")" without a matching "("'
      else depth--
      i++
    } else if (c === QUOTE) {
      const tokenLine = line
      const s = ++i
      while (i < n) {
        const d = text.charCodeAt(i)
        if (d === QUOTE || d === LF) break
        if (d === BACKSLASH && i + 1 < n) {
          if (text.charCodeAt(i + 1) === LF) line++
          i += 2
        } else {
          i++
        }
      }
      tokens.push({ text: text.slice(s, Math.min(i, n)), quoted: true, line: tokenLine })
      if (i < n && text.charCodeAt(i) === QUOTE) i++
      else error ??= `unterminated quoted string starting on line ${tokenLine}`
    } else {
      const tokenLine = line
      const s = i
      while (i < n) {
        const d = text.charCodeAt(i)
        if (d === BACKSLASH) {
          if (text.charCodeAt(i + 1) === LF) line++
          i += 2
        } else if (endsPlainToken(d)) {
          break
        } else {
          i++
        }
      }
      if (i > n) i = n
      tokens.push({ text: text.slice(s, i), quoted: false, line: tokenLine })
    }
  }
  if (depth > 0) error ??= `"(" opened on line ${parenLine} is never closed`
  flush()
  if (ready !== undefined) yield ready
}

// ---------------------------------------------------------------------------------------------
// Parser

/** What a line may inherit from the line before; `failedLine` when that owner was invalid. */
type PreviousOwner =
  | { readonly name: Name; readonly text: string | undefined; readonly origin: Name | undefined }
  | { readonly failedLine: number }
  | undefined

/** State local to one file: RFC 1035 says an $INCLUDE does not change the includer's origin. */
interface FileState {
  readonly file: string
  origin: Name | undefined
  dollarTtl: number | undefined
  readonly defaultTtl: number | undefined
  previous: PreviousOwner
  readonly readInclude: MasterFileOptions['readInclude']
  readonly depth: number
}

/** State shared by a file and everything it includes. */
interface Shared {
  readonly records: RR[]
  readonly errors: ZoneError[]
  /** Minimum field of the first SOA seen: the RFC 1035 TTL of last resort. */
  soaMinimum: number | undefined
}

/**
 * Parses a master file. Every problem becomes a ZoneError in `errors` (with the file and line it
 * is on) and parsing goes on with the next entry; `records` holds every record that parsed.
 */
export function parseMasterFile(text: string, opts: MasterFileOptions): MasterFileResult {
  return runSync(parseMasterFileSteps(text, opts))
}

/** Entries parsed between two yields of `parseMasterFileSteps`. */
const ENTRIES_PER_STEP = 4

/** `parseMasterFile` as steps that yield every few dozen entries (see zone/cooperative). */
export function* parseMasterFileSteps(text: string, opts: MasterFileOptions): Steps<MasterFileResult> {
  const shared: Shared = { records: [], errors: [], soaMinimum: undefined }
  const state: FileState = {
    file: opts.file,
    origin: opts.origin,
    dollarTtl: undefined,
    defaultTtl: opts.defaultTtl,
    previous: undefined,
    readInclude: opts.readInclude,
    depth: opts.includeDepth ?? 0,
  }
  yield* parseInto(text, opts.firstLine ?? 1, state, shared)
  return { records: shared.records, errors: shared.errors, origin: state.origin }
}

function* parseInto(text: string, firstLine: number, state: FileState, shared: Shared): Steps<void> {
  let count = 0
  for (const entry of logicalLines(text, firstLine)) {
    if (++count % ENTRIES_PER_STEP === 0) yield
    const pos: SourcePos = { file: state.file, line: entry.line }
    let included: { readonly text: string; readonly state: FileState } | undefined
    try {
      if (entry.error !== undefined) throw new ZoneError(pos, 'syntax', entry.error)
      const first = entry.tokens[0]!
      if (!first.quoted && first.text.startsWith('$')) included = directive(entry, pos, state)
      else shared.records.push(record(entry, pos, state, shared))
    } catch (e) {
      if (!(e instanceof ZoneError)) throw e
      shared.errors.push(e)
      // A line whose own owner could not be read must not lend an older owner to the lines after it.
      if (entry.error !== undefined && !entry.indented) state.previous = { failedLine: entry.line }
    }
    if (included) yield* parseInto(included.text, 1, included.state, shared)
  }
}

/** Applies a directive; for $INCLUDE, returns the included text and its state for the caller to parse. */
function directive(
  entry: LogicalLine,
  pos: SourcePos,
  state: FileState,
): { readonly text: string; readonly state: FileState } | undefined {
  const [first, ...args] = entry.tokens
  const keyword = first!.text.toUpperCase()
  switch (keyword) {
    case '$ORIGIN':
      expectArgs(pos, keyword, args, 1, 1, 'a domain name')
      state.origin = nameField(args[0]!, state.origin, pos, keyword)
      return undefined
    case '$TTL':
      expectArgs(pos, keyword, args, 1, 1, 'a TTL')
      state.dollarTtl = ttlField(args[0]!.text, pos, keyword)
      return undefined
    case '$INCLUDE':
      expectArgs(pos, keyword, args, 1, 2, 'a file name and an optional origin')
      return include(args[0]!.text, args[1], pos, state)
    case '$GENERATE':
      throw new ZoneError(pos, keyword, '$GENERATE is not supported; write the records out')
    default:
      throw new ZoneError(pos, 'directive', `unknown directive ${first!.text} (known: $ORIGIN $TTL $INCLUDE)`)
  }
}

function expectArgs(pos: SourcePos, keyword: string, args: readonly Token[], min: number, max: number, what: string) {
  if (args.length < min || args.length > max) {
    throw new ZoneError(pos, keyword, `expects ${what}, got ${args.length} field${args.length === 1 ? '' : 's'}`)
  }
}

function include(
  path: string,
  originToken: Token | undefined,
  pos: SourcePos,
  state: FileState,
): { readonly text: string; readonly state: FileState } {
  if (state.readInclude === undefined) throw new ZoneError(pos, '$INCLUDE', '$INCLUDE is not available here')
  if (state.depth >= MAX_INCLUDE_DEPTH) {
    throw new ZoneError(pos, '$INCLUDE', `more than ${MAX_INCLUDE_DEPTH} nested $INCLUDEs (an include loop?)`)
  }
  const origin = originToken === undefined ? state.origin : nameField(originToken, state.origin, pos, '$INCLUDE')
  let included: { file: string; text: string }
  try {
    included = state.readInclude(path, state.file)
  } catch (e) {
    throw new ZoneError(pos, '$INCLUDE', `cannot read ${JSON.stringify(path)}: ${(e as Error).message}`)
  }
  const child: FileState = {
    file: included.file,
    origin,
    dollarTtl: state.dollarTtl,
    defaultTtl: state.defaultTtl,
    previous: undefined,
    readInclude: state.readInclude,
    depth: state.depth + 1,
  }
  return { text: included.text, state: child }
}

const CLASS_TOKEN = /^(?:IN|CH|CS|HS|CLASS\d{1,5})$/i

function record(entry: LogicalLine, pos: SourcePos, state: FileState, shared: Shared): RR {
  const tokens = entry.tokens
  let i = 0
  const owner = entry.indented ? inheritedOwner(state, pos) : ownerField(tokens[i++]!, state, pos)

  let ttl: number | undefined
  let classSeen = false
  for (let k = 0; k < 2; k++) {
    const t = tokens[i]
    if (t === undefined || t.quoted) break
    if (ttl === undefined && isDigit(t.text.charCodeAt(0))) {
      ttl = ttlField(t.text, pos, 'TTL')
    } else if (!classSeen && CLASS_TOKEN.test(t.text)) {
      checkClass(t.text, pos)
      classSeen = true
    } else {
      break
    }
    i++
  }

  const typeToken = tokens[i++]
  if (typeToken === undefined)
    throw new ZoneError(pos, 'type', 'missing type (and rdata) after the owner, TTL and class')
  const type = typeField(typeToken, pos)
  const rdata = parseRdata(type, tokens.slice(i), state.origin, pos)

  if (type === T.SOA && shared.soaMinimum === undefined)
    shared.soaMinimum = Math.min(rdata.readUInt32BE(rdata.length - 4), MAX_TTL)
  ttl ??= state.dollarTtl ?? state.defaultTtl ?? shared.soaMinimum
  if (ttl === undefined) throw new ZoneError(pos, 'TTL', 'no TTL and no $TTL (add a TTL to the record or a $TTL line)')
  return { owner, type, class: CLASS_IN, ttl, rdata, pos }
}

function inheritedOwner(state: FileState, pos: SourcePos): Name {
  const previous = state.previous
  if (previous === undefined) {
    throw new ZoneError(pos, 'owner', 'line starts with whitespace but there is no previous owner to reuse')
  }
  if ('failedLine' in previous) {
    throw new ZoneError(
      pos,
      'owner',
      `line starts with whitespace but the owner on line ${previous.failedLine} is in error`,
    )
  }
  return previous.name
}

function ownerField(token: Token, state: FileState, pos: SourcePos): Name {
  const previous = state.previous
  // Zones repeat the same owner text line after line; parse it once per origin.
  if (previous !== undefined && 'name' in previous && !token.quoted) {
    if (previous.text === token.text && previous.origin === state.origin) return previous.name
  }
  let name: Name
  try {
    name = nameField(token, state.origin, pos, 'owner')
  } catch (e) {
    state.previous = { failedLine: pos.line }
    throw e
  }
  state.previous = { name, text: token.quoted ? undefined : token.text, origin: state.origin }
  return name
}

function nameField(token: Token, origin: Name | undefined, pos: SourcePos, field: string): Name {
  // A quoted "@" is a label holding the character @, not the origin.
  const text = token.quoted && token.text === '@' ? '\\@' : token.text
  try {
    return parseName(text, origin)
  } catch (e) {
    if (e instanceof NameError) throw new ZoneError(pos, field, e.message)
    throw e
  }
}

function ttlField(text: string, pos: SourcePos, field: string): number {
  const ttl = parseTtl(text, MAX_TTL)
  if (ttl === undefined) {
    throw new ZoneError(
      pos,
      field,
      `expected a TTL 0..${MAX_TTL} in seconds or BIND units like 1h30m, got ${JSON.stringify(text)}`,
    )
  }
  return ttl
}

function checkClass(text: string, pos: SourcePos): void {
  const up = text.toUpperCase()
  if (up === 'IN' || up === 'CLASS1') return
  throw new ZoneError(pos, 'class', `only class IN is supported, got ${text}`)
}

/** OPT and the query-only types (128..255: TKEY, TSIG, IXFR, AXFR, MAILB, MAILA, ANY) never appear in zone data. */
function isMetaType(type: number): boolean {
  return type === T.OPT || (type >= 128 && type <= 255)
}

function typeField(token: Token, pos: SourcePos): number {
  const type = token.quoted ? undefined : typeNumber(token.text)
  if (type === undefined) {
    throw new ZoneError(pos, 'type', `unknown type ${JSON.stringify(token.text)} (write unknown types as TYPEnnn)`)
  }
  if (isMetaType(type))
    throw new ZoneError(pos, 'type', `${typeName(type)} is a meta-type and cannot appear in zone data`)
  return type
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39
}
