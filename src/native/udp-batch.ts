/**
 * @module native/udp-batch
 * Loads the batched UDP addon (udp_batch.c, built by build.ts into build/udp_batch.node) and gives
 * it types. Loading is attempted once; `loadUdpBatch()` says why it is unavailable instead of
 * throwing, so the server can fall back to dgram with a clear log line.
 */

import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

/** An open socket, owned by the addon; only ever passed back to it. */
export type UdpBatchHandle = { readonly __udpBatchHandle: unique symbol }

export interface UdpBatchAddon {
  /** Datagrams per batch, bytes per received datagram, bytes per meta record, least out size. */
  readonly BATCH: number
  readonly IN_SLOT: number
  readonly META: number
  readonly MIN_OUT: number
  open(
    family: 4 | 6,
    host: string,
    port: number,
    reusePort: boolean,
    recvBufferSize: number,
    input: Buffer,
    meta: Buffer,
    output: Buffer,
    onBatch: (count: number) => void,
  ): [UdpBatchHandle, number]
  /** Sends the responses of the current batch's slots before `upTo`, so `output` can be reused. */
  flush(handle: UdpBatchHandle, upTo: number): void
  /** [batches, datagrams received, responses the kernel refused] */
  stats(handle: UdpBatchHandle): [number, number, number]
  close(handle: UdpBatchHandle): void
  /** Sends all of the handle's SO_REUSEPORT group's datagrams to its socket number `index`; whether it took. */
  steer(handle: UdpBatchHandle, index: number): boolean
}

/** Meta record fields (int32 indexes), as udp_batch.c writes them. */
export const META_LEN = 0
export const META_FAMILY = 1
export const META_PORT = 2
export const META_OUT_OFFSET = 3
export const META_OUT_LEN = 4
/** Byte offset of the source address within a meta record. */
export const META_ADDR = 32

export const ADDON_FILE = fileURLToPath(new URL('../../build/udp_batch.node', import.meta.url))

let loaded: UdpBatchAddon | string | undefined

/** The addon, or the reason it cannot be used here. */
export function loadUdpBatch(): UdpBatchAddon | string {
  if (loaded !== undefined) return loaded
  if (process.platform !== 'linux') loaded = `batched UDP needs Linux (this is ${process.platform})`
  else if (!existsSync(ADDON_FILE)) loaded = `${ADDON_FILE} is not built (npm run build:native)`
  else {
    try {
      loaded = createRequire(import.meta.url)(ADDON_FILE) as UdpBatchAddon
    } catch (err) {
      loaded = `${ADDON_FILE} does not load: ${err instanceof Error ? err.message : String(err)}`
    }
  }
  return loaded
}
