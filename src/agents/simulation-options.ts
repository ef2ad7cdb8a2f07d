import type {Env} from '../shared/config.js'
import {UsageError} from '../shared/errors.js'

// The simulated provider's settings and their parsing, apart from the provider itself: commands validate
// --sim-* flags with these without loading the simulated world and its web checks.

export interface SimulationOptions {
  seed: number
  latencyMs: [number, number]
  faults: {transient: number; rate_limit: number; malformed: number; crash: number}
  /** Companies in the world for any criteria (default: 40-119, fixed per criteria). */
  supply?: number
}

export const DEFAULT_SIMULATION: SimulationOptions = {seed: 1, latencyMs: [0, 0], faults: {transient: 0, rate_limit: 0, malformed: 0, crash: 0}}

/** "50ms-500ms", "200ms", "1s-2s" -> [min, max] in ms. */
export function parseLatency(text: string): [number, number] {
  const unit = (s: string) => {
    const m = /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(s.trim())
    if (!m) throw new UsageError(`"${text}" is not a duration range: use e.g. 50ms-500ms`, {field: 'sim_latency'})
    return Math.round(Number(m[1]) * (m[2] === 's' ? 1000 : 1))
  }

  const [a, b] = text.split('-')
  const min = unit(a)
  const max = b === undefined ? min : unit(b)
  if (max < min) throw new UsageError(`"${text}": the maximum is below the minimum`, {field: 'sim_latency'})
  return [min, max]
}

/** "transient=0.1,rate_limit=0.05,malformed=0.02,crash=0.001" -> rates. */
export function parseFaults(text: string): SimulationOptions['faults'] {
  const faults = {...DEFAULT_SIMULATION.faults}
  for (const part of text
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const [key, value] = part.split('=')
    const rate = Number(value)
    if (!(key in faults)) throw new UsageError(`names an unknown fault "${key}": use transient, rate_limit, malformed or crash`, {field: 'sim_faults'})
    if (!Number.isFinite(rate) || rate < 0 || rate > 1) throw new UsageError(`sets ${key} to "${value}": a rate is from 0 to 1`, {field: 'sim_faults'})
    faults[key as keyof typeof faults] = rate
  }

  return faults
}

/** Options from flags, falling back to RVX_SIM_* so separate worker processes share them. */
export function simulationOptions(flags: {latency?: string; faults?: string; seed?: number}, env: Env): SimulationOptions {
  const latency = flags.latency ?? env.RVX_SIM_LATENCY
  const faults = flags.faults ?? env.RVX_SIM_FAULTS
  const seed = flags.seed ?? (env.RVX_SIM_SEED ? Number(env.RVX_SIM_SEED) : undefined)
  if (seed !== undefined && !Number.isInteger(seed)) throw new UsageError(`RVX_SIM_SEED must be a whole number (got "${env.RVX_SIM_SEED}")`)
  const supply = env.RVX_SIM_SUPPLY?.trim() ? Number(env.RVX_SIM_SUPPLY) : undefined
  if (supply !== undefined && !(Number.isInteger(supply) && supply >= 0 && supply <= 1_000_000))
    throw new UsageError(`must be a whole number of companies from 0 to 1000000 (got "${env.RVX_SIM_SUPPLY}")`, {field: 'RVX_SIM_SUPPLY'})
  return {
    seed: seed ?? DEFAULT_SIMULATION.seed,
    latencyMs: latency ? fromVariable(() => parseLatency(latency), flags.latency === undefined && 'RVX_SIM_LATENCY') : DEFAULT_SIMULATION.latencyMs,
    faults: faults ? fromVariable(() => parseFaults(faults), flags.faults === undefined && 'RVX_SIM_FAULTS') : DEFAULT_SIMULATION.faults,
    ...(supply !== undefined ? {supply} : {}),
  }
}

/** A value read from environment variable `name` (false: from a flag): its usage error names the variable, not the flag. */
function fromVariable<T>(parse: () => T, name: string | false): T {
  try {
    return parse()
  } catch (error) {
    if (!name || !(error instanceof UsageError)) throw error
    throw new UsageError(error.detail, {field: name, cause: error.cause})
  }
}
