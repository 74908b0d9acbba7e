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

export function keyText(key: unknown): string {
  return isScalar(key) ? String(key.value) : String(key)
}

export { isMap, isScalar, isSeq }
