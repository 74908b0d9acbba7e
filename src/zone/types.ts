/**
 * @module zone/types
 * Records as loaded from zone files, before compilation. Every record remembers where it came
 * from so that validation errors can name the file and line.
 */

import type { Name } from '../dns/name.ts'
import type { SourcePos } from '../errors.ts'

export const CLASS_IN = 1
export const CLASS_CH = 3

/** One resource record in canonical form: rdata is uncompressed wire bytes without the length prefix. */
export interface RR {
  readonly owner: Name
  readonly type: number
  readonly class: number
  readonly ttl: number
  readonly rdata: Buffer
  readonly pos: SourcePos
}

/** Largest TTL allowed (RFC 2181 section 8: 2^31 - 1). */
export const MAX_TTL = 0x7fffffff
