import {type Kysely, sql} from '../src/db/kysely.js'

// Never pay twice, never deliver twice:
// - research_cache: what a paid research or contact search found for a domain, keyed by the domain, what it depended
//   on (criteria, provider and model), with what it cost; reused within a run's TTL at no cost;
// - companies.from_cache / contacts.from_cache: the lead was judged (its contacts found) from the cache, researched_at
//   keeps the original date;
// - run_exclusions: domains a run must not deliver (--exclude @crm.csv); runs.suppressed: candidates discovery dropped
//   because an earlier run delivered them or the run excludes them.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table research_cache (
      kind text not null check (kind in ('research', 'contacts')),
      key text not null,
      domain text not null,
      provider text not null,
      value jsonb not null,
      cost_usd numeric(14, 6) not null default 0,
      created_at timestamptz not null default now(),
      hits integer not null default 0,
      last_hit_at timestamptz,
      primary key (kind, key)
    )
  `.execute(db)
  await sql`create index research_cache_created_idx on research_cache (created_at)`.execute(db)
  await sql`alter table companies add column from_cache boolean not null default false`.execute(db)
  await sql`alter table contacts add column from_cache boolean not null default false`.execute(db)
  await sql`
    create table run_exclusions (
      run_id bigint not null references runs (id) on delete cascade,
      domain text not null,
      primary key (run_id, domain)
    )
  `.execute(db)
  await sql`alter table runs add column suppressed integer not null default 0`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table runs drop column suppressed`.execute(db)
  await sql`drop table run_exclusions`.execute(db)
  await sql`alter table contacts drop column from_cache`.execute(db)
  await sql`alter table companies drop column from_cache`.execute(db)
  await sql`drop table research_cache`.execute(db)
}
