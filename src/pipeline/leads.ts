import type {Executor} from '../db/executor.js'
import type {CompanyRow, CompanyStatus, ContactRow} from '../db/schema.js'
import type {Evidence, Verdict} from './provider.js'
import {stageFacts} from './stage-facts.js'
import {stagesOf} from './stages/index.js'
import {type FinalVerdict, VERDICT_KEYS} from './verification.js'

/**
 * A run's companies and contacts as people look at them (the dashboard's run
 * page): what each company is, how it was judged and on what evidence. Every
 * text here came from a web page or a model: whoever shows it escapes it.
 */

export interface Lead {
  id: number
  name: string
  domain: string
  website: string | null
  city: string | null
  state: string | null
  pms: string | null
  unitsEstimate: number | null
  status: CompanyStatus
  icpFit: string | null
  icpScore: number | null
  icpTier: string | null
  confidence: string | null
  /** Why it was qualified or disqualified, in the researcher's words. */
  reasons: string[]
  /** Pages the evidence came from. */
  sources: string[]
  /** Per criterion (and the site check), in export order: match, mismatch or unknown, who decided, and what shows it. */
  verdicts: LeadVerdict[]
  /** What kept it out (criteria, or its portfolio). */
  disqualifiedBy: string[]
  researchedAt: Date | null
  /** The columns the run's stages declare (phone, LinkedIn page, ...), with what shows each. */
  stageColumns: LeadColumn[]
}

export interface LeadColumn {
  stage: string
  name: string
  label: string
  value: string | null
  evidence: Evidence[]
  note: string | null
}

export interface LeadVerdict {
  key: string
  verdict: Verdict
  by: 'check' | 'model'
  evidence: Evidence[]
  note: string | null
}

export interface LeadContact {
  id: number
  companyId: number
  fullName: string
  title: string | null
  tier: number | null
  email: string | null
  phone: string | null
  linkedinUrl: string | null
  confidence: string | null
  sources: string[]
  emailStatus: ContactRow['email_status']
}

/** Companies of a run in one status, best ICP score first (then oldest), at most `limit` (after the first `offset`). */
export async function runLeads(db: Executor, runId: number, status: CompanyStatus, limit: number, offset = 0): Promise<Lead[]> {
  const rows = await db
    .selectFrom('companies')
    .selectAll()
    .where('run_id', '=', runId)
    .where('status', '=', status)
    .orderBy('icp_score', (ob) => ob.desc().nullsLast())
    .orderBy('id')
    .limit(limit)
    .offset(offset)
    .execute()
  return withStageColumns(db, runId, rows)
}

/** Companies as leads, with the columns the run's stages add (what each found, with its evidence). */
async function withStageColumns(db: Executor, runId: number, rows: CompanyRow[]): Promise<Lead[]> {
  const run = await db.selectFrom('runs').select('options').where('id', '=', runId).executeTakeFirst()
  const stages = run ? stagesOf(run).filter((s) => s.columns) : []
  const facts =
    stages.length > 0 && rows.length > 0
      ? await stageFacts(
          db,
          rows.map((r) => r.id),
        )
      : new Map()
  return rows.map((c) => {
    const stageColumns = stages.flatMap((s) =>
      s.columns!.flatMap((col) => {
        const fact = facts.get(c.id)?.[s.name]
        if (col.label === undefined) return []
        return [{stage: s.name, name: col.name, label: col.label, value: col.value(fact), evidence: col.evidence?.(fact) ?? [], note: col.note?.(fact) ?? null}]
      }),
    )
    return {...toLead(c), stageColumns}
  })
}

/** The contacts of these companies, by company, best tier first. */
export async function leadContacts(db: Executor, companyIds: number[]): Promise<Map<number, LeadContact[]>> {
  const out = new Map<number, LeadContact[]>(companyIds.map((id) => [id, []]))
  if (companyIds.length === 0) return out
  const rows = await db.selectFrom('contacts').selectAll().where('company_id', 'in', companyIds).orderBy('company_id').orderBy('tier').orderBy('id').execute()
  for (const k of rows) out.get(k.company_id)?.push(toContact(k))
  return out
}

/** A page of a run's companies in id order (stable while the run writes: new ones come after), from after `afterId`. */
export async function leadsPage(db: Executor, runId: number, o: {status?: CompanyStatus; afterId: number; limit: number}): Promise<Lead[]> {
  const rows = await db
    .selectFrom('companies')
    .selectAll()
    .where('run_id', '=', runId)
    .where('id', '>', o.afterId)
    .$if(o.status !== undefined, (q) => q.where('status', '=', o.status!))
    .orderBy('id')
    .limit(o.limit)
    .execute()
  return withStageColumns(db, runId, rows)
}

/** A page of a run's contacts in id order, from after `afterId`. */
export async function contactsPage(db: Executor, runId: number, o: {afterId: number; limit: number}): Promise<LeadContact[]> {
  const rows = await db.selectFrom('contacts').selectAll().where('run_id', '=', runId).where('id', '>', o.afterId).orderBy('id').limit(o.limit).execute()
  return rows.map(toContact)
}

const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [])

function toLead(c: CompanyRow): Omit<Lead, 'stageColumns'> {
  return {
    id: c.id,
    name: c.name,
    domain: c.domain,
    website: c.website,
    city: c.city,
    state: c.state,
    pms: c.pms,
    unitsEstimate: c.units_estimate,
    status: c.status,
    icpFit: c.icp_fit,
    icpScore: c.icp_score,
    icpTier: c.icp_tier,
    confidence: c.confidence,
    reasons: strings(c.reasons),
    sources: strings(c.sources),
    verdicts: verdictsOf(c.verdicts),
    disqualifiedBy: c.disqualified_by ?? [],
    researchedAt: c.researched_at,
  }
}

/** The stored verdicts in export order; anything malformed is left out rather than shown wrong. */
function verdictsOf(stored: unknown): LeadVerdict[] {
  if (!stored || typeof stored !== 'object') return []
  const all = stored as Partial<Record<string, FinalVerdict>>
  return VERDICT_KEYS.flatMap((key) => {
    const v = all[key]
    if (!v || !['match', 'mismatch', 'unknown'].includes(v.verdict)) return []
    const evidence = Array.isArray(v.evidence)
      ? v.evidence.filter((e): e is Evidence => typeof e?.url === 'string').map((e) => ({url: e.url, quote: typeof e.quote === 'string' ? e.quote : ''}))
      : []
    return [{key, verdict: v.verdict, by: v.by === 'check' ? 'check' : 'model', evidence, note: typeof v.note === 'string' ? v.note : null}]
  })
}

function toContact(k: ContactRow): LeadContact {
  return {
    id: k.id,
    companyId: k.company_id,
    fullName: k.full_name,
    title: k.title,
    tier: k.tier,
    email: k.email,
    phone: k.phone,
    linkedinUrl: k.linkedin_url,
    confidence: k.confidence,
    sources: strings(k.sources),
    emailStatus: k.email_status,
  }
}
