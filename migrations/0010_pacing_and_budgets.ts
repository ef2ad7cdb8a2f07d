import {type Kysely, sql} from '../src/db/kysely.js'

// Fleet-wide pacing and run budgets:
// - rate_limits: one token bucket pair (requests and tokens per minute) per provider endpoint and model, shared by
//   every process on the database; `limit_*` is the ceiling (configured, or learned from rate-limit headers), `rate_*`
//   what the fleet may use now (cut on 429, grown back while calls succeed);
// - budget_holds: what a run's model calls in flight may cost, then what they cost until their usage is saved (then
//   released in the same transaction; expiring if their process dies), so concurrent calls cannot together pass the run's max_usd;
// - runs.max_usd: the run's budget (null: none); llm_calls.waited_ms: time a call waited for the quota.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table rate_limits (
      key text primary key,
      limit_rpm double precision,
      limit_tpm double precision,
      limit_source text not null default 'none' check (limit_source in ('none', 'configured', 'learned')),
      rate_rpm double precision not null,
      rate_tpm double precision,
      requests double precision not null,
      tokens double precision,
      refilled_at timestamptz not null default now(),
      last_cut_at timestamptz,
      saw_limit boolean not null default false,
      updated_at timestamptz not null default now()
    )
  `.execute(db)
  await sql`
    create table budget_holds (
      id bigint generated always as identity primary key,
      run_id bigint not null references runs (id) on delete cascade,
      task_id bigint not null,
      usd numeric(14, 6) not null,
      expires_at timestamptz not null
    )
  `.execute(db)
  await sql`create index budget_holds_run_idx on budget_holds (run_id, expires_at)`.execute(db)
  await sql`create index budget_holds_task_idx on budget_holds (task_id)`.execute(db)
  await sql`alter table runs add column max_usd numeric(14, 6)`.execute(db)
  await sql`alter table llm_calls add column waited_ms integer not null default 0`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table llm_calls drop column waited_ms`.execute(db)
  await sql`alter table runs drop column max_usd`.execute(db)
  await sql`drop table budget_holds`.execute(db)
  await sql`drop table rate_limits`.execute(db)
}
