/**
 * @module log
 * The one pino logger. Child loggers are made at startup, never per query; query logging is
 * sampled and guarded so an unsampled query pays one comparison.
 */

import { type LevelWithSilent, type Logger, pino } from 'pino'

export type { Logger }

export const LOG_LEVELS: readonly LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

export function createLogger(level: LevelWithSilent = 'info'): Logger {
  return pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime })
}
