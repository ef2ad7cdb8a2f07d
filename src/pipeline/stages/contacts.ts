import type {z} from 'zod'

import {sql} from '../../db/kysely.js'
import type {CompanyRow} from '../../db/schema.js'
import type {AgentRequest, CallContext, CandidateCompany, CheckedContact, EmailStatus, FoundContact, ResearchProvider} from '../provider.js'
import {cacheKey, DEFAULT_CACHE_TTL_MS, metered, readCache, writeCache} from '../cache.js'
import {normalizeContacts} from '../normalize.js'
import {DROP} from '../drops.js'
import {DEFAULT_RUN_OPTIONS, runOptions} from '../run-options.js'
import {toCandidate} from './research.js'
import {lazySchema, pct, type RunPayload, type Stage} from './stage.js'

type Payload = RunPayload & {companyId: number}

type Checked = FoundContact & CheckedContact

/**
 * The usable-contact rule: a contact counts toward contacts_min unless its email was found bad (no mail server, or not
 * a real address of the company). The predicate (`counts`) and the SQL (`usableContact`) are both built from this list.
 */
export const UNUSABLE_EMAIL_STATUSES: readonly EmailStatus[] = ['no_mx', 'invalid']

export const counts = (c: {emailStatus: EmailStatus | null}) => c.emailStatus === null || !UNUSABLE_EMAIL_STATUSES.includes(c.emailStatus)

/** SQL: a contact (table alias `k`) that counts toward contacts_min, by the same rule as `counts`. */
export function usableContact(alias: string) {
  const status = sql.ref(`${alias}.email_status`)
  return sql`(${status} is null or ${status} not in (${sql.join(UNUSABLE_EMAIL_STATUSES)}))`
}

/** What the model returns (its shape only: pipeline/normalize.ts bounds the values). */
const contactsOutput = (zod: typeof z) =>
  zod.object({
    contacts: zod.array(
      zod.object({
        full_name: zod.string().min(1),
        title: zod.string().min(1),
        tier: zod.number().int().min(1).max(4),
        email: zod.string().nullish(),
        phone: zod.string().nullish(),
        linkedin_url: zod.string().nullish(),
        confidence: zod.enum(['low', 'medium', 'high']),
        sources: zod.array(zod.string()).default([]),
      }),
    ),
  })
const contactsSchema = lazySchema(contactsOutput)

/** The agent call that finds a company's decision makers. */
export async function contactsRequest(input: {
  company: CandidateCompany
  min: number
  max: number
}): Promise<AgentRequest<z.infer<ReturnType<typeof contactsOutput>>>> {
  const c = input.company
  return {
    stage: 'contacts',
    prompt: `Find ${input.min}-${input.max} decision makers at ${c.name} (${c.website ?? c.domain}).
Tier 1: owner, co-owner, broker/owner, managing or designated broker, president, principal, CEO, COO, managing partner. Tier 2: director of property management, VP operations, portfolio manager, associate broker. Tier 3: operations manager. Tier 4 (leasing, admin, maintenance) only if nothing better exists.
No generic inboxes (info@, office@); an email on a PMS vendor's domain is not the company's.
Return {"contacts": [{"full_name", "title", "tier": 1-4, "email", "phone", "linkedin_url", "confidence", "sources"}]}.`,
    schema: await contactsSchema(),
    tools: ['search_web', 'fetch_page', 'detect_pms'],
    input,
  }
}

/** The people the model named (their emails and LinkedIn URLs are checked by the stage, whatever it says). */
export async function askContacts(
  provider: ResearchProvider,
  input: {company: CandidateCompany; min: number; max: number},
  ctx: CallContext,
): Promise<FoundContact[]> {
  const {value} = await provider.agent(await contactsRequest(input), ctx)
  return value.contacts.map((p) => ({
    fullName: p.full_name,
    title: p.title,
    tier: p.tier as 1 | 2 | 3 | 4,
    email: p.email ?? null,
    phone: p.phone ?? null,
    linkedinUrl: p.linkedin_url ?? null,
    confidence: p.confidence,
    sources: p.sources,
  }))
}

/** The people checked, whether they came from the cache, and (for a paid search) what goes into the cache with the completion. */
type Output = {people: Checked[]; fromCache: boolean; cache?: {key: string; provider: string; found: FoundContact[]; costUsd: number}}

/** Contacts: find the decision makers of one selected company, each email and LinkedIn URL checked. */
export const contacts: Stage<Payload, {company: CompanyRow; min: number; max: number}, Output> = {
  name: 'contacts',
  kind: 'contact',
  summary: 'find 1-3 decision makers at each selected company',
  trigger: 'selected',
  // The run's contactAttempts is the one setting (contact tasks are enqueued with it); this is its default.
  maxAttempts: DEFAULT_RUN_OPTIONS.contactAttempts,
  attemptsFor: (options) => options.contactAttempts,
  cached: true,

  async prepare({db, run, payload}) {
    const company = await db.selectFrom('companies').selectAll().where('id', '=', payload.companyId).executeTakeFirst()
    return company && company.status === 'selected' ? {company, min: run.contacts_min, max: run.contacts_max} : null
  },

  async ask(provider, {company, min, max}, ctx) {
    // Every email and LinkedIn URL checked (syntax, shared inboxes, the company's own domain, MX records): a model's word is not enough.
    const ownDomains = (company.checks as {ownDomains?: string[]}).ownDomains ?? [company.domain]
    const check = async (found: FoundContact[]) => {
      const checked: Checked[] = []
      for (const person of found) checked.push({...person, ...(await provider.checks.checkContact(person, ownDomains, ctx.signal))})
      return [...checked.filter(counts), ...checked.filter((c) => !counts(c))].slice(0, max)
    }

    // People found for this domain before are reused (checked again) when they are enough; else the search is paid for again.
    const {db, run} = ctx.prepared
    const options = runOptions(run)
    const key = cacheKey('contacts', {domain: company.domain, provider: provider.identity, extra: String(max)})
    const hit = options.fresh ? null : await readCache<FoundContact[]>(db, 'contacts', key, options.cacheTtlMs ?? DEFAULT_CACHE_TTL_MS)
    if (hit) {
      const people = await check(normalizeContacts(hit.value))
      if (people.filter(counts).length >= min) return {people, fromCache: true}
    }

    const paid = metered(ctx)
    // Too few found: search again at once, as many times as the task has attempts left (a search that came back short
    // is not a failure to back off from, and the run waits for it), keeping everyone either search found.
    let found: FoundContact[] = []
    let people: Checked[] = []
    for (let search = ctx.prepared.attempt; ; search++) {
      found = dedupeContacts([...found, ...normalizeContacts(await askContacts(provider, {company: toCandidate(company), min, max}, paid))])
      people = await check(found)
      if (people.filter(counts).length >= min || search >= ctx.prepared.maxAttempts) break
      ctx.signal.throwIfAborted()
    }

    return {people, fromCache: false, cache: {key, provider: provider.identity, found, costUsd: paid.spentUsd()}}
  },

  result: ({people, fromCache}) => ({found: people.length, usable: people.filter(counts).length, ...(fromCache ? {fromCache} : {})}),

  async write({trx, run, provider}, {company}, {people, fromCache, cache}) {
    // A paid search is cached with the completion (a result fenced out is not kept).
    if (cache) await writeCache(trx, 'contacts', cache.key, {domain: company.domain, provider: cache.provider, value: cache.found, costUsd: cache.costUsd})
    if (people.length === 0) return
    await trx
      .insertInto('contacts')
      .values(
        people.map((p) => ({
          run_id: run.id,
          company_id: company.id,
          full_name: p.fullName,
          title: p.title,
          tier: p.tier,
          email: p.email,
          email_status: p.emailStatus,
          phone: p.phone ?? null,
          linkedin_url: p.linkedinUrl,
          confidence: p.confidence,
          sources: JSON.stringify(p.sources),
          simulated: provider.simulated,
          from_cache: fromCache,
        })),
      )
      .onConflict((oc) => oc.doNothing())
      .execute()
  },

  describe: (p, inFlight) => `${p.contacts} for ${p.companies.selected}/${p.quantity} selected${inFlight > 0 ? `, ${inFlight} searching` : ''}`,

  // Selected companies with their decision makers, against the quantity.
  percent: ({done, run}) => pct(done, run.quantity),
  selectedDone: () => sql`(select count(*) from contacts k where k.company_id = s.id and ${usableContact('k')}) >= r.contacts_min`,
  requires: {
    met: (run) => sql`(select count(*) from contacts k where k.company_id = c.id and ${usableContact('k')}) >= ${run.contacts_min}`,
    reason: (run) => `fewer than ${run.contacts_min} decision makers found`,
    // Decision makers found, but not enough whose email takes mail; or too few found at all.
    key: () =>
      sql`case when exists (select 1 from contacts k where k.company_id = c.id and not ${usableContact('k')}) then ${DROP.noDeliverableEmail} else ${DROP.tooFewContacts} end`,
  },

  /**
   * The rule of the selected companies' stages (contacts leads them): when
   * every one of them is done, companies short of what a stage requires (here:
   * decision makers) give their place to the next best (qualified ones, then
   * candidates whose research was stopped at the target, then a new discovery
   * round); the run completes when the selection is full, else it asks for a
   * decision.
   */
  async advance(c) {
    if (c.pendingFor('selected') > 0) return 'running'
    await c.dropShortOfRequirements()
    const after = await c.recount()
    if (after.selected >= c.run.quantity) return c.complete()
    if (after.qualified > 0) return c.select()
    if (after.candidate > 0) {
      await c.reopenCandidates(Math.ceil((c.run.quantity - after.selected) * c.options.oversample))
      return 'running'
    }

    if (await c.discoverMore()) return 'running'
    return c.needsDecision(
      `only ${after.selected} of ${c.run.quantity} companies qualified and have at least ${c.run.contacts_min} decision makers, and no candidates are left. Accept what there is (rvx runs accept ${c.run.id}), widen the criteria and resume (rvx runs resume ${c.run.id} --criteria ...), or cancel.`,
    )
  },
}

/** One person once: by name, email or LinkedIn, keeping the best tier. */
function dedupeContacts<T extends {fullName: string; email?: string | null; linkedinUrl?: string | null; tier: number}>(people: T[]): T[] {
  const keys = new Set<string>()
  const out: T[] = []
  for (const p of [...people].sort((a, b) => a.tier - b.tier)) {
    const k = [
      `n:${p.fullName.trim().toLowerCase()}`,
      p.email ? `e:${p.email.toLowerCase()}` : '',
      p.linkedinUrl ? `l:${p.linkedinUrl.toLowerCase()}` : '',
    ].filter(Boolean)
    if (k.some((x) => keys.has(x))) continue
    for (const x of k) keys.add(x)
    out.push(p)
  }

  return out
}
