/**
 * AnswerNode: the exact-name templates of up to four types sit inline, more go to a Map; both
 * layouts must answer every type they were given, nothing else, and survive withExact (the DS
 * answer a parent zone puts on a child's apex).
 */

import { describe, expect, it } from 'vitest'
import { TemplateBuilder } from '../../../src/dns/builder.ts'
import { parseName } from '../../../src/dns/name.ts'
import type { Template } from '../../../src/dns/template.ts'
import { T } from '../../../src/dns/types.ts'
import type { CompiledZone } from '../../../src/zone/compile.ts'
import { AnswerNode } from '../../../src/zone/node.ts'

const name = parseName('www.example.com.')
const template = (qtype: number): Template => new TemplateBuilder({ name, qtype, standIn: false }).finish(0x8400)
const other = template(0)
const zone = {} as CompiledZone

function node(types: readonly number[]): { node: AnswerNode; byType: Map<number, Template> } {
  const byType = new Map(types.map((t) => [t, template(t)] as const))
  return { node: new AnswerNode(zone, byType, other, undefined, undefined), byType }
}

describe('AnswerNode', () => {
  for (const types of [[], [T.A], [T.A, T.ANY], [T.A, T.AAAA, T.MX, T.ANY], [T.A, T.AAAA, T.MX, T.TXT, T.ANY, T.SOA]]) {
    it(`answers exactly its ${types.length} type(s)`, () => {
      const { node: n, byType } = node(types)
      for (const [type, t] of byType) expect(n.exact(type)).toBe(t)
      for (const absent of [T.NS, T.SRV, T.CAA, 0, 65535]) expect(n.exact(absent)).toBeUndefined()
      expect(n.exact(-1)).toBeUndefined()
      expect([...n.exactEntries()]).toEqual([...byType])
      expect(n.exactOther).toBe(other)
    })
  }

  it('withExact adds or replaces one type and leaves the original as it was', () => {
    for (const types of [
      [T.A, T.ANY],
      [T.A, T.AAAA, T.MX, T.ANY],
      [T.A, T.AAAA, T.MX, T.TXT, T.ANY],
    ]) {
      const { node: n, byType } = node(types)
      const ds = template(T.DS)
      const withDs = n.withExact(T.DS, ds)
      expect(withDs.exact(T.DS)).toBe(ds)
      for (const [type, t] of byType) expect(withDs.exact(type)).toBe(t)
      expect(n.exact(T.DS)).toBeUndefined()
      const a2 = template(T.A)
      expect(withDs.withExact(T.A, a2).exact(T.A)).toBe(a2)
      expect(withDs.zone).toBe(zone)
    }
  })
})
