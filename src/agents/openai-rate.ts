import {retryAfterInText, retryAfterMs} from '../runtime/errors.js'
import type {RateInfo} from '../pipeline/provider.js'

/**
 * What an OpenAI answer says of its rate limits, parsed once here: its
 * x-ratelimit-* headers, its Retry-After (header, or "try again in 1.5s" in a
 * 429's text), and the limit a 429's message names when the headers do not.
 * The fleet's pacing (pipeline/spend.ts) learns from what this returns.
 */
export function openAIRateInfo(answer: {status: number; headers?: unknown; message?: string}): RateInfo {
  const headers = rateLimitHeaders(answer.headers)
  const limited = answer.status === 429
  // No headers: a 429 that names its limit ("... tokens per min (TPM): Limit 200000 ...") states it too.
  const named = limited ? limitFromMessage(answer.message) : {}
  return {
    status: answer.status,
    limitRequests: headers.limitRequests ?? named.rpm ?? null,
    limitTokens: headers.limitTokens ?? named.tpm ?? null,
    remainingRequests: headers.remainingRequests,
    retryAfterMs: limited ? (retryAfterMs(answer.headers) ?? retryAfterInText(answer.message) ?? null) : null,
    limitedBy: limited ? (limitedBy(answer.message) ?? null) : null,
  }
}

/**
 * The limit a 429's message names, as OpenAI words it: "Rate limit reached for gpt-4.1-mini in organization org-x on
 * tokens per min (TPM): Limit 200000, Used 199000, Requested 1500." Nothing when it names none.
 */
export function limitFromMessage(message: string | undefined): {rpm?: number; tpm?: number} {
  const m = /\b(requests|tokens) per min(?:ute)? \((RPM|TPM)\): Limit (\d[\d,]*)/i.exec(message ?? '')
  if (!m) return {}
  const limit = Number(m[3].replaceAll(',', ''))
  if (!Number.isFinite(limit) || limit <= 0) return {}
  return m[1].toLowerCase() === 'tokens' ? {tpm: limit} : {rpm: limit}
}

/** Which limit a 429's message says was hit (OpenAI: "... on tokens per min (TPM) ..."); undefined when it does not say. */
export function limitedBy(message: string | undefined): 'requests' | 'tokens' | undefined {
  const m = /\bon (requests|tokens) per min/i.exec(message ?? '')
  return m ? (m[1].toLowerCase() as 'requests' | 'tokens') : undefined
}

/** What OpenAI's x-ratelimit-* headers say: ceilings per minute and what is left. */
function rateLimitHeaders(headers: unknown): {limitRequests: number | null; limitTokens: number | null; remainingRequests: number | null} {
  const get = (name: string): string | null => {
    if (!headers) return null
    if (typeof (headers as Headers).get === 'function') return (headers as Headers).get(name)
    const record = headers as Record<string, string | undefined>
    return record[name] ?? null
  }

  const num = (name: string) => {
    const n = Number(get(name))
    return get(name) !== null && Number.isFinite(n) && n >= 0 ? n : null
  }

  return {
    limitRequests: num('x-ratelimit-limit-requests'),
    limitTokens: num('x-ratelimit-limit-tokens'),
    remainingRequests: num('x-ratelimit-remaining-requests'),
  }
}
