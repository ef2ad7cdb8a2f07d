import {type Kysely, sql} from '../src/db/kysely.js'

// How many times a task was snoozed (rate limited): the runtime backs off on it when the server gives no
// usable Retry-After, and fails the task once it has been snoozed too often, instead of retrying forever.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table tasks add column snoozes integer not null default 0`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table tasks drop column snoozes`.execute(db)
}
