/**
 * @module config/yaml-util
 * Small typed accessors over `yaml` document nodes that remember where each value came from, so
 * every validation error can say file, line and field.
 */

import { isMap, isScalar, isSeq, type LineCounter, type Node, type Pair, type YAMLMap } from 'yaml'
import { type SourcePos, ZoneError } from '../errors.ts'

export class YamlSource {
  readonly file: string
  readonly #lc: LineCounter
  readonly errors: ZoneError[]
  /** Values the parsers of this file share between pools and services (see Interner). */
  readonly shared = new Interner()

  constructor(file: string, lc: LineCounter, errors: ZoneError[]) {
    this.file = file
    this.#lc = lc
    this.errors = errors
  }

  pos(node: unknown): SourcePos {
    const range = (node as { range?: [number, number, number] } | null)?.range
    return { file: this.file, line: range ? this.#lc.linePos(range[0]).line : 1 }
  }

  error(node: unknown, field: string, detail: string): void {
    this.errors.push(new ZoneError(this.pos(node), field, detail))
  }

  /** Entries of a mapping as [key text, key node, value node]; reports and skips non-mappings. */
  entries(node: unknown, field: string): Array<[string, Node, unknown]> {
    if (!isMap(node)) {
      this.error(node, field, 'expected a mapping (key: value lines)')
      return []
    }
    return (node as YAMLMap).items.map((p: Pair) => [keyText(p.key), p.key as Node, p.value])
  }

  /** Reports keys outside `allowed`, naming the ones that are. */
  checkKeys(entries: ReadonlyArray<[string, Node, unknown]>, allowed: readonly string[], where: string): void {
    for (const [k, keyNode] of entries) {
      if (!allowed.includes(k)) this.error(keyNode, `${where}.${k}`, `unknown key; known keys: ${allowed.join(', ')}`)
    }
  }

  list(node: unknown, field: string): unknown[] {
    if (isSeq(node)) return node.items
    this.error(node, field, 'expected a list')
    return []
  }

  /** A scalar's value, or undefined (with an error) for a list or mapping. */
  scalar(node: unknown, field: string): unknown {
    if (isScalar(node)) return node.value
    this.error(node, field, 'expected a single value')
    return undefined
  }

  string(node: unknown, field: string): string | undefined {
    const v = this.scalar(node, field)
    if (v === undefined) return undefined
    if (typeof v !== 'string' && typeof v !== 'number') {
      this.error(node, field, `expected text, got ${JSON.stringify(v)}`)
      return undefined
    }
    return String(v)
  }

  number(node: unknown, field: string, min: number, max: number, integer = true): number | undefined {
    const v = this.scalar(node, field)
    if (v === undefined) return undefined
    if (typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < min || v > max) {
      this.error(
        node,
        field,
        `expected ${integer ? 'a whole number' : 'a number'} from ${min} to ${max}, got ${JSON.stringify(v)}`,
      )
      return undefined
    }
    return v
  }

  boolean(node: unknown, field: string): boolean | undefined {
    const v = this.scalar(node, field)
    if (v === undefined) return undefined
    if (typeof v !== 'boolean') {
      this.error(node, field, `expected true or false, got ${JSON.stringify(v)}`)
      return undefined
    }
    return v
  }

  /** A list of texts, also accepting a single text for a one-element list. */
  strings(node: unknown, field: string): string[] {
    if (isSeq(node)) return node.items.map((n) => this.string(n, field)).filter((s) => s !== undefined)
    const one = this.string(node, field)
    return one === undefined ? [] : [one]
  }
}

/**
 * Equal values of one file, made once and shared: the names and addresses a loaded zone keeps, and
 * small frozen parts that many pools and services repeat (locations, pool lists, step settings). A
 * loaded zone set lives until the next reload, and V8's full-GC pauses grow with the number of
 * live objects (a 10k-service set held ~1.2M of them), so each repeat costs on every major GC.
 * One per file: nothing outlives the parse but the values themselves.
 */
export class Interner {
  readonly #strings = new Map<string, string>()
  readonly #values = new Map<string, unknown>()

  /** `text` as a flat string of its own, one per distinct text (see flatString). */
  string(text: string): string {
    let s = this.#strings.get(text)
    if (s === undefined) {
      s = flatString(text)
      this.#strings.set(s, s)
    }
    return s
  }

  /** The value stored under `key`, made by `make` the first time. Shared: it must be immutable. */
  value<T>(key: string, make: () => T): T {
    let v = this.#values.get(key) as T | undefined
    if (v === undefined) {
      v = make()
      this.#values.set(key, v)
    }
    return v
  }
}

/**
 * A copy of `text` stored as a string of its own. Scalars are cut out of the file's text, and V8
 * keeps a cut of 13 or more characters as a view into its source (a sliced string): one kept
 * endpoint name would keep the whole multi-megabyte file text alive. JSON's round trip is exact
 * for every string and always allocates a fresh one.
 */
export function flatString(text: string): string {
  return JSON.parse(JSON.stringify(text)) as string
}

export function keyText(key: unknown): string {
  return isScalar(key) ? String(key.value) : String(key)
}

export { isMap, isScalar, isSeq }
