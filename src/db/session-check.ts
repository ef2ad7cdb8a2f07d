import {randomBytes} from 'node:crypto'
import type pg from 'pg'

import {DatabaseUnavailableError} from '../shared/errors.js'
import {describeTarget} from './connection-errors.js'

/**
 * Proves that connections of `pool` (to `url`) keep their own sessions, as
 * workers and monitors need (session advisory locks, LISTEN). A
 * transaction-mode pooler (pgbouncer pool_mode=transaction) hands each
 * transaction whichever server session is free, so:
 *  - a second connection, open at the same time, gets the same backend, or
 *    sees a session setting the first one made;
 *  - the first one's backend or setting is gone at its next transaction.
 * Both connections are held throughout (a session pooler may hand a backend
 * on only once its client has left), then go back to the pool for the
 * caller's own use: the check costs three round trips.
 */
export async function assertSessionKept(pool: pg.Pool, url: string): Promise<void> {
  const token = randomBytes(8).toString('hex')
  const [a, b] = await Promise.all([pool.connect(), pool.connect()])
  let failed: Error | undefined
  try {
    const probe = 'select pg_backend_pid() as pid, current_setting($1, true) as marker'
    const first = (await a.query<{pid: number}>('select pg_backend_pid() as pid, set_config($1, $2, false)', [SETTING, token])).rows[0]
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
  } catch (error) {
    failed = error as Error
    throw error
  } finally {
    // A connection that failed is closed, not handed out again.
    a.release(failed)
    b.release(failed)
  }
}

const SETTING = 'rvx.session_check'
