import {type Kysely, sql} from '../src/db/kysely.js'

// Every dropped company names why in disqualified_by. Companies dropped before that was so carry it in their
// reasons only: a selected company short of decision makers, or a duplicate merged by migration 0018. Their key is
// written from those words (see DROP in src/pipeline/drops.ts); what names no reason stays as it is.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    update companies set disqualified_by = array['too_few_contacts']
    where status = 'disqualified' and cardinality(disqualified_by) = 0 and reasons::text like '%decision makers found%'`.execute(db)
  await sql`
    update companies set disqualified_by = array['duplicate']
    where status = 'disqualified' and cardinality(disqualified_by) = 0 and reasons::text like '%duplicate of company%'`.execute(db)
}

// The keys stay: they are true of those rows either way.
export async function down(): Promise<void> {}
