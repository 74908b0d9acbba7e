/**
 * @module probe/checks/tcp
 * TCP connect check: the target is up when the three-way handshake completes within the timeout.
 * Also home to the pieces every check shares (the deadline and socket error wording), so the
 * HTTP and DNS checks fail with the same short strings.
 */

import { connect } from 'node:net'
import type { CheckResult, TcpCheck } from '../types.ts'

/** A failed probe. Latency stays undefined: only successful probes feed the latency average. */
export function failure(error: string): CheckResult {
  return { ok: false, latencyMs: undefined, error, load: undefined }
}

/** One probe's time limit joined with the caller's cancellation, as a single signal. */
export interface Deadline {
  readonly signal: AbortSignal
  /** Why the signal fired: `timeout` or `aborted`; undefined while it has not. */
  reason(): 'timeout' | 'aborted' | undefined
  /** Clears the timer; call once the probe has finished either way. */
  dispose(): void
}

export function deadline(timeoutMs: number, outer: AbortSignal | undefined): Deadline {
  const controller = new AbortController()
  let why: 'timeout' | 'aborted' | undefined
  const fire = (reason: 'timeout' | 'aborted'): void => {
    if (why) return
    why = reason
    controller.abort(new Error(reason))
  }
  // A plain timer rather than AbortSignal.timeout: it can be cleared, so finished probes leave
  // nothing behind, and it is unref'd so a pending probe never keeps the process alive.
  const timer = setTimeout(() => fire('timeout'), Math.max(1, timeoutMs))
  timer.unref()
  const onAbort = (): void => fire('aborted')
  if (outer?.aborted) fire('aborted')
  else outer?.addEventListener('abort', onAbort, { once: true })
  return {
    signal: controller.signal,
    reason: () => why,
    dispose: () => {
      clearTimeout(timer)
      outer?.removeEventListener('abort', onAbort)
    },
  }
}

const ERRNO_TEXT: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connect refused',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EADDRNOTAVAIL: 'address not available',
  ETIMEDOUT: 'timeout',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
}

/**
 * Short, stable wording for a socket-level error. Messages carry addresses and ports, which
 * would make every target's error unique; codes do not, so only the code is kept.
 */
export function netErrorText(err: unknown): string {
  const code = errorCode(err)
  if (code === undefined) return 'connect failed'
  return ERRNO_TEXT[code] ?? `connect failed: ${code}`
}

/** The `code` of an error, looking inside the AggregateError that happy-eyeballs connects raise. */
export function errorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined
  if ('code' in err && typeof err.code === 'string') return err.code
  if (err instanceof AggregateError) {
    for (const inner of err.errors) {
      const code = errorCode(inner)
      if (code !== undefined) return code
    }
  }
  return undefined
}

/**
 * Connects to `address:port` and closes at once. Latency is the handshake time. The socket is
 * destroyed as soon as it connects (a FIN, not a reset), so a server sees an ordinary short-lived
 * client rather than an error in its logs.
 */
export function tcpCheck(check: TcpCheck, address: string, signal?: AbortSignal): Promise<CheckResult> {
  const port = check.port
  if (port === undefined) return Promise.resolve(failure('no port configured'))
  const limit = deadline(check.timeoutMs, signal)
  if (limit.reason()) {
    limit.dispose()
    return Promise.resolve(failure(limit.reason()!))
  }
  return new Promise<CheckResult>((resolve) => {
    const started = performance.now()
    const socket = connect({ host: address, port, noDelay: true })
    let done = false
    const finish = (result: CheckResult): void => {
      if (done) return
      done = true
      limit.dispose()
      limit.signal.removeEventListener('abort', onAbort)
      socket.destroy()
      resolve(result)
    }
    const onAbort = (): void => finish(failure(limit.reason() ?? 'aborted'))
    limit.signal.addEventListener('abort', onAbort, { once: true })
    socket.once('connect', () => {
      finish({ ok: true, latencyMs: performance.now() - started, error: undefined, load: undefined })
    })
    // `on`, not `once`: a late error after we are done must still have a listener, or it would crash.
    socket.on('error', (err) => finish(failure(netErrorText(err))))
  })
}
