import type {Criteria} from '../pipeline/criteria.js'
import type {
  CallContext,
  CandidateCompany,
  CheckedContact,
  CompanyResearch,
  Evidence,
  FoundContact,
  ModelVerdict,
  ResearchProvider,
  SiteChecks,
  SiteFacts,
} from '../pipeline/provider.js'
import {sleep} from '../runtime/backoff.js'
import {SnoozeError, TransientError} from '../runtime/errors.js'
import {WebChecks} from './checks.js'
import {costUsd} from './prices.js'
import {DEFAULT_SIMULATION, type SimulationOptions} from './simulation-options.js'
import {SimulatedWeb} from './simulated/web.js'
import {hash32, pick, rng, truthOf, worldFor} from './simulated/world.js'

import {SIMULATED_MODEL} from './models.js'

export {SIMULATED_MODEL} from './models.js'
export {DEFAULT_SIMULATION, parseFaults, parseLatency, type SimulationOptions, simulationOptions} from './simulation-options.js'

const FIRST = [
  'Maria',
  'James',
  'Linda',
  'Robert',
  'Patricia',
  'Michael',
  'Jennifer',
  'David',
  'Elizabeth',
  'Carlos',
  'Aisha',
  'Wei',
  'Sofia',
  'Daniel',
  'Grace',
  'Omar',
]
const LAST = [
  'Garcia',
  'Smith',
  'Nguyen',
  'Johnson',
  'Patel',
  'Williams',
  'Brown',
  'Martinez',
  'Lee',
  'Davis',
  'Lopez',
  'Wilson',
  'Anderson',
  'Thomas',
  'Moore',
  'Clark',
]
const TITLES: Array<[string, 1 | 2 | 3 | 4]> = [
  ['Owner', 1],
  ['Broker/Owner', 1],
  ['President', 1],
  ['CEO', 1],
  ['Managing Partner', 1],
  ['Director of Property Management', 2],
  ['VP Operations', 2],
  ['Portfolio Manager', 2],
  ['Operations Manager', 3],
  ['Leasing Agent', 4],
]

/**
 * The simulated world's checks: rvx's own checks (WebChecks) reading the
 * simulated web and DNS. A company's truth is derived from the claims its row
 * carries, which the site check is given.
 */
class SimulatedChecks implements SiteChecks {
  private readonly claims = new Map<string, {state?: string | null; city?: string | null; pms?: string | null}>()
  private readonly checks: WebChecks

  constructor(seed: number) {
    this.checks = new WebChecks(new SimulatedWeb(seed, (domain) => this.claims.get(domain)), {linkedinHosts: ['linkedin.example']})
  }

  checkSite(company: CandidateCompany, signal: AbortSignal): Promise<SiteFacts> {
    this.claims.set(company.domain, {state: company.state, city: company.city, pms: company.pms})
    return this.checks.checkSite(company, signal)
  }

  checkContact(contact: FoundContact, ownDomains: string[], signal: AbortSignal): Promise<CheckedContact> {
    return this.checks.checkContact(contact, ownDomains, signal)
  }
}

/**
 * An offline, deterministic world of property-management companies, for
 * demos, load and chaos tests. For a given seed and criteria the same
 * companies exist, with the same facts and contacts; the supply is finite, so
 * shortfalls happen. Everything it makes is marked simulated and lives under
 * the reserved .example domain. Latency and faults are injected on request.
 */
export class SimulatedProvider implements ResearchProvider {
  readonly name = 'simulated'
  readonly simulated = true
  readonly checks: SiteChecks
  readonly models = [SIMULATED_MODEL]
  readonly identity: string

  constructor(private readonly options: SimulationOptions = DEFAULT_SIMULATION) {
    this.checks = new SimulatedChecks(options.seed)
    this.identity = `simulated ${SIMULATED_MODEL} seed ${options.seed}`
  }

  async discover(input: {criteria: Criteria; want: number; exclude: string[]; round: number}, ctx: CallContext): Promise<CandidateCompany[]> {
    await this.call(ctx, 900, 300)
    const exclude = new Set(input.exclude.map((d) => d.toLowerCase()))
    return worldFor(this.options.seed, input.criteria, this.options.supply)
      .filter((c) => !exclude.has(c.domain))
      .slice(0, Math.max(0, input.want))
  }

  /**
   * A model that reads the company's pages and mostly reports what they say,
   * but lies as models do: it claims the criteria's PMS where the portal shows
   * another, the criteria's location where the address says otherwise, and
   * cites pages it never read. The pipeline's checks must catch every one.
   */
  async research(input: {criteria: Criteria; company: CandidateCompany}, ctx: CallContext): Promise<CompanyResearch> {
    await this.call(ctx, 2500, 600)
    const {criteria, company} = input
    const t = truthOf(this.options.seed, company)
    const r = rng(hash32(`${this.options.seed}:model:${company.domain}`))
    const home = `https://${company.domain}/`
    const about = `https://${company.domain}/about`
    const contact = `https://${company.domain}/contact`
    const seen = t.answers ? [home, about, contact] : []
    const said = (verdict: ModelVerdict['verdict'], url: string, quote: string): ModelVerdict => ({
      verdict,
      evidence: verdict === 'unknown' ? [] : [{url, quote}],
    })
    const verdicts: CompanyResearch['verdicts'] = {}
    if (criteria.pms) {
      const honest = t.shows === 'none' || !t.answers ? 'unknown' : t.pms === criteria.pms ? 'match' : 'mismatch'
      verdicts.pms =
        r() < 0.3 ? said('match', home, `Residents pay rent online with ${criteria.pms}`) : said(honest, home, `Pay Rent / Resident Login (${t.pms})`)
    }

    const located = t.answers && t.address !== 'none'
    const where = `${t.street}, ${t.city}, ${t.state} ${t.zip}`
    if (criteria.state)
      verdicts.state = located ? said(r() < 0.15 ? 'match' : t.state === criteria.state ? 'match' : 'mismatch', contact, where) : said('unknown', contact, '')
    if (criteria.city)
      verdicts.city = located ? said(t.city.toLowerCase() === criteria.city.toLowerCase() ? 'match' : 'mismatch', contact, where) : said('unknown', contact, '')
    if (criteria.units_min !== undefined || criteria.units_max !== undefined) {
      const inRange = (criteria.units_min === undefined || t.units >= criteria.units_min) && (criteria.units_max === undefined || t.units <= criteria.units_max)
      verdicts.units = said(t.answers ? (inRange ? 'match' : 'mismatch') : 'unknown', about, `about ${t.units} units`)
    }

    if (criteria.natural_request)
      verdicts.natural_request = said(t.residential ? 'match' : 'mismatch', home, t.residential ? 'Single-family homes' : 'Homeowner associations')
    // Now and then a verdict cites a page the model never read.
    const cited = Object.values(verdicts).filter((v) => v.evidence.length > 0)
    if (cited.length > 0 && r() < 0.1) cited[0].evidence = [{url: `https://directory.example/${company.domain}`, quote: 'as listed'} satisfies Evidence]
    return {
      verdicts,
      portfolio: t.residential ? 'residential' : 'hoa_only',
      unitsEstimate: t.answers ? t.units : null,
      employeesEstimate: t.answers ? t.employees : null,
      confidence: 'medium',
      reasons: [`about ${t.units} units, ${t.employees} employees`],
      sources: seen,
      pms: t.pms,
      city: t.city,
      state: t.state,
      seen,
    }
  }

  async findContacts(input: {company: CandidateCompany; min: number; max: number}, ctx: CallContext): Promise<FoundContact[]> {
    await this.call(ctx, 1800, 400)
    // Contacts depend on seed and domain only, so any worker process finds the same people.
    const people = this.contactsFor(input.company, rng(hash32(`${this.options.seed}:${input.company.domain}`)))
    return people.sort((a, b) => a.tier - b.tier).slice(0, input.max)
  }

  private contactsFor(c: CandidateCompany, r: () => number): FoundContact[] {
    // A few companies have nobody findable: the pipeline must cope.
    const count = r() < 0.03 ? 0 : 1 + Math.floor(r() * 5)
    const people: FoundContact[] = []
    const names = new Set<string>()
    for (let i = 0; i < count; i++) {
      const fullName = `${pick(r, FIRST)} ${pick(r, LAST)}`
      if (names.has(fullName)) continue
      names.add(fullName)
      const [title, tier] = i === 0 ? pick(r, TITLES.slice(0, 5)) : pick(r, TITLES)
      const local = fullName.toLowerCase().replace(/[^a-z]+/g, '.')
      // Models return shared inboxes and addresses elsewhere too: the checks drop those.
      const mail = r()
      const email = mail < 0.7 ? `${local}@${c.domain}` : mail < 0.78 ? `office@${c.domain}` : mail < 0.83 ? `${local}@mail-${c.domain}` : null
      people.push({
        fullName,
        title,
        tier,
        email,
        phone: r() < 0.5 ? `+1-555-${String(Math.floor(r() * 9000) + 1000)}` : null,
        linkedinUrl: r() < 0.7 ? `https://linkedin.example/in/${local.replace(/\./g, '-')}-${c.domain.split('.')[0]}` : null,
        confidence: tier <= 2 ? 'high' : 'medium',
        sources: [`https://${c.domain}/team`],
      })
    }

    return people
  }

  /** One simulated model call: admitted like a real one (its budget; the simulated world has no quota to pace), its latency, usage, cost and injected faults. */
  private async call(ctx: CallContext, inputTokens: number, outputTokens: number): Promise<void> {
    const model = SIMULATED_MODEL
    const admission = await ctx.admit({quota: null, inputTokens, outputTokens, maxUsd: costUsd(model, inputTokens, 0, outputTokens)})
    const [min, max] = this.options.latencyMs
    const started = Date.now()
    try {
      if (max > 0) await sleep(min + Math.random() * (max - min), ctx.signal)
      if (ctx.signal.aborted) throw new Error('aborted')
    } catch (error) {
      await admission.settle({status: 0, costUsd: 0})
      throw error
    }

    const f = this.options.faults
    const roll = Math.random()
    const usage = {provider: 'simulated', model, inputTokens, outputTokens, cachedTokens: 0, latencyMs: Date.now() - started, waitedMs: admission.waitedMs}
    const paid = {...usage, costUsd: costUsd(model, inputTokens, 0, outputTokens)}
    if (roll < f.crash) {
      // The worker process dies mid-task, as if the OOM killer came by.
      process.kill(process.pid, 'SIGKILL')
      await sleep(60_000)
    }

    if (roll < f.crash + f.transient) {
      ctx.record({...paid, outcome: 'error'})
      await admission.settle({status: 503, costUsd: paid.costUsd})
      throw new TransientError('simulated upstream error (HTTP 503)')
    }

    if (roll < f.crash + f.transient + f.rate_limit) {
      ctx.record({...usage, outputTokens: 0, costUsd: 0, outcome: 'rate_limited'})
      await admission.settle({status: 429, costUsd: 0})
      throw new SnoozeError('simulated rate limit (HTTP 429, Retry-After: 1)', 1000)
    }

    // Paid: recorded before settling, which writes to the database and may fail.
    const malformed = roll < f.crash + f.transient + f.rate_limit + f.malformed
    ctx.record({...paid, outcome: malformed ? 'malformed' : 'ok'})
    await admission.settle({status: 200, inputTokens, outputTokens, costUsd: paid.costUsd})
    if (malformed) throw new Error('simulated malformed model output (failed schema validation after repair)')
  }
}
