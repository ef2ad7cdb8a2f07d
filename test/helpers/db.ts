import {randomBytes} from 'node:crypto'
import type {Kysely} from 'kysely'
import pg from 'pg'

import {openDatabase, type DatabaseHandle} from '../../src/db/connect.js'
import {migrateToLatest} from '../../src/db/migrator.js'
import type {Database} from '../../src/db/schema.js'

export function adminUrl(): string {
  const url = process.env.RVX_TEST_ADMIN_URL
  if (!url) throw new Error('RVX_TEST_ADMIN_URL is not set: run the tests through mocha (test/setup.ts starts the server)')
  return url
}

export function urlFor(database: string): string {
  const u = new URL(adminUrl())
  u.pathname = `/${database}`
  return u.toString()
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({connectionString: urlFor('postgres')})
  await client.connect()
  try {
    return await fn(client)
  } finally {
    await client.end()
  }
}

export async function createDatabase(prefix = 't'): Promise<string> {
  const name = `rvx_${prefix}_${randomBytes(5).toString('hex')}`
  await admin((c) => c.query(`create database ${name}`))
  return name
}

export async function dropDatabase(name: string): Promise<void> {
  await admin((c) => c.query(`drop database if exists ${name} with (force)`))
}

export interface TestDatabase {
  name: string
  url: string
  db: Kysely<Database>
  handle: DatabaseHandle
}

/**
 * A fresh database for one test file (describe block): created in before(),
 * migrated unless told otherwise, dropped in after().
 */
export function useFreshDatabase(options: {migrate?: boolean} = {}): TestDatabase {
  const t = {} as TestDatabase
  before(async function () {
    this.timeout(60_000)
    t.name = await createDatabase()
    t.url = urlFor(t.name)
    t.handle = await openDatabase(t.url, {max: 20})
    t.db = t.handle.db
    if (options.migrate !== false) await migrateToLatest(t.db, t.url)
  })
  after(async () => {
    await t.handle?.close()
    if (t.name) await dropDatabase(t.name)
  })
  return t
}
