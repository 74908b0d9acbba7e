/**
 * A zone file made from lines and compiled as the server would (read, validate, compile), for
 * unit tests that need a compiled zone or table. Any read or validation error fails the test.
 */

import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { expect } from 'vitest'
import { readZoneFile } from '../../src/config/zone-file.ts'
import type { CompiledZone } from '../../src/zone/compile.ts'
import { compileZone } from '../../src/zone/compile.ts'
import { validateZone } from '../../src/zone/validate.ts'

/** Writes `lines` to `dir/name` (a `.zone` master file or a `.yaml` zone) and compiles it. */
export function compileZoneLines(dir: string, name: string, lines: readonly string[]): CompiledZone {
  const path = join(dir, name)
  writeFileSync(path, `${lines.join('\n')}\n`)
  const read = readZoneFile(path, dir)
  expect(read.errors.map((e) => e.message)).toEqual([])
  const v = validateZone(read.origin!, path, read.records)
  expect(v.errors.map((e) => e.message)).toEqual([])
  return compileZone(v.zone!, read.gslb)
}
