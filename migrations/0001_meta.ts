import {type Kysely, sql} from '../src/db/kysely.js'

// Installation facts (when the schema was created, by which rvx version).
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('rvx_meta')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('value', 'jsonb', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()
  await sql`insert into rvx_meta (key, value) values ('installed_at', to_jsonb(now()))`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('rvx_meta').execute()
}
