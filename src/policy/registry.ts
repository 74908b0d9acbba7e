/**
 * @module policy/registry
 * Maps each validated step configuration to its step. One call per step of a service's chain at
 * zone load: stateful steps (smooth weighted round-robin, latency hysteresis) keep their state in
 * the returned instance, so each chain gets its own and a reload starts afresh.
 *
 * Steps without state (random weighted choice, multivalue, sticky) are made once per configuration
 * object instead, and a chain of only such steps once per chain array: the zone-file parser shares
 * equal configurations and chains within a file, so thousands of `chain: [weighted]` services hold
 * one step between them rather than an object and a closure each.
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

const statelessSteps = new WeakMap<StepConfig, NamedStep>()
const statelessChains = new WeakMap<readonly StepConfig[], readonly NamedStep[]>()

/** The steps of a chain; shared with other services of the chain when no step keeps state. */
export function makeSteps(configs: readonly StepConfig[]): readonly NamedStep[] {
  if (!configs.every(stateless)) return configs.map(makeStep)
  let steps = statelessChains.get(configs)
  if (steps === undefined) {
    steps = Object.freeze(configs.map(makeStep))
    statelessChains.set(configs, steps)
  }
  return steps
}

/** True for a step whose decisions depend on its configuration and the query alone. */
function stateless(config: StepConfig): boolean {
  return (
    (config.kind === 'weighted' && config.mode === 'random') || config.kind === 'multivalue' || config.kind === 'sticky'
  )
}

export function makeStep(config: StepConfig): NamedStep {
  if (!stateless(config)) return makeNew(config)
  let step = statelessSteps.get(config)
  if (step === undefined) {
    step = makeNew(config)
    statelessSteps.set(config, step)
  }
  return step
}

function makeNew(config: StepConfig): NamedStep {
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
