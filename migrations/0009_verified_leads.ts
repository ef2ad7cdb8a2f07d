import {type Kysely, sql} from '../src/db/kysely.js'

// Verified leads: a verdict per criterion with its evidence, the deterministic checks behind them, what kept a
// company out, and the checked status of each contact's email.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    alter table companies
      add column verdicts jsonb not null default '{}',
      add column checks jsonb not null default '{}',
      add column disqualified_by text[] not null default '{}'
  `.execute(db)
  await sql`
    alter table contacts
      add column email_status text check (email_status in ('valid_domain', 'no_mx', 'invalid', 'unchecked'))
  `.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table contacts drop column email_status`.execute(db)
  await sql`alter table companies drop column verdicts, drop column checks, drop column disqualified_by`.execute(db)
}
