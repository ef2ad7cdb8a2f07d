import type {Env} from '../shared/config.js'
import {UsageError} from '../shared/errors.js'
import type {RunRow} from '../db/schema.js'
import {checkEnvironment} from './environment.js'
import {DEFAULT_OPENAI_MODEL, SIMULATED_MODEL} from './models.js'
import {ProviderUnusableError, type ResearchProvider} from '../pipeline/provider.js'
import {DEFAULT_SIMULATION, type SimulationOptions, simulationOptions} from './simulation-options.js'

export const PROVIDERS = ['openai', 'simulated'] as const
export type ProviderName = (typeof PROVIDERS)[number]

/**
 * Providers per run, built once per process: a simulated run carries its
 * simulation settings (seed, latency, faults), so every worker process sees
 * the same world; RVX_SIM_* in a worker's environment override them.
 */
export function providerFactory(env: Env): (run: RunRow) => Promise<ResearchProvider> {
  checkEnvironment(env)
  const cache = new Map<number, Promise<ResearchProvider>>()
  return (run) => {
    let provider = cache.get(run.id)
    if (!provider) {
      // A setting this process cannot use (OPENAI_BASE_URL not a URL, say) fails every task of the run alike: the run fails with it.
      provider = createProvider(run.provider, (run.options as {simulation?: SimulationOptions}).simulation, env).catch((error: unknown) => {
        throw error instanceof UsageError ? new ProviderUnusableError(`this worker's settings: ${error.message}`, {cause: error}) : error
      })
      cache.set(run.id, provider)
      // A provider that cannot be made is not remembered: the next task of the run asks again.
      provider.catch(() => cache.delete(run.id))
    }

    return provider
  }
}

/**
 * The provider a run names. Each provider's code (the OpenAI SDK, the simulated
 * world) is imported only when a run asks for it, so commands that never do,
 * and workers that only ever see the other provider, do not load it.
 */
export async function createProvider(name: string, simulation: SimulationOptions | undefined, env: Env): Promise<ResearchProvider> {
  checkEnvironment(env)
  if (name === 'simulated') {
    const fromEnv = simulationOptions({}, env)
    const {SimulatedProvider} = await import('./simulated.js')
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
    if (!env.OPENAI_API_KEY) throw new UsageError('openai needs OPENAI_API_KEY: set it, or choose simulated', {field: 'provider'})
    const {OpenAIProvider, openAIOptionsFromEnv} = await import('./openai.js')
    return new OpenAIProvider(openAIOptionsFromEnv(env))
  }

  throw new UsageError(`"${name}" is unknown: use openai or simulated`, {field: 'provider'})
}

/** The provider and model each provider records its calls under, with this environment's settings. */
export function knownModels(env: Env): Array<{provider: ProviderName; model: string}> {
  return [
    {provider: 'openai', model: env.OPENAI_MODEL || DEFAULT_OPENAI_MODEL},
    {provider: 'simulated', model: SIMULATED_MODEL},
  ]
}

/**
 * Loads every provider's code now. A long-running worker does this before it
 * claims anything, so its first tasks start their model calls as fast as its
 * later ones (one-shot commands never load what they do not use).
 */
export async function loadProviders(): Promise<void> {
  await Promise.all([import('./simulated.js'), import('./openai.js')])
}
