import type {z} from 'zod'

import type {CompanyRow} from '../../db/schema.js'
import {cacheKey, DEFAULT_CACHE_TTL_MS, metered, readCache, writeCache} from '../cache.js'
import {companyKey, normalizeDomain} from '../domains.js'
import {line, MAX, url} from '../normalize.js'
import type {AgentRequest, Evidence, SiteChecks} from '../provider.js'
import {runOptions} from '../run-options.js'
import {toCandidate} from './research.js'
import {type CompanyFact, lazySchema, pct, type RunPayload, type Stage} from './stage.js'

type Payload = RunPayload & {companyId: number}

/**
 * What the model returns: the company's main phone number and its LinkedIn company page, each its value and the page
 * and quote that show it (null when nothing showed it).
 */
const enrichOutput = (zod: typeof z) => {
  const found = zod.object({value: zod.string().max(MAX.url).nullish(), url: zod.string().max(MAX.url).nullish(), quote: zod.string().max(MAX.quote).nullish()})
  return zod.object({phone: found.default({}), linkedin_company: found.default({})})
}
const enrichSchema = lazySchema(enrichOutput)
type Answer = z.infer<ReturnType<typeof enrichOutput>>

/** What rvx decided about one of them: verified (its checks found it where it should be), or unknown, and why. */
export interface Enriched {
  value: string | null
  verified: boolean
  /** What the checks made of the model's word (for people). */
  note: string
  evidence: Evidence[]
}

/** The fact stored per company (company_facts.value; the evidence goes alongside). */
interface Facts {
  phone: Omit<Enriched, 'evidence'>
  linkedin_company: Omit<Enriched, 'evidence'>
}

/** Pages of the company's own site read to find the phone on, at most. */
const MAX_PAGES = 5

/** The agent call that finds a company's phone and LinkedIn page. */
export async function enrichRequest(input: {company: {name: string; domain: string; website?: string | null}}): Promise<AgentRequest<Answer>> {
  const c = input.company
  return {
    stage: 'enrich',
    prompt: `Find the main phone number of ${c.name} (${c.website ?? c.domain}) and its LinkedIn company page (a linkedin.com/company/... URL, not a person's profile or a post).
For each, give the value, the exact URL of a page you read that shows it, and a short quote from that page. The phone should be on the company's own site. null when nothing you read shows it; never guess.
Return {"phone": {"value", "url", "quote"}, "linkedin_company": {"value", "url", "quote"}}.`,
    schema: await enrichSchema(),
    tools: ['search_web', 'fetch_page'],
    input,
  }
}

interface Output {
  phone: Enriched
  linkedin: Enriched
  /** A paid answer, cached with the completion; absent for one from the cache. */
  cache?: {key: string; provider: string; answer: Answer; costUsd: number}
  fromCache: boolean
}

/**
 * Enrich (opt-in, --enrich): for each selected company, its main phone
 * number and its LinkedIn company page, each with the page and quote that
 * show it. rvx's checks overrule the model: the phone must appear on the
 * company's own pages, the LinkedIn URL must be a company page; else it is
 * `unknown`, with why.
 */
export const enrich: Stage<Payload, {company: CompanyRow}, Output> = {
  name: 'enrich',
  kind: 'enrich',
  summary: "find each selected company's main phone and LinkedIn company page, with evidence",
  trigger: 'selected',
  optIn: {summary: "Also find each selected company's main phone number and LinkedIn company page, each checked, with the page that shows it."},
  maxAttempts: 3,
  cached: true,

  async prepare({db, payload}) {
    const company = await db.selectFrom('companies').selectAll().where('id', '=', payload.companyId).executeTakeFirst()
    return company && company.status === 'selected' ? {company} : null
  },

  async ask(provider, {company}, ctx) {
    const {db, run} = ctx.prepared
    const options = runOptions(run)
    const key = cacheKey('enrich', {domain: company.domain, provider: provider.identity})
    const hit = options.fresh ? null : await readCache<Answer>(db, 'enrich', key, options.cacheTtlMs ?? DEFAULT_CACHE_TTL_MS)
    let answer: Answer
    let cache: Output['cache']
    if (hit) {
      // Written by this stage, but read as any stored answer is: what does not fit is nothing found.
      const cached = (await enrichSchema()).safeParse(hit.value)
      answer = cached.success ? cached.data : {phone: {}, linkedin_company: {}}
    } else {
      const paid = metered(ctx)
      answer = (await provider.agent(await enrichRequest({company: toCandidate(company)}), paid)).value
      cache = {key, provider: provider.identity, answer, costUsd: paid.spentUsd()}
    }

    return {
      phone: await checkPhone(provider.checks, company, answer.phone, ctx.signal),
      linkedin: checkLinkedIn(provider.checks, answer.linkedin_company),
      cache,
      fromCache: Boolean(hit),
    }
  },

  result: ({phone, linkedin, fromCache}) => ({phone: phone.verified, linkedin: linkedin.verified, ...(fromCache ? {fromCache} : {})}),

  async write({trx, saveFact}, {company}, {phone, linkedin, cache}) {
    if (cache) await writeCache(trx, 'enrich', cache.key, {domain: company.domain, provider: cache.provider, value: cache.answer, costUsd: cache.costUsd})
    const bare = ({evidence: _, ...rest}: Enriched) => rest
    await saveFact(company.id, {
      value: {phone: bare(phone), linkedin_company: bare(linkedin)} satisfies Facts,
      evidence: {phone: phone.evidence, linkedin_company: linkedin.evidence},
    })
  },

  describe: (p, inFlight) => `${p.companies.selected} selected${inFlight > 0 ? `, ${inFlight} enriching` : ''}`,
  // Selected companies searched, against the quantity.
  percent: ({done, run}) => pct(done, run.quantity),

  columns: [
    {
      name: 'phone',
      label: 'phone',
      value: (f) => found(f, 'phone').value ?? 'unknown',
      evidence: (f) => evidenceOf(f, 'phone'),
      note: (f) => unknownWhy(f, 'phone'),
    },
    {name: 'phone_evidence', value: (f) => evidenceText(f, 'phone')},
    {
      name: 'linkedin_company',
      label: 'LinkedIn company page',
      value: (f) => found(f, 'linkedin_company').value ?? 'unknown',
      evidence: (f) => evidenceOf(f, 'linkedin_company'),
      note: (f) => unknownWhy(f, 'linkedin_company'),
    },
    {name: 'linkedin_company_evidence', value: (f) => evidenceText(f, 'linkedin_company')},
  ],
}

/** What was stored for one of the two, read defensively (a fact written by another version shows as unknown). */
function found(fact: CompanyFact | undefined, key: keyof Facts): {value: string | null; note: string} {
  const v = (fact?.value as Partial<Facts> | undefined)?.[key]
  return {value: v?.verified && typeof v.value === 'string' ? v.value : null, note: typeof v?.note === 'string' ? v.note : 'not searched'}
}

function evidenceOf(fact: CompanyFact | undefined, key: keyof Facts): Evidence[] {
  const list = (fact?.evidence as Partial<Record<keyof Facts, unknown>> | undefined)?.[key]
  return Array.isArray(list) ? list.filter((e): e is Evidence => typeof e?.url === 'string' && typeof e?.quote === 'string') : []
}

/** Why it is unknown (null when it was verified). */
function unknownWhy(fact: CompanyFact | undefined, key: keyof Facts): string | null {
  const f = found(fact, key)
  return f.value === null ? f.note : null
}

/** The export's `<key>_evidence`: `url "quote"` per page, or why it is unknown. */
function evidenceText(fact: CompanyFact | undefined, key: keyof Facts): string {
  const evidence = evidenceOf(fact, key)
  if (found(fact, key).value === null || evidence.length === 0) return found(fact, key).note
  return evidence.map((e) => `${e.url} "${e.quote}"`).join('; ')
}

/** The digits of a phone number ("(512) 555-0142" -> 5125550142), or null when it has too few or too many to be one. */
function digitsOf(text: string): string | null {
  const digits = text.replace(/\D/g, '')
  return digits.length >= 7 && digits.length <= 15 ? digits : null
}

/**
 * Where a page writes this number, however it punctuates it ("(512) 555-0142", "512.555.0142"), with or without its
 * country code: the line it is on, or null.
 */
function shownOn(text: string, digits: string): string | null {
  // The national number (its last 10 digits; a trunk 0 before it allowed), digit by digit with separators between,
  // and no digit either side.
  const national = digits.length > 10 ? digits.slice(-10) : digits
  const found = new RegExp(`(?<!\\d)(?:0[\\s().-]{0,3})?${[...national].join('[\\s().-]{0,3}')}(?!\\d)`).exec(text)
  if (!found) return null
  const start = text.lastIndexOf('\n', found.index) + 1
  const end = text.indexOf('\n', found.index + found[0].length)
  return text.slice(start, end === -1 ? undefined : end).trim()
}

/**
 * The phone is rvx's when it appears on one of the company's own pages:
 * those the model cited (when on the company's domain) and those the site
 * check read; the page where it appears and the text there are the evidence.
 */
async function checkPhone(checks: SiteChecks, company: CompanyRow, said: Answer['phone'], signal: AbortSignal): Promise<Enriched> {
  const value = line(said.value, MAX.phone)
  const digits = value ? digitsOf(value) : null
  if (!value) return unknown('the model found no phone number')
  if (!digits) return unknown(`not a phone number: the model's "${value}"`)
  const own = new Set([company.domain, ...((company.checks as {ownDomains?: string[]}).ownDomains ?? [])].map((d) => companyKey(normalizeDomain(d))))
  const isOwn = (page: string) => own.has(companyKey(normalizeDomain(new URL(page).hostname)))
  const cited = url(said.url)
  const pages = [
    ...new Set([...(cited && isOwn(cited) ? [cited] : []), ...((company.checks as {pages?: string[]}).pages ?? []).filter((p) => url(p) && isOwn(p))]),
  ]
  for (const page of pages.slice(0, MAX_PAGES)) {
    let text: string
    try {
      const read = await checks.readPage(page, signal)
      if (read.status >= 400 || !isOwn(read.url)) continue
      text = read.text
    } catch {
      // a page that does not answer shows nothing either way
      continue
    }

    const shown = shownOn(text, digits)
    if (shown) return {value, verified: true, note: 'on its own site', evidence: [{url: page, quote: line(shown, MAX.quote)}]}
  }

  return unknown(
    pages.length === 0
      ? `not checked: no page of its own site to read for the model's ${value}${cited ? ` (it cited ${cited})` : ''}`
      : `not on its own pages: the model's ${value} appears on none of those read (${pages.slice(0, MAX_PAGES).join(', ')})`,
  )
}

/** The LinkedIn URL is rvx's when it is a company page (linkedin.com/company/<name>), not a person's profile or a post. */
function checkLinkedIn(checks: SiteChecks, said: Answer['linkedin_company']): Enriched {
  const raw = line(said.value, MAX.url)
  if (!raw) return unknown('the model found no LinkedIn company page')
  const link = url(/^https?:\/\//i.test(raw) ? raw : `https://${raw}`)
  if (!link) return unknown(`"${raw}" is not a URL`)
  const {hostname, pathname} = new URL(link)
  const host = hostname.toLowerCase()
  if (!checks.linkedinHosts.some((h) => host === h || host.endsWith(`.${h}`))) return unknown(`${link} is not on LinkedIn`)
  const page = /^\/company\/([^/?#]+)\/?$/.exec(pathname)
  if (!page) {
    const what = pathname.startsWith('/in/') ? "a person's profile" : /^\/(posts|feed|pulse)\//.test(pathname) ? 'a post' : 'not a company page'
    return unknown(`${link} is ${what}, not a company page`)
  }

  const value = `https://${host}/company/${page[1]}`
  const cited = url(said.url)
  const quote = line(said.quote, MAX.quote)
  return {value, verified: true, note: 'a LinkedIn company page', evidence: [{url: cited ?? value, quote: quote || value}]}
}

const unknown = (note: string): Enriched => ({value: null, verified: false, note, evidence: []})
