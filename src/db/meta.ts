import {sql} from './kysely.js'

import {DatabaseUnavailableError} from '../shared/errors.js'
import type {Executor} from './executor.js'

/**
 * This database's id: a uuid its first migrate stored in rvx_meta. Files rvx
 * writes for a database (exports) go under it, so two databases' run 1 never
 * land in the same place.
 */
export async function databaseId(db: Executor): Promise<string> {
  const {rows} = await sql<{id: string}>`select value #>> '{}' as id from rvx_meta where key = 'database_id'`.execute(db)
  if (!rows[0]) throw new DatabaseUnavailableError('this database has no id yet (its schema is behind): run rvx migrate', {code: 'schema_outdated'})
  return rows[0].id
}
