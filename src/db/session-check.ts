import {randomBytes} from 'node:crypto'
import pg from 'pg'

import {DatabaseUnavailableError} from '../shared/errors.js'
import {connectionFailure, describeTarget} from './connection-errors.js'

/**
 * Proves that a connection to `url` keeps its own session, as workers and
 * monitors need (session advisory locks, LISTEN). A transaction-mode pooler
 * (pgbouncer pool_mode=transaction) hands each transaction whichever server
 * session is free, so:
 *  - a session setting made by one client is seen by another one, or is gone
 *    at this client's next transaction;
 *  - a second client, connected at the same time, gets the same backend.
 * Two clients stay connected throughout (a session pooler may reuse a
 * backend only once its client has left).
 */
export async function assertSessionKept(url: string): Promise<void> {
  const token = randomBytes(8).toString('hex')
  const clients = [newClient(url), newClient(url)]
  try {
    await Promise.all(clients.map((c) => c.connect())).catch((error: unknown) => {
      throw connectionFailure(error, url)
    })
    const [a, b] = clients
    const probe = 'select pg_backend_pid() as pid, current_setting($1, true) as marker'
    const first = (await a.query<{pid: number}>(`select pg_backend_pid() as pid, set_config($1, $2, false)`, [SETTING, token])).rows[0]
    const other = (await b.query<{pid: number; marker: string | null}>(probe, [SETTING])).rows[0]
    const again = (await a.query<{pid: number; marker: string | null}>(probe, [SETTING])).rows[0]
    const why =
      other.pid === first.pid
        ? 'two connections share one server session'
        : other.marker === token
          ? "one connection sees another's session settings"
          : again.pid !== first.pid || again.marker !== token
            ? 'the session changed between two transactions'
            : undefined
    if (why) {
      throw new DatabaseUnavailableError(
        `PostgreSQL at ${describeTarget(url)} does not keep a session per connection (${why}: a transaction-mode pooler?). ` +
          'Workers and monitors hold session advisory locks and LISTEN: connect them to PostgreSQL directly or through a session-mode pooler (pgbouncer pool_mode=session).',
        {code: 'session_not_kept'},
      )
    }
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => {})))
  }
}

const SETTING = 'rvx.session_check'

function newClient(url: string): pg.Client {
  const client = new pg.Client({connectionString: url, connectionTimeoutMillis: 10_000, query_timeout: 10_000, application_name: 'rvx session check'})
  client.on('error', () => {})
  return client
}
