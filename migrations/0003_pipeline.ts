import {type Kysely, sql} from '../src/db/kysely.js'

// The lead-list pipeline: runs, the companies and contacts they find, and the cost of every model call.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table runs (
      id bigint generated always as identity primary key,
      criteria jsonb not null,
      quantity integer not null check (quantity between 1 and 10000),
      contacts_min integer not null default 1,
      contacts_max integer not null default 3,
      provider text not null,
      status text not null default 'running'
        check (status in ('running', 'needs_decision', 'completed', 'failed', 'canceled')),
      stage text not null default 'discovery'
        check (stage in ('discovery', 'research', 'contacts', 'done')),
      discovery_rounds integer not null default 0,
      options jsonb not null default '{}',
      notes text,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      finished_at timestamptz,
      check (contacts_min >= 1 and contacts_min <= contacts_max and contacts_max <= 10)
    )
  `.execute(db)

  await sql`
    create table companies (
      id bigint generated always as identity primary key,
      run_id bigint not null references runs (id) on delete cascade,
      domain text not null,
      name text not null,
      website text,
      city text,
      state text,
      pms text,
      units_estimate integer,
      status text not null default 'candidate'
        check (status in ('candidate', 'qualified', 'disqualified', 'selected')),
      icp_fit text check (icp_fit in ('yes', 'no', 'unknown')),
      icp_score integer check (icp_score between 0 and 100),
      icp_tier text,
      confidence text,
      reasons jsonb not null default '[]',
      sources jsonb not null default '[]',
      discovered_by text not null,
      discovery_round integer not null default 1,
      simulated boolean not null default false,
      researched_at timestamptz,
      created_at timestamptz not null default now(),
      unique (run_id, domain)
    )
  `.execute(db)
  await sql`create index companies_run_status_idx on companies (run_id, status, icp_score desc)`.execute(db)

  await sql`
    create table contacts (
      id bigint generated always as identity primary key,
      run_id bigint not null references runs (id) on delete cascade,
      company_id bigint not null references companies (id) on delete cascade,
      full_name text not null,
      title text,
      tier integer,
      email text,
      phone text,
      linkedin_url text,
      confidence text,
      sources jsonb not null default '[]',
      simulated boolean not null default false,
      created_at timestamptz not null default now()
    )
  `.execute(db)
  // Duplicates are impossible by constraint, not by swallowing errors.
  await sql`create unique index contacts_email_uniq on contacts (company_id, lower(email)) where email is not null`.execute(db)
  await sql`create unique index contacts_linkedin_uniq on contacts (company_id, lower(linkedin_url)) where linkedin_url is not null`.execute(db)
  await sql`create unique index contacts_name_uniq on contacts (company_id, lower(full_name))`.execute(db)
  await sql`create index contacts_run_idx on contacts (run_id)`.execute(db)

  await sql`
    create table llm_calls (
      id bigint generated always as identity primary key,
      run_id bigint references runs (id) on delete cascade,
      task_id bigint,
      provider text not null,
      model text not null,
      input_tokens integer not null default 0,
      output_tokens integer not null default 0,
      cached_tokens integer not null default 0,
      latency_ms integer not null default 0,
      cost_usd numeric(12, 6) not null default 0,
      outcome text not null,
      created_at timestamptz not null default now()
    )
  `.execute(db)
  await sql`create index llm_calls_run_idx on llm_calls (run_id)`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['llm_calls', 'contacts', 'companies', 'runs']) await sql`drop table if exists ${sql.table(table)}`.execute(db)
}
