import OpenAI from 'openai'

import {PermanentError, SnoozeError, TransientError, retryAfterInText, retryAfterMs} from '../runtime/errors.js'
import {type LlmUsage, ProviderUnusableError} from '../pipeline/provider.js'
import {endpointName} from './quota.js'

/**
 * An openai-node error as the runtime's error classes, decided by class:
 * openai v6 errors all carry the name "Error", so the runtime's by-name
 * classification would miss, say, a timeout (APIConnectionTimeoutError).
 * An abort of our own signal (shutdown, the agent's deadline) passes through
 * for the caller to word.
 */
export function fromOpenAIError(error: unknown, api: {baseURL?: string; timeoutMs: number}): {error: unknown; outcome: LlmUsage['outcome']} {
  const fix = `check OPENAI_API_KEY${api.baseURL ? ' and OPENAI_BASE_URL' : ''}`
  // The endpoint as it may be shown: scheme, host and path (a key in its query or userinfo stays out of every message).
  const at = api.baseURL ? ` at ${endpointName(api.baseURL)}` : ''
  // A body declared JSON that is not: a proxy or a wrong endpoint, the same for every call.
  if (error instanceof SyntaxError)
    return {
      error: new ProviderUnusableError(`the model API${at} answered with a body that is not JSON: check OPENAI_BASE_URL`, {cause: error}),
      outcome: 'malformed',
    }
  if (!(error instanceof OpenAI.APIError) || error instanceof OpenAI.APIUserAbortError) return {error, outcome: 'error'}
  if (error instanceof OpenAI.APIConnectionTimeoutError)
    return {error: new TransientError(`the model API did not answer within ${api.timeoutMs} ms`, {cause: error}), outcome: 'error'}
  if (error instanceof OpenAI.APIConnectionError) {
    // fetch's own error says only "fetch failed"; the socket error under it says why.
    const cause = error.cause as (Error & {cause?: Error}) | undefined
    const why = cause?.cause?.message ?? cause?.message ?? error.message
    return {error: new TransientError(`cannot reach the model API${at}: ${why}`, {cause: error}), outcome: 'error'}
  }

  if (error instanceof OpenAI.AuthenticationError || error instanceof OpenAI.PermissionDeniedError) {
    return {error: new ProviderUnusableError(`the model API refused the credentials (HTTP ${error.status}): ${fix}`), outcome: 'error'}
  }

  if (error instanceof OpenAI.RateLimitError) {
    if (error.code === 'insufficient_quota') {
      return {error: new ProviderUnusableError('the OpenAI account behind OPENAI_API_KEY has no quota left: check its billing'), outcome: 'rate_limited'}
    }

    // Without a usable Retry-After the runtime's snooze policy backs off.
    return {
      error: new SnoozeError('rate limited by the model API (HTTP 429)', retryAfterMs(error.headers) ?? retryAfterInText(error.message), {cause: error}),
      outcome: 'rate_limited',
    }
  }

  if (error instanceof OpenAI.InternalServerError || error instanceof OpenAI.ConflictError || error.status === 408) {
    return {error: new TransientError(`the model API failed: ${error.message}`, {cause: error}), outcome: 'error'}
  }

  if (error.code === 'context_length_exceeded') {
    return {
      error: new ProviderUnusableError(`the model cannot take rvx's prompts (context length exceeded): use a model with a larger context (OPENAI_MODEL)`),
      outcome: 'error',
    }
  }

  // No such endpoint or model: every call would get the same.
  if (error.status === 404 || error.status === 405)
    return {
      error: new ProviderUnusableError(`the model API${at} has no such endpoint or model (HTTP ${error.status}): check OPENAI_MODEL and OPENAI_BASE_URL`, {
        cause: error,
      }),
      outcome: 'error',
    }
  return {error: new PermanentError(`the model API refused the request: ${error.message}`, {cause: error}), outcome: 'error'}
}
