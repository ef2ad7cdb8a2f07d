import type {z} from 'zod'

import {sql} from '../../db/kysely.js'
import type {CompanyRow} from '../../db/schema.js'
import type {Criteria} from '../criteria.js'
import type {AgentRequest, CallContext, CandidateCompany, CompanyResearch, ResearchProvider, SiteFacts} from '../provider.js'
import {cacheKey, DEFAULT_CACHE_TTL_MS, metered, readCache, writeCache} from '../cache.js'
import {normalizeResearch, normalizeSiteFacts} from '../normalize.js'
import {runOptions} from '../run-options.js'
import {type Verification, verifyCompany} from '../verification.js'
import {lazySchema, pct, type RunPayload, type Stage} from './stage.js'

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

/** What the model returns (its shape only: pipeline/normalize.ts bounds the values); evidence: a page it read and a short quote. */
const researchOutput = (zod: typeof z) => {
  const evidence = zod.object({url: zod.string().max(2000), quote: zod.string().max(500)})
  const verdict = zod.object({verdict: zod.enum(['match', 'mismatch', 'unknown']), evidence: zod.array(evidence).max(5).default([])})
  return zod.object({
    verdicts: zod
      .object({
        pms: verdict.optional(),
        state: verdict.optional(),
        city: verdict.optional(),
        units: verdict.optional(),
        natural_request: verdict.optional(),
      })
      .default({}),
    portfolio: zod.enum(['residential', 'hoa_only', 'large_multifamily_only', 'brokerage_only', 'no_active_management', 'unknown']).default('unknown'),
    units_estimate: zod.number().nullish(),
    employees_estimate: zod.number().nullish(),
    confidence: zod.enum(['low', 'medium', 'high']),
    reasons: zod.array(zod.string().max(500)).max(20).default([]),
    sources: zod.array(zod.string().max(2000)).max(20).default([]),
    pms: zod.string().nullish(),
    city: zod.string().nullish(),
    state: zod.string().nullish(),
  })
}
const researchSchema = lazySchema(researchOutput)

/** The agent call that researches one company against the criteria. */
export async function researchRequest(input: {
  criteria: Criteria
  company: CandidateCompany
}): Promise<AgentRequest<z.infer<ReturnType<typeof researchOutput>>>> {
  const c = input.company
  return {
    stage: 'research',
    prompt: `Research ${c.name} (${c.website ?? c.domain}) against these criteria: ${JSON.stringify(input.criteria)}.
For each criterion given (pms, state, city, units for units_min/units_max, natural_request), say "match", "mismatch" or "unknown", with evidence: the exact URL of a page you read and a short quote from it that shows it. "unknown" when nothing you read shows it; never guess.
pms: the software its tenant/owner portal, login or payment links point at (use detect_pms); a blog post or an article that mentions a vendor is not evidence.
state, city: from a postal address on the company's own pages.
units: estimate from listings x ~10 and team size; say the estimate in units_estimate.
portfolio: residential (mostly single-family / small multifamily rentals it manages), hoa_only, large_multifamily_only, brokerage_only, no_active_management, or unknown.
Return {"verdicts": {"<criterion>": {"verdict", "evidence": [{"url", "quote"}]}}, "portfolio", "units_estimate", "employees_estimate", "confidence", "reasons": [...], "sources": [...], "pms", "city", "state"}.`,
    schema: await researchSchema(),
    tools: ['search_web', 'fetch_page', 'detect_pms'],
    input,
  }
}

/** The research of one company, as the model answered it (with every URL the call read). */
export async function askResearch(
  provider: ResearchProvider,
  input: {criteria: Criteria; company: CandidateCompany},
  ctx: CallContext,
): Promise<CompanyResearch> {
  const {value: out, seen} = await provider.agent(await researchRequest(input), ctx)
  return {
    verdicts: out.verdicts,
    portfolio: out.portfolio,
    unitsEstimate: out.units_estimate ?? null,
    employeesEstimate: out.employees_estimate ?? null,
    confidence: out.confidence,
    reasons: out.reasons,
    sources: out.sources,
    pms: out.pms ?? null,
    city: out.city ?? null,
    state: out.state ?? null,
    seen,
  }
}

/**
 * Research: the deterministic checks of the company's own site, then the
 * model's verdict per criterion with the pages it read; verification
 * (verification.ts) decides qualification and score from both.
 */
export const research: Stage<Payload, Input, Output> = {
  name: 'research',
  kind: 'company',
  summary: 'verify each candidate against the criteria, with evidence, and score its fit',
  trigger: 'discovered',
  maxAttempts: 3,
  cached: true,

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
    const research = site.site.verdict === 'mismatch' ? null : normalizeResearch(await askResearch(provider, {criteria, company: candidate}, paid))
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

  // The companies found that were judged.
  percent: ({companies: c, past}) => (past ? 100 : pct(c.total - c.candidate, c.total)),

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
    const discovering = c.pendingFor('run')
    const judging = c.pendingFor('discovered')
    if (discovering > 0 || judging > 0) {
      if (discovering === 0 && qualified + judging < c.run.quantity && (await c.discoverMore())) return 'running'
      if (discovering === 0 && c.run.stage !== 'research') await c.setStage('research')
      return 'running'
    }

    if (await c.discoverMore()) return 'running'
    // Short of the target: still do the selected companies' stages for what qualified (the contacts rule settles work
    // started early, and gives the places of companies short of what they require to others), then ask.
    if (c.companies.qualified > 0 || c.pendingFor('selected') > 0 || (await c.shortOfRequirements()) > 0) return c.select()
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
