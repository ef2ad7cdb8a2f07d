import {type Kysely, sql} from '../src/db/kysely.js'

// A 429's wait (Retry-After, or "Please try again in ...") pauses the fleet's quota until rate_limits.paused_until.
// paused_ms adds up how far pauses have pushed the fleet's line back: a caller that reserved its place before a
// pause began waits that much longer too (before, it sent at its reserved moment, into the pause, and met a 429).
export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table rate_limits add column paused_until timestamptz, add column paused_ms double precision not null default 0`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table rate_limits drop column paused_until, drop column paused_ms`.execute(db)
}
