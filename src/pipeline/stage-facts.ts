import type {Executor} from '../db/executor.js'
import type {CompanyFact} from './stages/stage.js'

/** What the stages found about these companies (company_facts), by company and then stage. */
export async function stageFacts(db: Executor, companyIds: readonly number[]): Promise<Map<number, Record<string, CompanyFact>>> {
  const out = new Map<number, Record<string, CompanyFact>>()
  if (companyIds.length === 0) return out
  const rows = await db
    .selectFrom('company_facts')
    .select(['company_id', 'stage', 'value', 'evidence'])
    .where('company_id', 'in', [...companyIds])
    .execute()
  for (const r of rows) {
    const facts = out.get(r.company_id) ?? {}
    facts[r.stage] = {value: r.value, evidence: r.evidence}
    out.set(r.company_id, facts)
  }

  return out
}
