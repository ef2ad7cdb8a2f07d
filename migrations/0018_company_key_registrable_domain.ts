import {type Kysely, sql} from '../src/db/kysely.js'
import {companyKey} from '../src/pipeline/domains.js'

// Companies were keyed by their host less `www.`: blog.acme.com and acme.com were two companies and could both be
// delivered. They are keyed by `companyKey` now (the registrable domain, or the tenant's host on a shared platform).
// Each run's companies are re-keyed on their own (no company of one run merges with another run's). Where two of a
// run's rows meet on one key, the one furthest along (selected, then qualified, candidate, disqualified; then the
// lowest id) keeps it, and the others are disqualified with a reason naming it; no row is deleted (contacts and
// tasks refer to them). A loser that already held the key takes the winner's old host, so (run_id, domain) stays
// unique; its reason keeps the host it was found as.
const RANK: Record<string, number> = {selected: 0, qualified: 1, candidate: 2, disqualified: 3}

interface Row {
  id: number
  domain: string
  status: string
}

export async function up(db: Kysely<any>): Promise<void> {
  await sql`comment on column companies.domain is 'The company key: its registrable domain, or the customer''s host on a shared platform (see companyKey in src/pipeline/domains.ts)'`.execute(
    db,
  )
  const runs = await sql<{run_id: number}>`select distinct run_id from companies order by run_id`.execute(db)
  for (const {run_id: runId} of runs.rows) {
    const {rows} = await sql<Row>`select id, domain, status from companies where run_id = ${runId} order by id`.execute(db)
    const byKey = new Map<string, Row[]>()
    for (const row of rows) byKey.set(companyKey(row.domain), [...(byKey.get(companyKey(row.domain)) ?? []), row])
    for (const [key, group] of byKey) {
      if (group.length === 1 && group[0].domain === key) continue
      const [keeper, ...others] = group.sort((a, b) => (RANK[a.status] ?? 9) - (RANK[b.status] ?? 9) || Number(a.id) - Number(b.id))
      // The keeper steps off its old host first (a loser holding the key takes that host), onto a name no host has
      // (hosts have no spaces, and it names the id).
      await sql`update companies set domain = ${`${key} (re-keying ${keeper.id})`} where id = ${keeper.id}`.execute(db)
      for (const other of others) {
        const reason = `duplicate of company ${keeper.id} (${key}): one company per registrable domain; found as ${other.domain}`
        await sql`
          update companies set domain = ${other.domain === key ? keeper.domain : other.domain}, status = 'disqualified',
            reasons = reasons || to_jsonb(array[${reason}::text])
          where id = ${other.id}`.execute(db)
      }

      await sql`update companies set domain = ${key} where id = ${keeper.id}`.execute(db)
    }
  }
}

// Keys are not split again: which host a merged company was found as is kept in the losers' reasons only.
export async function down(db: Kysely<any>): Promise<void> {
  await sql`comment on column companies.domain is null`.execute(db)
}
