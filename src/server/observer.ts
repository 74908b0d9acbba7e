/**
 * @module server/observer
 * Hook called after every answered query, for metrics and the sampled query log.
 */

import type { Transport } from '../query/handle.ts'

export type QueryObserver = (query: Buffer, response: Buffer, transport: Transport, client: string) => void

export const NO_OBSERVER: QueryObserver = () => {}
