/**
 * @module policy/registry
 * Maps each validated step configuration to its step. One call per step of a service's chain at
 * zone load: stateful steps (smooth weighted round-robin, latency hysteresis) keep their state in
 * the returned instance, so each chain gets its own and a reload starts afresh.
 */

import { ConfigError } from '../errors.ts'
import { failoverStep } from './failover.ts'
import { geoStep } from './geo.ts'
import { latencyStep } from './latency.ts'
import { multivalueStep } from './multivalue.ts'
import { proximityStep } from './proximity.ts'
import { stickyStep } from './sticky.ts'
import type { NamedStep, StepConfig } from './types.ts'
import { weightedStep } from './weighted.ts'

export function makeStep(config: StepConfig): NamedStep {
  switch (config.kind) {
    case 'weighted':
      return weightedStep(config)
    case 'geo':
      return geoStep(config)
    case 'proximity':
      return proximityStep(config)
    case 'latency':
      return latencyStep(config)
    case 'failover':
      return failoverStep(config)
    case 'multivalue':
      return multivalueStep(config)
    case 'sticky':
      return stickyStep(config)
    default: {
      const unknown: never = config
      throw new ConfigError(`unknown policy step kind ${JSON.stringify((unknown as { kind?: unknown }).kind)}`)
    }
  }
}
