import {type Kysely, sql} from '../src/db/kysely.js'

// What a stage found about a company, one row per company and stage: its value and the evidence for it (the page and
// quote that show it), as the stage declares them (jsonb). A new stage stores its results here: no ALTER of companies.
// The columns research writes and others read (score, verdicts) stay on companies.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table company_facts (
      run_id bigint not null references runs (id) on delete cascade,
      company_id bigint not null references companies (id) on delete cascade,
      stage text not null,
      value jsonb not null,
      evidence jsonb,
      provider text not null,
      simulated boolean not null default false,
      created_at timestamptz not null default now(),
      primary key (company_id, stage)
    )
  `.execute(db)
  await sql`create index company_facts_run_idx on company_facts (run_id, stage)`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table company_facts`.execute(db)
}
