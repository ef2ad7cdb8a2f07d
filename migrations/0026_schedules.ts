import {type Kysely, sql} from '../src/db/kysely.js'

// Scheduled runs:
// - schedules: a cron pattern in a time zone and the run it makes; fires_after is when it was created or last resumed
//   (slots before that never fire);
// - schedule_fires: one row per schedule and slot, whatever became of it (a run, or why the slot was skipped): the
//   primary key is what makes a slot fire once with several monitors or after a failover.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table schedules (
      id bigint generated always as identity primary key,
      name text,
      cron text not null,
      tz text not null,
      criteria jsonb not null,
      quantity integer not null check (quantity between 1 and 10000),
      contacts_min integer not null default 1,
      contacts_max integer not null default 3,
      provider text not null,
      max_usd numeric(12, 4),
      options jsonb not null default '{}',
      fires_after timestamptz not null default now(),
      paused_at timestamptz,
      created_at timestamptz not null default now()
    )
  `.execute(db)
  await sql`create unique index schedules_name_idx on schedules (name) where name is not null`.execute(db)
  await sql`
    create table schedule_fires (
      schedule_id bigint not null references schedules (id) on delete cascade,
      slot timestamptz not null,
      run_id bigint references runs (id) on delete set null,
      skipped text,
      created_at timestamptz not null default now(),
      primary key (schedule_id, slot)
    )
  `.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table schedule_fires`.execute(db)
  await sql`drop table schedules`.execute(db)
}
