import type {z} from 'zod'

import {sql} from '../../db/kysely.js'
import type {Executor} from '../../db/executor.js'
import type {RunRow} from '../../db/schema.js'
import type {Criteria} from '../criteria.js'
import {companyKey, isDirectoryDomain, normalizeDomain} from '../domains.js'
import {normalizeCandidates} from '../normalize.js'
import type {AgentRequest, CallContext, CandidateCompany, ResearchProvider} from '../provider.js'
import {companyCounts} from '../run-counts.js'
import {runOptions} from '../run-options.js'
import {lazySchema, pct, type RunPayload, type Stage} from './stage.js'

type Payload = RunPayload & {round: number}

/** Companies judged before their qualification rate sizes a discovery round. */
const MIN_JUDGED_FOR_RATE = 5
interface Input {
  criteria: Criteria
  want: number
  exclude: string[]
  round: number
  /** Domains delivered by earlier runs or excluded by the run (--exclude): never delivered again. */
  suppressed: Set<string>
}

/** What the model returns (its shape only: pipeline/normalize.ts bounds the values). */
const discoveryOutput = (zod: typeof z) =>
  zod.object({
    companies: zod.array(
      zod.object({
        name: zod.string().min(1),
        domain: zod.string().min(3),
        website: zod.string().nullish(),
        city: zod.string().nullish(),
        state: zod.string().nullish(),
        pms: zod.string().nullish(),
        units_estimate: zod.number().nullish(),
        sources: zod.array(zod.string()).default([]),
      }),
    ),
  })
const discoverySchema = lazySchema(discoveryOutput)

/** The agent call of one discovery round. */
export async function discoveryRequest(input: {
  criteria: Criteria
  want: number
  exclude: string[]
}): Promise<AgentRequest<z.infer<ReturnType<typeof discoveryOutput>>>> {
  return {
    stage: 'discovery',
    prompt: `Find ${input.want} property-management companies matching these criteria: ${JSON.stringify(input.criteria)}.
Skip these domains (already known or excluded): ${input.exclude.slice(0, 500).join(', ') || 'none'}.
Return {"companies": [{"name", "domain", "website", "city", "state", "pms", "units_estimate", "sources"}]}. Domains are bare hosts like acme-pm.com.`,
    schema: await discoverySchema(),
    tools: ['search_web', 'fetch_page', 'detect_pms'],
    input,
  }
}

/** The companies the model found, as it named them. */
export async function askDiscovery(
  provider: ResearchProvider,
  input: {criteria: Criteria; want: number; exclude: string[]},
  ctx: CallContext,
): Promise<CandidateCompany[]> {
  const {value} = await provider.agent(await discoveryRequest(input), ctx)
  return value.companies.map((c) => ({
    name: c.name,
    domain: c.domain,
    website: c.website ?? null,
    city: c.city ?? null,
    state: c.state ?? null,
    pms: c.pms ?? null,
    unitsEstimate: c.units_estimate ?? null,
    sources: c.sources,
  }))
}

/** Discovery: find candidate companies for the run, oversampling what is still wanted, never a domain twice. */
export const discovery: Stage<Payload, Input, CandidateCompany[]> = {
  name: 'discovery',
  kind: 'lead-list',
  summary: 'find candidate companies that may match the criteria',
  trigger: 'run',
  maxAttempts: 3,
  priority: 10,

  async prepare({db, run, payload}) {
    const criteria = run.criteria as Criteria
    const known = (await db.selectFrom('companies').select('domain').where('run_id', '=', run.id).execute()).map((r) => companyKey(r.domain))
    const counts = await companyCounts(db, run.id)
    const n = (status: keyof typeof counts) => counts[status]
    // Candidates not yet judged count at the rate research has qualified so far (all of them before any is judged): a
    // round started while research is in flight asks for what the run will be short of, not for one or two companies.
    const good = n('qualified') + n('selected')
    const judged = good + n('disqualified')
    const rate = judged >= MIN_JUDGED_FOR_RATE ? good / judged : 1
    const want = Math.max(1, Math.ceil((run.quantity - good - n('candidate') * rate) * runOptions(run).oversample))
    const suppressed = await suppressedDomains(db, run)
    return {
      criteria,
      want,
      exclude: [...known, ...(criteria.exclude_domains ?? []).map(keyOf).filter(Boolean), ...suppressed],
      round: payload.round,
      suppressed,
    }
  },

  // Normalized here, once: a name or number the database cannot hold must not fail the settlement (and the paid call be made again).
  ask: async (provider, {criteria, want, exclude}, ctx) => normalizeCandidates(await askDiscovery(provider, {criteria, want, exclude}, ctx)),

  result: (found, input) => ({found: found.length, fresh: dedupe(found, new Set(input.exclude)).length}),

  async write({trx, run, payload, provider, discovered}, input, found) {
    const fresh = dedupe(found, new Set(input.exclude))
    // Found again though the model was told to skip them: dropped, and counted.
    const dropped = new Set(found.map((c) => keyOf(c.domain)).filter((d) => input.suppressed.has(d))).size
    if (dropped > 0)
      await trx
        .updateTable('runs')
        .set({suppressed: sql`suppressed + ${dropped}` as never})
        .where('id', '=', run.id)
        .execute()
    const inserted =
      fresh.length === 0
        ? []
        : await trx
            .insertInto('companies')
            .values(
              fresh.map((c) => ({
                run_id: run.id,
                domain: c.domain,
                name: c.name,
                website: c.website ?? null,
                city: c.city ?? null,
                state: c.state ?? null,
                pms: c.pms ?? null,
                units_estimate: c.unitsEstimate ?? null,
                sources: JSON.stringify(c.sources),
                discovered_by: provider.name,
                discovery_round: payload.round,
                simulated: provider.simulated,
              })),
            )
            .onConflict((oc) => oc.columns(['run_id', 'domain']).doNothing())
            .returning(['id'])
            .execute()
    if (inserted.length === 0) {
      await trx
        .updateTable('runs')
        .set({options: sql`options || '{"discoveryExhausted": true}'::jsonb` as never})
        .where('id', '=', run.id)
        .execute()
    }

    await discovered(inserted.map((c) => c.id))
  },

  describe: (p, inFlight) => `${p.companies.total} found${inFlight > 0 ? ', searching' : ''}`,

  // Against the oversampled target while the run discovers.
  percent: ({run, companies, past}) => (past ? 100 : pct(companies.total, Math.ceil(run.quantity * run.oversample))),

  // Research decides, with discovery in flight too: what qualified is selected meanwhile, and the target stops both.
  advance: (c) => c.continueWith('research'),
}

/** A domain or URL as found or typed, as the company key it stands for. */
const keyOf = (domain: string) => companyKey(normalizeDomain(domain))

/**
 * Keyed by company (`companyKey`), unique, not excluded: the same company
 * never enters a run twice, whichever of its hosts was found. The host found
 * stays the site to research when no website came with it.
 */
export function dedupe(found: CandidateCompany[], exclude: Set<string>): CandidateCompany[] {
  const seen = new Set<string>()
  const out: CandidateCompany[] = []
  for (const c of found) {
    const host = normalizeDomain(c.domain)
    const domain = companyKey(host)
    // A directory or social profile is never a company's own domain: nothing to research there.
    if (!domain || exclude.has(domain) || seen.has(domain) || isDirectoryDomain(domain)) continue
    seen.add(domain)
    out.push({...c, domain, website: c.website ?? (host === domain ? undefined : `https://${host}/`)})
  }

  return out
}

/**
 * Domains a run must not deliver: those selected by earlier runs that
 * completed (unless --include-delivered), and the run's --exclude list.
 */
export async function suppressedDomains(db: Executor, run: {id: number; options: unknown}): Promise<Set<string>> {
  const excluded = await db.selectFrom('run_exclusions').select('domain').where('run_id', '=', run.id).execute()
  const delivered = runOptions(run as RunRow).includeDelivered ? [] : await deliveredDomains(db, run.id)
  // Keyed again: rows written before keys were registrable domains, and --exclude lists stored as typed.
  return new Set([...delivered, ...excluded.map((r) => r.domain)].map(companyKey))
}

/** Domains selected (and so exported) by completed runs other than `exceptRunId`. */
export async function deliveredDomains(db: Executor, exceptRunId?: number): Promise<string[]> {
  let q = db
    .selectFrom('companies as c')
    .innerJoin('runs as r', 'r.id', 'c.run_id')
    .select('c.domain')
    .distinct()
    .where('r.status', '=', 'completed')
    .where('c.status', '=', 'selected')
  if (exceptRunId !== undefined) q = q.where('c.run_id', '<>', exceptRunId)
  return (await q.execute()).map((r) => r.domain)
}
