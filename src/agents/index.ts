import {UsageError} from '../cli/errors.js'
import type {RunRow} from '../db/schema.js'
import {OpenAIProvider, openAIOptionsFromEnv} from './openai.js'
import type {ResearchProvider} from './provider.js'
import {DEFAULT_SIMULATION, SimulatedProvider, type SimulationOptions, simulationOptions} from './simulated.js'

export const PROVIDERS = ['openai', 'simulated'] as const
export type ProviderName = (typeof PROVIDERS)[number]

/** --provider, else openai when OPENAI_API_KEY is set, else a one-line error that says what to do. */
export function chooseProvider(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): ProviderName {
  if (flag) return flag as ProviderName
  if (env.OPENAI_API_KEY) return 'openai'
  throw new UsageError('no research provider: set OPENAI_API_KEY to research with OpenAI, or pass --provider simulated for the offline simulated world')
}

/**
 * Providers per run, built once per process: a simulated run carries its
 * simulation settings (seed, latency, faults), so every worker process sees
 * the same world; RVX_SIM_* in a worker's environment override them.
 */
export function providerFactory(env: NodeJS.ProcessEnv = process.env): (run: RunRow) => ResearchProvider {
  const cache = new Map<number, ResearchProvider>()
  return (run) => {
    let provider = cache.get(run.id)
    if (!provider) {
      provider = createProvider(run.provider, (run.options as {simulation?: SimulationOptions}).simulation, env)
      cache.set(run.id, provider)
    }

    return provider
  }
}

export function createProvider(name: string, simulation: SimulationOptions | undefined, env: NodeJS.ProcessEnv = process.env): ResearchProvider {
  if (name === 'simulated') {
    const fromEnv = simulationOptions({}, env)
    return new SimulatedProvider({
      ...DEFAULT_SIMULATION,
      ...simulation,
      ...(env.RVX_SIM_SEED ? {seed: fromEnv.seed} : {}),
      ...(env.RVX_SIM_LATENCY ? {latencyMs: fromEnv.latencyMs} : {}),
      ...(env.RVX_SIM_FAULTS ? {faults: fromEnv.faults} : {}),
      ...(fromEnv.supply !== undefined ? {supply: fromEnv.supply} : {}),
    })
  }

  if (name === 'openai') {
    if (!env.OPENAI_API_KEY) throw new UsageError('--provider openai needs OPENAI_API_KEY: set it, or pass --provider simulated')
    return new OpenAIProvider(openAIOptionsFromEnv(env))
  }

  throw new UsageError(`unknown research provider "${name}": use openai or simulated`)
}
