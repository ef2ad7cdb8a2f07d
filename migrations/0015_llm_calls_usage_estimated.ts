import {type Kysely, sql} from '../src/db/kysely.js'

// llm_calls.usage_estimated: the provider's token counts were missing, negative or not numbers, and the call's tokens
// and cost are rvx's estimate from its request and answer (a budget holds whatever a provider reports).
export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table llm_calls add column usage_estimated boolean not null default false`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table llm_calls drop column usage_estimated`.execute(db)
}
