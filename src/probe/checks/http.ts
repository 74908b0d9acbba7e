/**
 * @module probe/checks/http
 * HTTP(S) check with undici. Every probe opens a fresh connection on its own `Client` and closes
 * it afterwards, as HAProxy does: a kept-alive socket would let a probe pass against a process
 * that no longer accepts connections, skip the TLS handshake (and so certificate expiry), and
 * hide connect time from the latency that DNS answers are ranked by. The cost, one handshake per
 * interval per target, is small at health-check rates.
 *
 * Redirects are never followed (a 3xx is judged by its status like any other), so a target
 * cannot send the prober past the destination guard to another address.
 */

import { readFile } from 'node:fs/promises'
import { isIP, isIPv6 } from 'node:net'
import { Client } from 'undici'
import type { CheckResult, HttpCheck } from '../types.ts'
import { deadline, errorCode, failure, netErrorText } from './tcp.ts'

/** At most this much body is read: enough for a status page or a JSON document, bounded for a hostile one. */
export const MAX_BODY_BYTES = 64 * 1024

const DEFAULT_STATUS_MIN = 200
const DEFAULT_STATUS_MAX = 399

// CA bundles are read once per path for the life of the process (a changed file needs a
// restart). Only successful reads are kept, so a file that appears later is picked up.
const caFiles = new Map<string, Promise<Buffer>>()

function readCa(path: string): Promise<Buffer> {
  let pending = caFiles.get(path)
  if (!pending) {
    pending = readFile(path)
    caFiles.set(path, pending)
    pending.catch(() => caFiles.delete(path))
  }
  return pending
}

/** `[::1]` for IPv6 literals, as URLs and Host headers need them. */
function bracketed(address: string): string {
  return isIPv6(address) ? `[${address}]` : address
}

/** The host part of a Host header value (no port, no brackets), for SNI. */
function hostOnly(host: string): string {
  if (host.startsWith('[')) return host.slice(1, host.indexOf(']'))
  const colon = host.lastIndexOf(':')
  return colon > 0 && host.indexOf(':') === colon ? host.slice(0, colon) : host
}

/**
 * Probes `address` with one HTTP request and judges status, body and load. Never throws: every
 * failure, including a bad CA file, becomes a short stable `error` string.
 */
export async function httpCheck(check: HttpCheck, address: string, signal?: AbortSignal): Promise<CheckResult> {
  const https = check.kind === 'https'
  const port = check.port ?? (https ? 443 : 80)
  const defaultPort = https ? 443 : 80
  // RFC 9110: Host carries the port when it is not the scheme's default.
  const host = check.host ?? (port === defaultPort ? bracketed(address) : `${bracketed(address)}:${port}`)
  // SNI must be a name, never an IP literal (RFC 6066); with neither `sni` nor a named `host`
  // there is none, and the certificate is verified against the address itself.
  const sniName = check.sni ?? (check.host === undefined ? undefined : hostOnly(check.host))
  const servername = sniName === undefined || isIP(sniName) !== 0 ? undefined : sniName

  let ca: Buffer | undefined
  if (https && check.ca !== undefined) {
    try {
      ca = await readCa(check.ca)
    } catch (err) {
      return failure(`ca unreadable: ${errorCode(err) ?? 'error'}`)
    }
  }

  const limit = deadline(check.timeoutMs, signal)
  const started = performance.now()
  let client: Client | undefined
  try {
    // Inside the try: an address no URL can hold (say, with a zone id) makes the constructor throw.
    client = new Client(`${https ? 'https' : 'http'}://${bracketed(address)}:${port}`, {
      connect: {
        timeout: check.timeoutMs,
        rejectUnauthorized: !check.insecure,
        ...(servername === undefined ? {} : { servername }),
        ...(ca === undefined ? {} : { ca }),
      },
      // Backstops only: the deadline signal below bounds headers and body together.
      headersTimeout: check.timeoutMs,
      bodyTimeout: check.timeoutMs,
      pipelining: 1,
    })
    const res = await client.request({
      method: check.method,
      path: check.path,
      headers: { host, 'user-agent': 'gslb-probe' },
      // `reset` sends `connection: close`, telling the server this connection ends with the reply.
      reset: true,
      signal: limit.signal,
    })
    // A rejected status decides the probe; its body is not worth waiting for.
    if (!statusAccepted(res.statusCode, check.statuses)) return failure(`status ${res.statusCode}`)
    // The body is read even when nothing inspects it: a server that sends headers and then
    // stalls is broken, and the latency covers the whole response.
    const body = check.method === 'HEAD' ? '' : await readBody(res.body)
    const latencyMs = performance.now() - started
    if (check.bodyContains !== undefined && !body.includes(check.bodyContains)) return failure('body mismatch')
    // `search` ignores `lastIndex`, so a /g or /y pattern behaves the same on every probe.
    if (check.bodyMatches !== undefined && body.search(check.bodyMatches) < 0) return failure('body mismatch')
    return { ok: true, latencyMs, error: undefined, load: readLoad(check.load, res.headers, body) }
  } catch (err) {
    return failure(limit.reason() ?? httpErrorText(err))
  } finally {
    limit.dispose()
    // `destroy` rather than `close`: nothing else is queued on this client, and a stuck server
    // must not keep the socket open after the probe gave up on it.
    await client?.destroy().catch(() => undefined)
  }
}

/** Reads up to MAX_BODY_BYTES of the body, then stops; the client is destroyed right after. */
async function readBody(body: AsyncIterable<Buffer | string>): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
    chunks.push(buf)
    size += buf.length
    if (size >= MAX_BODY_BYTES) break
  }
  return Buffer.concat(chunks).subarray(0, MAX_BODY_BYTES).toString('utf8')
}

function statusAccepted(status: number, statuses: readonly number[] | undefined): boolean {
  if (statuses === undefined || statuses.length === 0) {
    return status >= DEFAULT_STATUS_MIN && status <= DEFAULT_STATUS_MAX
  }
  return statuses.includes(status)
}

/** Failure wording for undici and TLS errors; plain socket errors go through `netErrorText`. */
function httpErrorText(err: unknown): string {
  const code = errorCode(err)
  switch (code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return 'timeout'
    case 'UND_ERR_SOCKET':
      return 'connection closed'
    case 'UND_ERR_HEADERS_OVERFLOW':
      return 'headers too large'
    case 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH':
      return 'body truncated'
    case undefined:
      return 'request failed'
  }
  if (code.startsWith('HPE_')) return 'bad response'
  if (isTlsCode(code)) return `tls: ${code}`
  if (code.startsWith('UND_ERR_') || code.startsWith('ERR_INVALID_')) return `request failed: ${code}`
  return netErrorText(err)
}

/**
 * OpenSSL verification results (`DEPTH_ZERO_SELF_SIGNED_CERT`, `CERT_HAS_EXPIRED`, ...) and
 * Node's own TLS errors (`ERR_TLS_CERT_ALTNAME_INVALID`, `ERR_SSL_*`) share no prefix.
 */
function isTlsCode(code: string): boolean {
  return /^ERR_(SSL|TLS)_|CERT|^UNABLE_TO_|^HOSTNAME_MISMATCH$|^INVALID_(CA|PURPOSE)$|^PATH_LENGTH_EXCEEDED$/.test(code)
}

type Headers = Record<string, string | string[] | undefined>

/** Load from a header or a dotted JSON path; undefined when absent or not a number. */
function readLoad(spec: HttpCheck['load'], headers: Headers, body: string): number | undefined {
  if (spec === undefined) return undefined
  if ('header' in spec) {
    const value = headers[spec.header.toLowerCase()]
    return normaliseLoad(Array.isArray(value) ? value[0] : value)
  }
  let doc: unknown
  try {
    doc = JSON.parse(body)
  } catch {
    return undefined
  }
  for (const key of spec.json.split('.')) {
    if (typeof doc !== 'object' || doc === null || !Object.hasOwn(doc, key)) return undefined
    doc = (doc as Record<string, unknown>)[key]
  }
  return normaliseLoad(doc)
}

/**
 * 0..1 as is; anything above 1 is read as a percentage (`75` → 0.75) and capped at 1. Negative
 * values, non-numbers and empty strings are ignored. Exactly 1 means fully loaded, not 1 %.
 */
export function normaliseLoad(value: unknown): number | undefined {
  let n: number
  if (typeof value === 'number') n = value
  else if (typeof value === 'string' && value.trim() !== '') n = Number(value.trim().replace(/%$/, ''))
  else return undefined
  if (!Number.isFinite(n) || n < 0) return undefined
  return n > 1 ? Math.min(n / 100, 1) : n
}
