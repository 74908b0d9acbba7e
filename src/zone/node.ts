/**
 * @module zone/node
 * What the zone table holds per served name. One object per name, on purpose: a large zone set has
 * a hundred thousand names or more, every major GC marks each of their objects, and its pauses
 * (during and after a live reload) grow with that count. The templates answered at the exact name
 * sit inline for up to four types (ANY included), which covers nearly every name; each name used
 * to carry a Map for them, two heap objects more per name (120k on the scale bench's zone set).
 */

import type { Template } from '../dns/template.ts'
import type { ServiceNode } from '../policy/service.ts'
import type { BelowAnswers, CompiledZone } from './compile.ts'

/** Never a QTYPE (those are 0..65535): marks an unused inline slot. */
const NONE = -1

/** Answers for query names that end at a node which exists in the zone (or is an empty non-terminal). */
export class AnswerNode {
  readonly zone: CompiledZone
  /** Response for any QTYPE at this exact name that `exact` has no template for. */
  readonly exactOther: Template
  /** The load-balanced service at this name: answers A, AAAA and ANY. */
  readonly service: ServiceNode | undefined
  /**
   * Response for a name below this node that does not exist, when this node decides it: a
   * referral (this node is or lies below a zone cut) or a wildcard `*.<this node>`.
   * Undefined means NXDOMAIN from the zone.
   */
  readonly below: BelowAnswers | undefined
  readonly #type0: number
  readonly #tpl0: Template | undefined
  readonly #type1: number
  readonly #tpl1: Template | undefined
  readonly #type2: number
  readonly #tpl2: Template | undefined
  readonly #type3: number
  readonly #tpl3: Template | undefined
  /** Only for a name with more than four types: then every type is here and no slot is used. */
  readonly #more: ReadonlyMap<number, Template> | undefined

  constructor(
    zone: CompiledZone,
    exact: ReadonlyMap<number, Template>,
    exactOther: Template,
    below: BelowAnswers | undefined,
    service: ServiceNode | undefined,
  ) {
    this.zone = zone
    this.exactOther = exactOther
    this.below = below
    this.service = service
    const types: number[] = []
    const tpls: (Template | undefined)[] = []
    if (exact.size <= 4) {
      for (const [type, t] of exact) {
        types.push(type)
        tpls.push(t)
      }
    }
    while (types.length < 4) {
      types.push(NONE)
      tpls.push(undefined)
    }
    this.#type0 = types[0]!
    this.#tpl0 = tpls[0]
    this.#type1 = types[1]!
    this.#tpl1 = tpls[1]
    this.#type2 = types[2]!
    this.#tpl2 = tpls[2]
    this.#type3 = types[3]!
    this.#tpl3 = tpls[3]
    this.#more = exact.size > 4 ? new Map(exact) : undefined
  }

  /** The response for `qtype` when the query name is exactly this node, if it has its own. */
  exact(qtype: number): Template | undefined {
    if (qtype === this.#type0) return this.#tpl0
    if (qtype === this.#type1) return this.#tpl1
    if (qtype === this.#type2) return this.#tpl2
    if (qtype === this.#type3) return this.#tpl3
    return this.#more?.get(qtype)
  }

  /** Every (QTYPE, response) pair of `exact`, in the order they were given. */
  exactEntries(): Map<number, Template> {
    if (this.#more !== undefined) return new Map(this.#more)
    const out = new Map<number, Template>()
    const slots: [number, Template | undefined][] = [
      [this.#type0, this.#tpl0],
      [this.#type1, this.#tpl1],
      [this.#type2, this.#tpl2],
      [this.#type3, this.#tpl3],
    ]
    for (const [type, t] of slots) if (type !== NONE && t !== undefined) out.set(type, t)
    return out
  }

  /** This node with `qtype` answered by `t` at the exact name (replacing what it had for it). */
  withExact(qtype: number, t: Template): AnswerNode {
    return new AnswerNode(this.zone, this.exactEntries().set(qtype, t), this.exactOther, this.below, this.service)
  }
}
