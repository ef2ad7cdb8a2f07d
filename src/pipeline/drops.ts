import {sql} from '../db/kysely.js'
import type {Executor} from '../db/executor.js'
import {verdictLabel} from './verification.js'

/**
 * Why companies left the running. A disqualified company names its reasons
 * in disqualified_by: the criteria (and the site and portfolio checks) that
 * kept it out, or one of these, written when it was dropped after it had
 * qualified. A company still qualified when its run ended lost its place to
 * better-scoring ones; it is counted so without being rewritten.
 */
export const DROP = {
  /** Selected, but fewer than contacts_min of its decision makers have an email whose domain takes mail. */
  noDeliverableEmail: 'no_deliverable_email',
  /** Selected, but fewer than contacts_min decision makers were found at all. */
  tooFewContacts: 'too_few_contacts',
  /** The same company (one registrable domain) as another of the run's. */
  duplicate: 'duplicate',
  /** Qualified, but the run ended with better-scoring companies selected. */
  displaced: 'displaced',
} as const

export interface DropCount {
  /** The disqualified_by key (a criterion, a check, or one of DROP), '' when none was recorded. */
  key: string
  /** A criterion's verdict (mismatch or unknown) when that is the reason. */
  verdict: string | null
  /** For people: "units mismatch", "no contact with a deliverable email". */
  reason: string
  count: number
}

const LABELS: Record<string, string> = {
  [DROP.noDeliverableEmail]: 'no contact with a deliverable email',
  [DROP.tooFewContacts]: 'too few decision makers found',
  [DROP.duplicate]: 'duplicate of another company of the run',
  [DROP.displaced]: 'lost its place to a better-scoring company',
  portfolio: 'not a residential portfolio',
  '': 'no reason recorded',
}

/** A drop reason for people. */
export function dropReason(key: string, verdict: string | null): string {
  return LABELS[key] ?? `${verdictLabel(key)} ${verdict ?? 'mismatch'}`
}

/**
 * A run's drops counted by reason, most common first: a company kept out by
 * two criteria counts under both. Companies still qualified when the run
 * ended count as displaced.
 */
export async function dropsByReason(db: Executor, runId: number): Promise<DropCount[]> {
  const {rows} = await sql<{key: string; verdict: string | null; count: number}>`
    select key, verdict, count(*)::int as count from (
      select coalesce(k.key, '') as key, c.verdicts -> k.key ->> 'verdict' as verdict
      from companies c
      cross join lateral unnest(case when cardinality(c.disqualified_by) = 0 then array[null::text] else c.disqualified_by end) as k(key)
      where c.run_id = ${runId} and c.status = 'disqualified'
      union all
      select ${DROP.displaced}, null from companies c join runs r on r.id = c.run_id
      where c.run_id = ${runId} and c.status = 'qualified' and r.status in ('completed', 'canceled')
    ) x
    group by key, verdict
    order by count(*) desc, key, verdict`.execute(db)
  return rows.map((r) => ({key: r.key, verdict: r.verdict, reason: dropReason(r.key, r.verdict), count: r.count}))
}

/** "units mismatch 8, no contact with a deliverable email 2" (the first `limit` reasons, then "and N more"). */
export function describeDrops(drops: DropCount[], limit = 4): string {
  if (drops.length === 0) return 'none'
  const shown = drops.slice(0, limit).map((d) => `${d.reason} ${d.count}`)
  return drops.length > limit ? `${shown.join(', ')} and ${drops.length - limit} more` : shown.join(', ')
}

/** For a needs_decision note: "Most were dropped for units mismatch (8 of 14 dropped)." ('' when nothing was dropped). */
export function mainDropNote(drops: DropCount[], dropped: number): string {
  return drops.length === 0 ? '' : `Most were dropped for ${drops[0].reason} (${drops[0].count} of ${dropped} dropped).`
}
