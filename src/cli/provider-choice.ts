import {type ProviderName} from '../agents/index.js'
import type {Env} from '../shared/config.js'
import {UsageError} from '../shared/errors.js'

/** --provider, else openai when OPENAI_API_KEY is set, else a one-line error that says what to do. */
export function chooseProvider(flag: string | undefined, env: Env): ProviderName {
  if (flag) return flag as ProviderName
  if (env.OPENAI_API_KEY) return 'openai'
  throw new UsageError('no research provider: set OPENAI_API_KEY to research with OpenAI, or pass --provider simulated for the offline simulated world')
}
