import {HTTPException} from 'hono/http-exception'

import {isConnectionError} from '../../db/connection-errors.js'
import {DatabaseUnavailableError, RvxError, UsageError} from '../../shared/errors.js'

/**
 * Errors as RFC 9457 problem details (application/problem+json): `detail` is
 * the line the CLI would print for the same error, `code` the CLI's error
 * code (what --json gives as error.code).
 */

export interface Problem {
  status: number
  title: string
  detail: string
  code: string
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
}

export function problemResponse(p: Omit<Problem, 'title'>, headers: Record<string, string> = {}, instance?: string): Response {
  const body = {type: 'about:blank', title: TITLES[p.status] ?? 'Error', status: p.status, detail: p.detail, code: p.code, ...(instance ? {instance} : {})}
  return new Response(JSON.stringify(body), {status: p.status, headers: {'content-type': 'application/problem+json', 'cache-control': 'no-store', ...headers}})
}

/** What an error thrown by a handler becomes; `unexpected` ones are logged (their message is not shown). */
export function problemOf(error: unknown): Omit<Problem, 'title'> & {unexpected?: boolean} {
  if (error instanceof UsageError) return {status: 400, detail: error.message, code: error.code}
  if (error instanceof DatabaseUnavailableError || isConnectionError(error))
    return {status: 503, detail: 'the database is unavailable right now; retry in a moment', code: 'database_unavailable'}
  if (error instanceof RvxError) {
    const status = error.code.endsWith('_not_found') ? 404 : error.code === 'run_state' ? 409 : error.code === 'idempotency_mismatch' ? 422 : 400
    return {status, detail: error.message, code: error.code}
  }

  if (error instanceof HTTPException) {
    // hono's own refusals: a body that is not JSON, say.
    const detail = error.status === 400 && /json/i.test(error.message) ? 'the request body is not valid JSON: send a JSON object' : error.message
    return {status: error.status, detail, code: 'usage'}
  }

  return {status: 500, detail: 'something went wrong on the server; its log says what', code: 'unexpected', unexpected: true}
}
