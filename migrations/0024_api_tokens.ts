import {type Kysely, sql} from '../src/db/kysely.js'

// The HTTP API's door:
// - api_tokens: who may call it, with what scope; only a SHA-256 of each token is kept (it is shown once), and when
//   it was last used (written at most once a minute);
// - api_idempotency: an Idempotency-Key a token sent with POST /runs, the request it came with and the run it made,
//   so a retried POST returns that run instead of creating another.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table api_tokens (
      id bigint generated always as identity primary key,
      name text not null,
      scope text not null check (scope in ('read', 'write')),
      token_hash text not null unique,
      created_at timestamptz not null default now(),
      last_used_at timestamptz,
      revoked_at timestamptz
    )
  `.execute(db)
  await sql`create unique index api_tokens_live_name_idx on api_tokens (name) where revoked_at is null`.execute(db)
  await sql`
    create table api_idempotency (
      token_id bigint not null references api_tokens (id) on delete cascade,
      key text not null,
      request_hash text not null,
      run_id bigint references runs (id) on delete cascade,
      created_at timestamptz not null default now(),
      primary key (token_id, key)
    )
  `.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table api_idempotency`.execute(db)
  await sql`drop table api_tokens`.execute(db)
}
