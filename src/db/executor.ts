import type {Kysely, Transaction} from 'kysely'

import type {Database} from './schema.js'

/** What every query function takes: the database, or a transaction to run inside. */
export type Executor = Kysely<Database> | Transaction<Database>

/** Runs `fn` in a transaction: the caller's when it passed one, else a new one that commits when `fn` returns. */
export function inTransaction<T>(ex: Executor, fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
  return ex.isTransaction ? fn(ex as Transaction<Database>) : ex.transaction().execute(fn)
}
