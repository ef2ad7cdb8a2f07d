import {scrub} from '../shared/secrets.js'

/**
 * How a handler's failure is treated. Handlers may throw these to say so;
 * anything else is classified from what it carries (HTTP status, socket
 * error codes, Retry-After), the way SDKs such as openai-node shape errors.
 */

/** Will not get better by retrying (bad input, 400/401/403, schema violation after repair). Fails the task at once. */
export class PermanentError extends Error {
  constructor(message: string, options?: {cause?: unknown}) {
    super(message, options)
    this.name = 'PermanentError'
  }
}

/** Likely to pass if tried again soon (timeouts, connection resets, 5xx). Retried inside the lease. */
export class TransientError extends Error {
  constructor(message: string, options?: {cause?: unknown}) {
    super(message, options)
    this.name = 'TransientError'
  }
}

/**
 * Come back later (429 / Retry-After): the task is snoozed without using an
 * attempt, for what the server asked (held within the runtime's bounds), or
 * backing off when it did not say (`retryAfterMs` undefined).
 */
export class SnoozeError extends Error {
  readonly retryAfterMs: number | undefined
  constructor(message: string, retryAfterMs: number | undefined, options?: {cause?: unknown}) {
    super(message, options)
    this.name = 'SnoozeError'
    this.retryAfterMs = retryAfterMs
  }
}

/**
 * Not now: the task goes back to the queue at once, no attempt used (its
 * scope was paused after it was claimed: it waits there, unpaid, until the
 * pause is lifted).
 */
export class ReleaseError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'ReleaseError'
  }
}

export type ErrorClass = {type: 'release'} | {type: 'permanent'} | {type: 'transient'} | {type: 'snooze'; retryAfterMs: number | undefined} | {type: 'error'}

const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ECONNABORTED',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
])

export function classifyError(error: unknown): ErrorClass {
  // By class, and by name for a handler that throws these from another copy of this module.
  const e = error as {name?: string; code?: unknown; status?: unknown; statusCode?: unknown; headers?: unknown; cause?: unknown; retryAfterMs?: unknown}
  if (e?.name === 'ReleaseError') return {type: 'release'}
  if (e?.name === 'SnoozeError') return {type: 'snooze', retryAfterMs: typeof e.retryAfterMs === 'number' ? e.retryAfterMs : undefined}
  if (error instanceof PermanentError || e?.name === 'PermanentError') return {type: 'permanent'}
  if (e?.name === 'TransientError') return {type: 'transient'}
  if (e?.name === 'ZodError') return {type: 'permanent'}
  const status = typeof e?.status === 'number' ? e.status : typeof e?.statusCode === 'number' ? e.statusCode : undefined
  if (status === 429) return {type: 'snooze', retryAfterMs: retryAfterMs(e.headers)}
  if (status !== undefined) {
    if (status === 408 || status === 409 || status >= 500) return {type: 'transient'}
    if (status >= 400) return {type: 'permanent'}
  }

  if (e?.name === 'TimeoutError' || e?.name === 'APIConnectionError' || e?.name === 'APIConnectionTimeoutError') return {type: 'transient'}
  if (typeof e?.code === 'string' && TRANSIENT_CODES.has(e.code)) return {type: 'transient'}
  if (e?.cause && e.cause !== error) {
    const inner = classifyError(e.cause)
    if (inner.type !== 'error') return inner
  }

  return {type: 'error'}
}

/** Retry-After in ms from headers (a Headers object or a plain record): seconds, or an HTTP date. */
export function retryAfterMs(headers: unknown, now: number = Date.now()): number | undefined {
  if (!headers) return undefined
  const get = (name: string): string | null | undefined =>
    typeof (headers as Headers).get === 'function'
      ? (headers as Headers).get(name)
      : ((headers as Record<string, string>)[name] ?? (headers as Record<string, string>)[name.toLowerCase()])
  const ms = get('retry-after-ms')
  if (ms && Number.isFinite(Number(ms))) return Math.max(0, Number(ms))
  const value = get('retry-after')
  if (!value) return undefined
  if (/^\d+(\.\d+)?$/.test(value.trim())) return Math.round(Number(value) * 1000)
  const date = Date.parse(value)
  return Number.isNaN(date) ? undefined : Math.max(0, date - now)
}

/**
 * The wait a provider's error text asks for, as OpenAI words it in a 429 ("Please try again in 1.5s", "in 850ms",
 * "in 1m2.3s"), for a 429 that carries no Retry-After header. Undefined when it names none.
 */
export function retryAfterInText(text: string | undefined): number | undefined {
  const m = /\btry again in ((?:\d+(?:\.\d+)?(?:ms|h|m|s))+)/i.exec(text ?? '')
  if (!m) return undefined
  const unit: Record<string, number> = {ms: 1, s: 1000, m: 60_000, h: 3_600_000}
  let ms = 0
  for (const [, n, u] of m[1].matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/gi)) ms += Number(n) * unit[u.toLowerCase()]
  return Number.isFinite(ms) ? Math.round(ms) : undefined
}

/**
 * An error as one text for logs and the database: its class and message, secrets taken out, control characters
 * (a NUL that a text column refuses, terminal escapes) dropped, at most 2,000 characters.
 */
export function errorMessage(error: unknown): string {
  const raw = scrub(error instanceof Error ? `${error.name === 'Error' ? '' : error.name + ': '}${error.message}` : String(error))
  // eslint-disable-next-line no-control-regex
  const message = raw.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, '')
  return message.length > 2000 ? message.slice(0, 2000) + '...' : message
}
