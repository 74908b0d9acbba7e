/**
 * @module config/yaml-fast
 * A fast reader for the plain YAML that gslb zone files are written in. It gives the same
 * document nodes as `yaml`'s `parseDocument` (YAMLMap, YAMLSeq, Pair, Scalar with range, type and
 * a value resolved by yaml's own core schema), about ten times faster, in steps that yield
 * between entries (zone/cooperative), so a live reload of a large file does not hold the event
 * loop for hundreds of milliseconds the way one `parseDocument` call does.
 *
 * It reads only what it fully understands, and says so by returning undefined for anything else;
 * the caller then parses the file with `yaml` as before. Errors therefore always come from
 * `yaml`, and so do files written in a style this subset leaves out.
 *
 * The subset: block mappings and block sequences indented with spaces (a sequence may sit at its
 * key's indentation), `- key: value` items, single-line flow collections (`{ a: 1, b: [x, "y"] }`),
 * single-line plain, 'single' and "double" (no escapes) scalars, `|`, `|-` and `|+` literal
 * blocks, and `#` comments. Not in it: anchors, aliases, tags, `?` keys, merge keys, folded or
 * multi-line scalars, escapes, multi-line flow collections, tabs, CR, several documents,
 * directives and duplicate keys.
 */

import { type LineCounter, Pair, parseDocument, Scalar, YAMLMap, YAMLSeq } from 'yaml'
import type { Steps } from '../zone/cooperative.ts'

/**
 * yaml's node classes with `range` kept as three numbers and made into yaml's
 * `[start, valueEnd, nodeEnd]` array only when read (line numbers for errors). A 1 MB zone file
 * has ~60k nodes, and their range arrays were ~115k heap objects (an Array and its elements each),
 * nearly half the document's, alive for the whole load of the file: during a live reload of a
 * large zone set they were promoted and made the mark-compacts that stall answering.
 */
interface CompactRange {
  _s: number
  _v: number
  _e: number
}
const RANGE: PropertyDescriptor = {
  get(this: CompactRange): [number, number, number] {
    return [this._s, this._v, this._e]
  },
  set(this: CompactRange, r: [number, number, number]) {
    this._s = r[0]
    this._v = r[1]
    this._e = r[2]
  },
  configurable: true,
}
class FastScalar extends Scalar {
  _s = 0
  _v = 0
  _e = 0
}
class FastMap extends YAMLMap {
  _s = 0
  _v = 0
  _e = 0
}
class FastSeq extends YAMLSeq {
  _s = 0
  _v = 0
  _e = 0
}
for (const c of [FastScalar, FastMap, FastSeq]) Object.defineProperty(c.prototype, 'range', RANGE)

/** Thrown inside the reader when the text leaves the subset; never escapes this module. */
class Unsupported extends Error {}

interface Tag {
  readonly default?: boolean | 'key'
  readonly test?: RegExp
  readonly format?: string
  resolve(value: string, onError: (msg: string) => void, options: object): unknown
}

/** The very schema `parseDocument` uses by default (YAML 1.2 core), so plain scalars resolve alike. */
const TAGS = (parseDocument('').schema as unknown as { tags: readonly Tag[] }).tags.filter(
  (t) => t.default === true && t.test !== undefined,
)
const RESOLVE_OPTIONS = { intAsBigInt: false }

/** Characters that cannot start a plain scalar (YAML 1.2 c-indicator), `-?:` handled apart. */
const INDICATOR = new Set('[]{},#&*!|>\'"%@`')
/** Entries of a large mapping read between two yields. */
const ENTRIES_PER_STEP = 2

interface Line {
  /** Offset of the first character of the line. */
  readonly start: number
  /** Offset of the first non-space character. */
  readonly content: number
  /** Offset of the line's LF (or the text's end). */
  readonly end: number
}

/**
 * Reads `text` as a document whose root is a block mapping. Returns the root, or undefined when
 * the text leaves the subset (then nothing is known about it: parse it with `yaml`). Fills `lc`
 * with every line start, as `parseDocument` does, only on success.
 */
export function* readFastYaml(text: string, lc: LineCounter): Steps<YAMLMap | undefined> {
  if (text.includes('\r') || text.includes('\t') || text.charCodeAt(0) === 0xfeff) return undefined
  try {
    const reader = new Reader(text)
    const root = yield* reader.document()
    lc.addNewLine(0)
    for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) lc.addNewLine(i + 1)
    return root
  } catch (e) {
    if (e instanceof Unsupported) return undefined
    throw e
  }
}

class Reader {
  readonly #text: string
  /** Lines that carry content (blank and comment-only lines left out). */
  readonly #lines: Line[] = []
  /** Index in #lines of the next line to read. */
  #at = 0

  constructor(text: string) {
    this.#text = text
    let start = 0
    while (start <= text.length) {
      let end = text.indexOf('\n', start)
      if (end < 0) end = text.length
      let content = start
      while (content < end && text.charCodeAt(content) === 0x20) content++
      if (content < end && text.charCodeAt(content) !== 0x23 /* # */) this.#lines.push({ start, content, end })
      start = end + 1
    }
  }

  *document(): Steps<YAMLMap> {
    const first = this.#lines[0]
    if (first === undefined || first.content !== first.start) throw new Unsupported()
    const head = this.#text.slice(first.start, first.start + 3)
    if (head === '---' || head === '...' || this.#text.charCodeAt(first.start) === 0x25 /* % */) throw new Unsupported()
    const root = yield* this.#mapSteps(0, first.content, 0)
    if (this.#at < this.#lines.length) throw new Unsupported()
    return root
  }

  #indent(line: Line): number {
    return line.content - line.start
  }

  /** True when the content at `p` is a block sequence entry (`-` then space or end of line). */
  #isDash(p: number, end: number): boolean {
    return this.#text.charCodeAt(p) === 0x2d && (p + 1 === end || this.#text.charCodeAt(p + 1) === 0x20)
  }

  // -------------------------------------------------------------------------------------------
  // Block collections

  /**
   * A block mapping whose entries sit at column `indent`; the first key starts at `firstKey` on the
   * current line (which may follow a `- ` on that line). The top levels yield between entries, and
   * read their block mapping values as steps too.
   */
  *#mapSteps(indent: number, firstKey: number, depth: number): Steps<YAMLMap> {
    const map = new FastMap()
    const keys = new Set<unknown>()
    let keyAt = firstKey
    for (let n = 1; ; n++) {
      const head = this.#entryHead(keys, indent, keyAt)
      let value: unknown = head.value
      if (value === undefined) {
        const line = this.#lines[this.#at]!
        value =
          depth < 2 && !this.#isDash(line.content, line.end)
            ? yield* this.#mapSteps(head.nested!, line.content, depth + 1)
            : this.#block(head.nested!, depth + 1)
      }
      map.items.push(new Pair(head.key, value))
      if (depth < 2 && n % ENTRIES_PER_STEP === 0) yield
      const next = this.#lines[this.#at]
      if (next === undefined || this.#indent(next) < indent) break
      if (this.#indent(next) > indent || this.#isDash(next.content, next.end)) throw new Unsupported()
      keyAt = next.content
    }
    map.range = [firstKey, firstKey, firstKey]
    return map
  }

  #map(indent: number, firstKey: number, depth: number): YAMLMap {
    const map = new FastMap()
    const keys = new Set<unknown>()
    let keyAt = firstKey
    for (;;) {
      const head = this.#entryHead(keys, indent, keyAt)
      map.items.push(new Pair(head.key, head.value ?? this.#block(head.nested!, depth + 1)))
      const next = this.#lines[this.#at]
      if (next === undefined || this.#indent(next) < indent) break
      if (this.#indent(next) > indent || this.#isDash(next.content, next.end)) throw new Unsupported()
      keyAt = next.content
    }
    map.range = [firstKey, firstKey, firstKey]
    return map
  }

  /**
   * One `key: value` entry starting at `keyAt` on the current line. Returns the key and the value,
   * or, when the value is a block collection on the lines below, its indentation in `nested` for
   * the caller to read (as steps or not); the current line is then the collection's first line.
   */
  #entryHead(
    keys: Set<unknown>,
    indent: number,
    keyAt: number,
  ): { readonly key: Scalar; readonly value: unknown; readonly nested: number | undefined } {
    const line = this.#lines[this.#at]!
    const text = this.#text
    const key = this.#key(keyAt, line.end)
    if (keys.has(key.value)) throw new Unsupported()
    keys.add(key.value)
    // After the colon: nothing (a nested block or null), a literal block, or an inline value.
    const colon = key.range![1]
    let p = colon + 1
    while (p < line.end && text.charCodeAt(p) === 0x20) p++
    this.#at++
    if (p === line.end || text.charCodeAt(p) === 0x23 /* # */) {
      const next = this.#lines[this.#at]
      if (next !== undefined && this.#indent(next) > indent)
        return { key, value: undefined, nested: this.#indent(next) }
      // A sequence may sit at its key's indentation.
      if (next !== undefined && this.#indent(next) === indent && this.#isDash(next.content, next.end))
        return { key, value: undefined, nested: indent }
      return { key, value: this.#null(colon + 1), nested: undefined }
    }
    if (text.charCodeAt(p) === 0x7c /* | */) return { key, value: this.#literal(p, line, indent), nested: undefined }
    const value = this.#inline(p, line.end)
    const next = this.#lines[this.#at]
    // A deeper line after an inline value continues a multi-line scalar: not in the subset.
    if (next !== undefined && this.#indent(next) > indent) throw new Unsupported()
    return { key, value, nested: undefined }
  }

  /** The block collection starting on the current line, which is indented by `indent`. */
  #block(indent: number, depth: number): YAMLMap | YAMLSeq {
    const line = this.#lines[this.#at]!
    if (this.#isDash(line.content, line.end)) return this.#seq(indent, depth)
    return this.#map(indent, line.content, depth)
  }

  #seq(indent: number, depth: number): YAMLSeq {
    const seq = new FastSeq()
    const text = this.#text
    const first = this.#lines[this.#at]!.content
    for (;;) {
      const line = this.#lines[this.#at]!
      let p = line.content + 1
      while (p < line.end && text.charCodeAt(p) === 0x20) p++
      // `-` alone (value on the next lines) and `- - x` are left to yaml.
      if (p === line.end || text.charCodeAt(p) === 0x23 || this.#isDash(p, line.end)) throw new Unsupported()
      const c = text[p]
      if (c !== '{' && c !== '[' && this.#startsEntry(p, line.end)) {
        // `- key: value`: a mapping whose keys line up at this column.
        seq.items.push(this.#map(p - line.start, p, depth + 1))
      } else {
        seq.items.push(this.#inline(p, line.end))
        this.#at++
        const next = this.#lines[this.#at]
        if (next !== undefined && this.#indent(next) > indent) throw new Unsupported()
      }
      const next = this.#lines[this.#at]
      if (next === undefined || this.#indent(next) < indent) break
      if (this.#indent(next) > indent) throw new Unsupported()
      // Same column without a dash: the parent mapping's next key (a sequence at its key's indent).
      if (!this.#isDash(next.content, next.end)) break
    }
    seq.range = [first, first, first]
    return seq
  }

  /** Whether a block mapping key (`key:` then space or end) starts at `p`. */
  #startsEntry(p: number, end: number): boolean {
    const text = this.#text
    const c = text[p]!
    if (c === '"' || c === "'") {
      const close = text.indexOf(c, p + 1)
      return close > 0 && close < end && text.charCodeAt(close + 1) === 0x3a
    }
    for (let i = p; i < end; i++) {
      const d = text.charCodeAt(i)
      if (d === 0x3a && (i + 1 === end || text.charCodeAt(i + 1) === 0x20)) return true
      if (d === 0x23 && text.charCodeAt(i - 1) === 0x20) return false
    }
    return false
  }

  /** A block mapping key at `p`; its range[1] is the offset of the colon. */
  #key(p: number, end: number): Scalar {
    const text = this.#text
    const c = text[p]!
    let scalar: Scalar
    let colon: number
    if (c === '"' || c === "'") {
      scalar = this.#quoted(p, end)
      colon = scalar.range![1]
    } else {
      this.#plainStart(p, end)
      colon = -1
      for (let i = p; i < end; i++) {
        const d = text.charCodeAt(i)
        if (d === 0x3a && (i + 1 === end || text.charCodeAt(i + 1) === 0x20)) {
          colon = i
          break
        }
        if (d === 0x23 && text.charCodeAt(i - 1) === 0x20) break
      }
      if (colon < 0) throw new Unsupported()
      let e = colon
      while (text.charCodeAt(e - 1) === 0x20) e--
      const source = text.slice(p, e)
      if (source === '<<') throw new Unsupported()
      scalar = plain(source, p, e)
    }
    if (text.charCodeAt(colon) !== 0x3a) throw new Unsupported()
    if (colon + 1 < end && text.charCodeAt(colon + 1) !== 0x20) throw new Unsupported()
    scalar.range = [p, colon, colon]
    return scalar
  }

  /** An inline value from `p` to the end of the line (`end`): flow collection, quoted or plain. */
  #inline(p: number, end: number): Scalar | YAMLMap | YAMLSeq {
    const text = this.#text
    const c = text[p]!
    let node: Scalar | YAMLMap | YAMLSeq
    let after: number
    if (c === '{' || c === '[') {
      const flow = new FlowReader(text, p, end)
      node = flow.node()
      after = flow.pos
    } else if (c === '"' || c === "'") {
      node = this.#quoted(p, end)
      after = node.range![1]
    } else {
      this.#plainStart(p, end)
      let e = end
      for (let i = p; i < end; i++) {
        const d = text.charCodeAt(i)
        if (d === 0x23 && text.charCodeAt(i - 1) === 0x20) {
          e = i
          break
        }
        // `a: b: c` is an error in YAML; let yaml say so.
        if (d === 0x3a && (i + 1 === end || text.charCodeAt(i + 1) === 0x20)) throw new Unsupported()
      }
      while (text.charCodeAt(e - 1) === 0x20) e--
      return plain(text.slice(p, e), p, e)
    }
    // Only spaces or a comment may follow a quoted scalar or a flow collection.
    while (after < end && text.charCodeAt(after) === 0x20) after++
    if (after < end && text.charCodeAt(after) !== 0x23) throw new Unsupported()
    if (after < end && text.charCodeAt(after - 1) !== 0x20) throw new Unsupported()
    return node
  }

  #plainStart(p: number, end: number): void {
    const c = this.#text[p]!
    if (INDICATOR.has(c)) throw new Unsupported()
    if ((c === '-' || c === '?' || c === ':') && (p + 1 === end || this.#text.charCodeAt(p + 1) === 0x20))
      throw new Unsupported()
  }

  /** A 'single' or "double" quoted scalar on one line; range[1] is just past the closing quote. */
  #quoted(p: number, end: number): Scalar {
    return quotedScalar(this.#text, p, end)
  }

  #null(at: number): Scalar {
    const s = new FastScalar(null)
    s.range = [at, at, at]
    s.source = ''
    s.type = Scalar.PLAIN
    return s
  }

  /**
   * A literal block (`|`, `|-`, `|+`) whose header is at `p` on `header`, under a key indented by
   * `parent`. Its lines are read from the raw text: blank lines inside it count.
   */
  #literal(p: number, header: Line, parent: number): Scalar {
    const text = this.#text
    let chomp: 'clip' | 'strip' | 'keep' = 'clip'
    let q = p + 1
    if (text[q] === '-') chomp = 'strip'
    else if (text[q] === '+') chomp = 'keep'
    if (chomp !== 'clip') q++
    while (q < header.end && text.charCodeAt(q) === 0x20) q++
    if (q < header.end && !(text.charCodeAt(q) === 0x23 && text.charCodeAt(q - 1) === 0x20)) throw new Unsupported()
    // Content indentation: that of the first non-blank line below the header.
    let indent = -1
    let pos = header.end + 1
    const raw: Array<[number, number]> = []
    while (pos <= text.length) {
      const end = text.indexOf('\n', pos)
      if (end < 0) {
        // A block running to the end of a text without a final newline: let yaml decide.
        if (pos < text.length) throw new Unsupported()
        break
      }
      let sp = pos
      while (sp < end && text.charCodeAt(sp) === 0x20) sp++
      if (sp === end) {
        // Blank line: part of the block if more content follows at the block's indentation.
        raw.push([pos, end])
      } else {
        const ind = sp - pos
        if (indent < 0) {
          if (ind <= parent) break
          // Leading blank lines longer than the first content line are an error in YAML.
          for (const [s, e] of raw) if (e - s > ind) throw new Unsupported()
          indent = ind
        }
        if (ind < indent) break
        raw.push([pos, end])
      }
      pos = end + 1
    }
    if (indent < 0) throw new Unsupported()
    // Trailing blank lines belong to the block only as far as chomping says; the next node starts after.
    let last = raw.length
    while (last > 0 && raw[last - 1]![1] - raw[last - 1]![0] <= indent && isBlank(text, raw[last - 1]!)) last--
    const body = raw.slice(0, last).map(([s, e]) => (e - s <= indent ? '' : text.slice(s + indent, e)))
    let value = body.join('\n')
    if (chomp === 'clip') value += '\n'
    else if (chomp === 'keep') value += '\n' + '\n'.repeat(raw.length - last)
    // Skip the content lines consumed (blank lines were never in #lines).
    const stop = raw.length > 0 ? raw[raw.length - 1]![1] : header.end
    while (this.#at < this.#lines.length && this.#lines[this.#at]!.start <= stop) this.#at++
    const s = new FastScalar(value)
    s.range = [p, stop, stop]
    s.source = value
    s.type = Scalar.BLOCK_LITERAL
    return s
  }
}

function isBlank(text: string, [s, e]: [number, number]): boolean {
  for (let i = s; i < e; i++) if (text.charCodeAt(i) !== 0x20) return false
  return true
}

/** A plain scalar resolved as yaml's core schema does (null, bool, int, float, else string). */
function plain(source: string, start: number, end: number): Scalar {
  if (source.length === 0) throw new Unsupported()
  let s: Scalar
  const tag = TAGS.find((t) => t.test!.test(source))
  if (tag) {
    let failed = false
    const v = tag.resolve(source, () => (failed = true), RESOLVE_OPTIONS)
    if (failed) throw new Unsupported()
    // As yaml's composeScalar: a resolver may return the node itself (null, bool, float).
    s = v instanceof Scalar ? v : new FastScalar(v)
    if (tag.format) s.format = tag.format
  } else {
    s = new FastScalar(source)
  }
  s.range = [start, end, end]
  s.source = source
  s.type = Scalar.PLAIN
  return s
}

function quotedScalar(text: string, p: number, end: number): Scalar {
  const q = text[p]!
  let value: string
  let close: number
  if (q === '"') {
    close = text.indexOf('"', p + 1)
    if (close < 0 || close >= end) throw new Unsupported()
    value = text.slice(p + 1, close)
    if (value.includes('\\')) throw new Unsupported()
  } else {
    value = ''
    let i = p + 1
    for (;;) {
      const j = text.indexOf("'", i)
      if (j < 0 || j >= end) throw new Unsupported()
      value += text.slice(i, j)
      if (text[j + 1] === "'") {
        value += "'"
        i = j + 2
      } else {
        close = j
        break
      }
    }
  }
  const s = new FastScalar(value)
  s.range = [p, close + 1, close + 1]
  s.source = value
  s.type = q === '"' ? Scalar.QUOTE_DOUBLE : Scalar.QUOTE_SINGLE
  return s
}

/** A flow collection on one line, from `{` or `[` at `pos` to its closing bracket. */
class FlowReader {
  readonly #text: string
  readonly #end: number
  pos: number

  constructor(text: string, pos: number, end: number) {
    this.#text = text
    this.pos = pos
    this.#end = end
  }

  node(): Scalar | YAMLMap | YAMLSeq {
    const c = this.#text[this.pos]
    if (c === '{') return this.#map()
    if (c === '[') return this.#seq()
    if (c === '"' || c === "'") {
      const s = quotedScalar(this.#text, this.pos, this.#end)
      this.pos = s.range![1]
      return s
    }
    return this.#plain()
  }

  #spaces(): void {
    while (this.pos < this.#end && this.#text.charCodeAt(this.pos) === 0x20) this.pos++
    if (this.pos >= this.#end) throw new Unsupported()
  }

  #map(): YAMLMap {
    const map = new FastMap()
    map.flow = true
    const start = this.pos++
    const keys = new Set<unknown>()
    for (;;) {
      this.#spaces()
      if (this.#text[this.pos] === '}') break
      const key = this.node()
      if (!(key instanceof Scalar) || keys.has(key.value)) throw new Unsupported()
      keys.add(key.value)
      this.#spaces()
      if (this.#text[this.pos] !== ':') throw new Unsupported()
      this.pos++
      // After a plain key the colon needs a space (`a:b` is one scalar); after a quoted one, not.
      this.#spaces()
      const c = this.#text[this.pos]
      if (c === ',' || c === '}') throw new Unsupported()
      map.items.push(new Pair(key, this.node()))
      this.#spaces()
      if (this.#text[this.pos] === ',') this.pos++
      else if (this.#text[this.pos] !== '}') throw new Unsupported()
    }
    this.pos++
    map.range = [start, this.pos, this.pos]
    return map
  }

  #seq(): YAMLSeq {
    const seq = new FastSeq()
    seq.flow = true
    const start = this.pos++
    for (;;) {
      this.#spaces()
      if (this.#text[this.pos] === ']') break
      const item = this.node()
      this.#spaces()
      // `[a: b]` is a mapping inside a sequence: not in the subset.
      if (this.#text[this.pos] === ':') throw new Unsupported()
      seq.items.push(item)
      if (this.#text[this.pos] === ',') this.pos++
      else if (this.#text[this.pos] !== ']') throw new Unsupported()
    }
    this.pos++
    seq.range = [start, this.pos, this.pos]
    return seq
  }

  /** A plain scalar in flow context: ends at `,`, a bracket, `: `, `:` before one of those, or ` #`. */
  #plain(): Scalar {
    const text = this.#text
    const start = this.pos
    const c = text[start]!
    if (INDICATOR.has(c)) throw new Unsupported()
    const next = text.charCodeAt(start + 1)
    if ((c === '-' || c === '?' || c === ':') && (next === 0x20 || ',[]{}'.includes(text[start + 1] ?? ',')))
      throw new Unsupported()
    let i = start
    for (; i < this.#end; i++) {
      const d = text[i]!
      if (d === ',' || d === '[' || d === ']' || d === '{' || d === '}') break
      if (d === ':') {
        const n = text[i + 1]
        if (n === undefined || n === ' ' || n === ',' || n === ']' || n === '}' || n === '[' || n === '{') break
      }
      if (d === '#' && text[i - 1] === ' ') throw new Unsupported()
    }
    let e = i
    while (text.charCodeAt(e - 1) === 0x20) e--
    this.pos = e
    return plain(text.slice(start, e), start, e)
  }
}
