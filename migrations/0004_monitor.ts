import {type Kysely, sql} from '../src/db/kysely.js'

// What the monitor tells people: one row per alert or run notification. An alert is keyed by the
// condition it reports (task 42 failed, run 7 needs a decision) and stays open while the condition
// holds, so it is sent once however many monitors come and go; it is resolved when the condition
// clears, so the same thing happening again is news again. Delivery is leased (next_attempt_at) so
// two senders never mail the same row, and retried with backoff when a channel is down.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table alerts (
      id bigint generated always as identity primary key,
      key text not null,
      kind text not null,
      severity text not null default 'warning' check (severity in ('info', 'warning', 'critical')),
      subject text not null,
      details jsonb not null default '{}',
      run_id bigint references runs (id) on delete cascade,
      -- Set for run notifications (rvx orchestrate --notify-email): who gets this one mail.
      recipient text,
      -- Channel name -> when it was delivered there.
      deliveries jsonb not null default '{}',
      attempts integer not null default 0,
      next_attempt_at timestamptz not null default now(),
      last_error text,
      created_at timestamptz not null default now(),
      delivered_at timestamptz,
      resolved_at timestamptz
    )
  `.execute(db)
  // Once per event: at most one open alert per condition.
  await sql`create unique index alerts_open_key_idx on alerts (key) where resolved_at is null`.execute(db)
  // What a sender scans: undelivered rows that are due.
  await sql`create index alerts_pending_idx on alerts (next_attempt_at) where delivered_at is null`.execute(db)
  await sql`create index alerts_created_idx on alerts (created_at)`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table if exists alerts`.execute(db)
}
