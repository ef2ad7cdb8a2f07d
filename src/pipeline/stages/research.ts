import {sql} from '../../db/kysely.js'
import type {CompanyRow} from '../../db/schema.js'
import type {Criteria} from '../criteria.js'
import type {CandidateCompany, CompanyResearch, SiteFacts} from '../provider.js'
import {cacheKey, DEFAULT_CACHE_TTL_MS, metered, readCache, writeCache} from '../cache.js'
import {normalizeResearch, normalizeSiteFacts} from '../normalize.js'
import {runOptions} from '../run-options.js'
import {type Verification, verifyCompany} from '../verification.js'
import type {RunPayload, Stage} from './stage.js'

type Payload = RunPayload & {companyId: number}

interface Input {
  criteria: Criteria
  acceptUnknown: string[]
  company: CompanyRow
}

interface Output {
  site: SiteFacts
  /** Null when the site check already ruled the company out (a directory or social profile): no model call is paid for it. */
  research: CompanyResearch | null
  /** What the two add up to (verification.ts). */
  verified: Verification
  /** When the site and research were paid for, when they come from the cache; null: by this task. */
  researchedAt: Date | null
  fromCache: boolean
  /** Where this task's answer goes in the cache, and what it cost (written with the completion). */
  cache: {key: string; provider: string; costUsd: number}
}

/** What the research cache keeps of a company: the site checks and the model's research, judged again for each run. */
type Cached = Pick<Output, 'site' | 'research'>

/**
 * Research: the deterministic checks of the company's own site, then the
 * model's verdict per criterion with the pages it read; verification
 * (verification.ts) decides qualification and score from both.
 */
export const research: Stage<Payload, Input, Output> = {
  name: 'research',
  kind: 'company',
  summary: 'verify each candidate against the criteria, with evidence, and score its fit',
  maxAttempts: 3,

  async prepare({db, run, payload}) {
    const company = await db.selectFrom('companies').selectAll().where('id', '=', payload.companyId).executeTakeFirst()
    return company && company.status === 'candidate' ? {criteria: run.criteria as Criteria, acceptUnknown: runOptions(run).acceptUnknown ?? [], company} : null
  },

  async ask(provider, {criteria, acceptUnknown, company}, ctx) {
    const {db, run} = ctx.prepared
    const options = runOptions(run)
    const key = cacheKey('research', {domain: company.domain, provider: provider.identity, criteria})
    const hit = options.fresh ? null : await readCache<Cached>(db, 'research', key, options.cacheTtlMs ?? DEFAULT_CACHE_TTL_MS)
    if (hit) {
      const site = normalizeSiteFacts(hit.value.site)
      const research = hit.value.research && normalizeResearch(hit.value.research)
      const cache = {key, provider: provider.identity, costUsd: 0}
      return {site, research, verified: verifyCompany({criteria, acceptUnknown, research, site}), researchedAt: new Date(hit.createdAt), fromCache: true, cache}
    }

    const candidate = toCandidate(company)
    // What the pages and the model said, normalized once before it is judged, cached or stored.
    const site = normalizeSiteFacts(await provider.checks.checkSite(candidate, ctx.signal))
    const paid = metered(ctx)
    const research = site.site.verdict === 'mismatch' ? null : normalizeResearch(await provider.research({criteria, company: candidate}, paid))
    const cache = {key, provider: provider.identity, costUsd: paid.spentUsd()}
    return {site, research, verified: verifyCompany({criteria, acceptUnknown, research, site}), researchedAt: null, fromCache: false, cache}
  },

  result: ({verified: v, fromCache}) => ({qualified: v.qualified, score: v.score, disqualifiedBy: v.disqualifiedBy, ...(fromCache ? {fromCache} : {})}),

  async write({trx}, {company}, {site, research, verified: v, researchedAt, fromCache, cache}) {
    // A new answer is cached with the completion (a result fenced out is not kept); now() is the transaction's, so the
    // company's researched_at and the entry's date are the same moment.
    if (!fromCache) {
      await writeCache(trx, 'research', cache.key, {
        domain: company.domain,
        provider: cache.provider,
        value: {site, research} satisfies Cached,
        costUsd: cache.costUsd,
      })
    }

    await trx
      .updateTable('companies')
      .set({
        status: v.qualified ? 'qualified' : 'disqualified',
        icp_fit: v.fit,
        icp_score: v.score,
        icp_tier: v.tier,
        confidence: v.confidence,
        reasons: JSON.stringify(v.reasons),
        sources: JSON.stringify([...new Set([...(company.sources as string[]), ...v.sources])]),
        pms: v.facts.pms,
        units_estimate: v.facts.unitsEstimate ?? company.units_estimate,
        city: v.facts.city ?? company.city,
        state: v.facts.state ?? company.state,
        verdicts: JSON.stringify(v.verdicts),
        checks: JSON.stringify({pms: site.pms, address: site.address, ownDomains: site.ownDomains, pages: site.pages, site: site.site}),
        disqualified_by: v.disqualifiedBy,
        researched_at: researchedAt ?? (sql`now()` as never),
        from_cache: fromCache,
      })
      .where('id', '=', company.id)
      .where('status', '=', 'candidate')
      .execute()
  },

  describe: (p) =>
    `${p.companies.qualified + p.companies.disqualified + p.companies.selected}/${p.companies.total} (${p.companies.qualified + p.companies.selected} qualified)`,

  /**
   * Target met: select. Short of it: what qualified is selected at once and
   * its contact search starts (the target, when met, stops the rest), and the
   * next discovery round starts as soon as the shortfall is known (even if all
   * research in flight qualified, the run would fall short), not after
   * research drains. Nothing in flight and short: another round, or (out of
   * rounds or supply) contacts for what qualified, then a decision.
   */
  async advance(c) {
    const qualified = c.companies.qualified + c.companies.selected
    if (qualified >= c.run.quantity) return c.select()
    if (c.companies.qualified > 0) await c.selectQualified()
    if (c.pending.discovery > 0 || c.pending.research > 0) {
      if (c.pending.discovery === 0 && qualified + c.pending.research < c.run.quantity && (await c.discoverMore())) return 'running'
      if (c.pending.discovery === 0 && c.run.stage !== 'research') await c.setStage('research')
      return 'running'
    }

    if (await c.discoverMore()) return 'running'
    // Short of the target: still find decision makers for what qualified (the contacts rule settles searches started
    // early, and gives the places of companies short of decision makers to others), then ask.
    if (c.companies.qualified > 0 || c.pending.contacts > 0 || (await c.shortOfContacts()) > 0) return c.select()
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
