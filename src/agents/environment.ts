import {ceilingsFromEnv} from '../pipeline/spend.js'
import type {Env} from '../shared/config.js'
import {UsageError} from '../shared/errors.js'
import {prices} from './prices.js'
import {parseDnsServer} from './tools/resolve.js'

/**
 * The environment variables that tune model calls and the web checks, checked
 * once when a command that makes them starts (orchestrate, worker, runs
 * resume, inspect): a bad value is refused in one line that names the
 * variable, instead of being ignored or met by every task. The pacing
 * ceilings and the price table read here are the ones in force from then on.
 */
export function checkEnvironment(env: Env): void {
  ceilingsFromEnv(env)
  llmTimeoutMs(env)
  parseDnsServer(env.RVX_DNS_SERVER)
  prices(env)
}

/** RVX_LLM_TIMEOUT_MS: a whole number of milliseconds from 1000 to 3,600,000 (unset: 120,000). */
export function llmTimeoutMs(env: Env): number {
  const text = env.RVX_LLM_TIMEOUT_MS?.trim()
  if (!text) return 120_000
  const ms = Number(text)
  if (!(/^\d+$/.test(text) && ms >= 1000 && ms <= 3_600_000))
    throw new UsageError(`must be a whole number of milliseconds from 1000 to 3600000 (got "${env.RVX_LLM_TIMEOUT_MS}"): fix it, or unset it for 120000`, {
      field: 'RVX_LLM_TIMEOUT_MS',
    })
  return ms
}
