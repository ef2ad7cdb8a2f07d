import {type Kysely, sql} from '../src/db/kysely.js'

// Stage names are checked against the stage registry (src/pipeline/stages/index.ts) in code, not by CHECKs that every
// new stage would have to widen: runs.stage (a stage's name, or 'done') and research_cache.kind (the name of a stage
// that caches) lose the CHECKs 0003 and 0011 gave them.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table runs drop constraint if exists runs_stage_check`.execute(db)
  await sql`alter table research_cache drop constraint if exists research_cache_kind_check`.execute(db)
  await sql`comment on column runs.stage is 'The stage whose rule decides the run: a stage name of the registry (src/pipeline/stages/index.ts), or done'`.execute(
    db,
  )
  await sql`comment on column research_cache.kind is 'The name of the stage whose answer this is (a stage that declares cached)'`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table research_cache add constraint research_cache_kind_check check (kind in ('research', 'contacts'))`.execute(db)
  await sql`alter table runs add constraint runs_stage_check check (stage in ('discovery', 'research', 'contacts', 'done'))`.execute(db)
}
