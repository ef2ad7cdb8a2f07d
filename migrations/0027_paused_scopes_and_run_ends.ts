import {type Kysely, sql} from '../src/db/kysely.js'

// A paused scope: no worker claims its queued tasks until it is lifted (tasks already running finish). The pipeline
// pauses a run's scope (rvx runs pause) and records it on the run too, so a task claimed just before the pause sees
// it and goes back to the queue unpaid. A run also records where its export was last written.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`create table paused_scopes (scope text primary key, paused_at timestamptz not null default now(), reason text)`.execute(db)
  await sql`alter table runs add column paused_at timestamptz, add column export_path text`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table runs drop column paused_at, drop column export_path`.execute(db)
  await sql`drop table paused_scopes`.execute(db)
}
