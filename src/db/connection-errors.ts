import {DatabaseUnavailableError} from '../shared/errors.js'

/** Where a connection goes, with the password left out: safe to print. */
export function describeTarget(url: string): string {
  try {
    const u = new URL(url)
    const db = decodeURIComponent(u.pathname.replace(/^\//, '')) || '(default database)'
    const user = decodeURIComponent(u.username) || '(default user)'
    return `${user}@${u.hostname}:${u.port || '5432'}/${db}`
  } catch {
    return '(unparseable URL)'
  }
}

/** Parses a connection URL or says, in one line, how to fix it. */
export function parseDatabaseUrl(url: string): URL {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new DatabaseUnavailableError('DATABASE_URL is not a valid URL: use the form postgres://user:password@host:5432/database', {
      code: 'database_url_invalid',
    })
  }

  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new DatabaseUnavailableError(
      `DATABASE_URL must start with postgres:// (got ${parsed.protocol}//): use the form postgres://user:password@host:5432/database`,
      {code: 'database_url_invalid'},
    )
  }

  return parsed
}

const unreachable = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', 'EPIPE'])

/** SQLSTATEs and socket errors that mean "the database is not there for us", as opposed to a bug in a query. */
export function isConnectionError(error: unknown): boolean {
  const code = (error as {code?: unknown})?.code
  if (typeof code !== 'string') {
    return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(
      String((error as Error)?.message ?? ''),
    )
  }

  return (
    unreachable.has(code) ||
    code.startsWith('08') ||
    code.startsWith('28') ||
    code === '3D000' ||
    code === '57P01' ||
    code === '57P02' ||
    code === '57P03' ||
    code === '53300'
  )
}

/**
 * A database failure that says nothing about the statement itself and may
 * pass if tried again: the connection (or a free one) is missing, or a bound
 * rvx sets on every session ran out (statement or lock timeout, the session
 * ended for idling in a transaction, the client's own query timeout), or the
 * server picked this transaction to break a deadlock or a serialization
 * conflict. Such a failure never counts against a task: it is an
 * infrastructure wait, like an outage.
 */
export function isTransientDatabaseError(error: unknown): boolean {
  if (isConnectionError(error)) return true
  const code = (error as {code?: unknown})?.code
  if (typeof code === 'string') return code === '57014' || code === '55P03' || code === '25P03' || code === '40001' || code === '40P01'
  return /Query read timeout|timeout exceeded when trying to connect/i.test(String((error as Error)?.message ?? ''))
}

/**
 * isTransientDatabaseError for an error that may come from anywhere (a task
 * handler's model call as well as its reads): only what surely came from
 * PostgreSQL or its client counts, never a bare socket error (ECONNRESET from
 * a model's HTTP endpoint is the handler's own failure).
 */
export function isDatabaseWait(error: unknown): boolean {
  const e = error as {code?: unknown; severity?: unknown; message?: unknown}
  if (typeof e?.code === 'string' && typeof e.severity === 'string') return isTransientDatabaseError(error)
  return /Connection terminated|Query read timeout|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(
    String(e?.message ?? ''),
  )
}

/** Too many clients (53300): the server has no connection left for us. */
export function isConnectionRefusal(error: unknown): boolean {
  return (error as {code?: unknown})?.code === '53300'
}

/**
 * Turns a failure to connect into one line that says what to fix. The
 * password never appears: only user@host:port/database.
 */
export function connectionFailure(error: unknown, url: string): DatabaseUnavailableError {
  const target = describeTarget(url)
  const code = String((error as {code?: unknown})?.code ?? '')
  const cause = error
  switch (code) {
    case 'ECONNREFUSED':
      return new DatabaseUnavailableError(
        `cannot connect to PostgreSQL at ${target}: connection refused. Is the server running? Check DATABASE_URL (or unset it to use the embedded server).`,
        {cause, code: 'database_unreachable'},
      )
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new DatabaseUnavailableError(`cannot connect to PostgreSQL at ${target}: host not found. Check the host name in DATABASE_URL.`, {
        cause,
        code: 'database_unreachable',
      })
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new DatabaseUnavailableError(
        `cannot connect to PostgreSQL at ${target}: the network did not answer. Check DATABASE_URL and that the host is reachable.`,
        {cause, code: 'database_unreachable'},
      )
    case '28P01':
    case '28000':
      return new DatabaseUnavailableError(`PostgreSQL at ${target} refused the credentials: check the user name and password in DATABASE_URL.`, {
        cause,
        code: 'database_auth_failed',
      })
    case '3D000':
      return new DatabaseUnavailableError(`database does not exist at ${target}: create it (createdb) or fix the database name in DATABASE_URL.`, {
        cause,
        code: 'database_missing',
      })
    case '53300':
      return new DatabaseUnavailableError(
        `PostgreSQL at ${target} has no free connections: raise max_connections, or run fewer workers or give each fewer connections (--db-connections; a worker takes 5 by default).`,
        {
          cause,
          code: 'database_unreachable',
        },
      )
    case '57P03':
      return new DatabaseUnavailableError(`PostgreSQL at ${target} is starting up or shutting down: try again in a few seconds.`, {
        cause,
        code: 'database_unreachable',
      })
    default: {
      const reason = String((error as Error)?.message ?? error).split('\n')[0]
      return new DatabaseUnavailableError(`cannot use PostgreSQL at ${target}: ${reason}. Check DATABASE_URL.`, {cause, code: 'database_unreachable'})
    }
  }
}
