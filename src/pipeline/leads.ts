import type {Executor} from '../db/executor.js'
import type {CompanyRow, CompanyStatus, ContactRow} from '../db/schema.js'

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
  researchedAt: Date | null
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
}

/** Companies of a run in one status, best ICP score first (then oldest), at most `limit`. */
export async function runLeads(db: Executor, runId: number, status: CompanyStatus, limit: number): Promise<Lead[]> {
  const rows = await db
    .selectFrom('companies')
    .selectAll()
    .where('run_id', '=', runId)
    .where('status', '=', status)
    .orderBy('icp_score', (ob) => ob.desc().nullsLast())
    .orderBy('id')
    .limit(limit)
    .execute()
  return rows.map(toLead)
}

/** The contacts of these companies, by company, best tier first. */
export async function leadContacts(db: Executor, companyIds: number[]): Promise<Map<number, LeadContact[]>> {
  const out = new Map<number, LeadContact[]>(companyIds.map((id) => [id, []]))
  if (companyIds.length === 0) return out
  const rows = await db.selectFrom('contacts').selectAll().where('company_id', 'in', companyIds).orderBy('company_id').orderBy('tier').orderBy('id').execute()
  for (const k of rows) out.get(k.company_id)?.push(toContact(k))
  return out
}

const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [])

function toLead(c: CompanyRow): Lead {
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
    researchedAt: c.researched_at,
  }
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
  }
}
