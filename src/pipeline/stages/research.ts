import {sql} from 'kysely'

import type {CompanyRow} from '../../db/schema.js'
import type {Criteria} from '../criteria.js'
import type {CandidateCompany, CompanyResearch} from '../provider.js'
import type {RunPayload, Stage} from './stage.js'

type Payload = RunPayload & {companyId: number}

/** Research: qualify or disqualify one candidate against the criteria, with evidence and an ICP score. */
export const research: Stage<Payload, {criteria: Criteria; company: CompanyRow}, CompanyResearch> = {
  name: 'research',
  kind: 'company',
  summary: 'qualify each candidate against the criteria and score its fit',
  maxAttempts: 3,

  async prepare({db, run, payload}) {
    const company = await db.selectFrom('companies').selectAll().where('id', '=', payload.companyId).executeTakeFirst()
    return company && company.status === 'candidate' ? {criteria: run.criteria as Criteria, company} : null
  },

  ask: (provider, {criteria, company}, ctx) => provider.research({criteria, company: toCandidate(company)}, ctx),

  result: (r) => ({fit: r.fit, score: r.score}),

  async write({trx}, {company}, r) {
    await trx
      .updateTable('companies')
      .set({
        status: r.fit === 'yes' ? 'qualified' : 'disqualified',
        icp_fit: r.fit,
        icp_score: Math.max(0, Math.min(100, Math.round(r.score))),
        icp_tier: r.tier,
        confidence: r.confidence,
        reasons: JSON.stringify(r.reasons),
        sources: JSON.stringify([...new Set([...(company.sources as string[]), ...r.sources])]),
        pms: r.pms ?? company.pms,
        units_estimate: r.unitsEstimate ?? company.units_estimate,
        city: r.city ?? company.city,
        state: r.state ?? company.state,
        researched_at: sql`now()` as never,
      })
      .where('id', '=', company.id)
      .where('status', '=', 'candidate')
      .execute()
  },

  describe: (p) =>
    `${p.companies.qualified + p.companies.disqualified + p.companies.selected}/${p.companies.total} (${p.companies.qualified + p.companies.selected} qualified)`,

  /**
   * Target met: select. Work in flight: wait. Nothing in flight and short of
   * the target: another discovery round, or (out of rounds or supply) contacts
   * for what qualified, then a decision.
   */
  async advance(c) {
    const qualified = c.companies.qualified + c.companies.selected
    if (qualified >= c.run.quantity) return c.select()
    if (c.pending.discovery > 0 || c.pending.research > 0) {
      if (c.pending.discovery === 0 && c.run.stage !== 'research') await c.setStage('research')
      return 'running'
    }

    if (await c.discoverMore()) return 'running'
    // Short of the target: still find decision makers for what qualified, then ask.
    if (c.companies.qualified > 0) return c.select()
    const why = c.options.discoveryExhausted ? 'discovery found no new companies' : `${c.run.discovery_rounds} discovery rounds done`
    return c.needsDecision(
      `${why}: ${qualified} of ${c.run.quantity} qualified companies. Accept what there is (rvx runs accept ${c.run.id}), widen the criteria and resume, or cancel.`,
    )
  },
}

/** A company row as the provider sees it. */
export function toCandidate(c: CompanyRow): CandidateCompany {
  return {
    name: c.name,
    domain: c.domain,
    website: c.website,
    city: c.city,
    state: c.state,
    pms: c.pms,
    unitsEstimate: c.units_estimate,
    sources: (c.sources as string[]) ?? [],
  }
}
