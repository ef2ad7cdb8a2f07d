import {type Kysely, sql} from '../src/db/kysely.js'

// Liveness that tells slowness from death:
// - workers.heartbeat_latency_ms: how long the worker's last heartbeat took to come back (slow is not dead);
// - workers.deaths / last_death_at: every time the sweep declared it dead, so a death that is followed at once by the
//   worker registering again is still alerted (once per death);
// - workers.db_refused_at: the last time PostgreSQL refused the worker a connection (too many clients).
// Spend that survives a failover: llm_calls.call_id is the id the worker gave a paid call before recording it, so the
// record can be written again from the worker's own journal without ever being counted twice.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    alter table workers
      add column heartbeat_latency_ms integer,
      add column deaths integer not null default 0,
      add column last_death_at timestamptz,
      add column db_refused_at timestamptz
  `.execute(db)
  await sql`alter table llm_calls add column call_id uuid`.execute(db)
  await sql`create unique index llm_calls_call_id_idx on llm_calls (call_id)`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index llm_calls_call_id_idx`.execute(db)
  await sql`alter table llm_calls drop column call_id`.execute(db)
  await sql`alter table workers drop column heartbeat_latency_ms, drop column deaths, drop column last_death_at, drop column db_refused_at`.execute(db)
}
