import {type Kysely, sql} from '../src/db/kysely.js'

// Keeps the fleet views fast on a long history (measured in bench/ with 1,000,000 tasks):
// - failed and quarantined tasks get a small partial index of their own, so counting and listing
//   them never scans the finished history (they are a sliver of it, and written once each);
// - the BRIN index behind "the last 5 minutes" of task events summarizes new page ranges as they
//   fill, instead of scanning every range added since the last vacuum.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`create index tasks_problems_idx on tasks (kind, finished_at) where status in ('failed', 'quarantined')`.execute(db)
  await sql`alter index if exists task_events_at_brin set (autosummarize = on)`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter index if exists task_events_at_brin reset (autosummarize)`.execute(db)
  await sql`drop index if exists tasks_problems_idx`.execute(db)
}
