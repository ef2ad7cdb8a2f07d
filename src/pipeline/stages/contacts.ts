import type {CompanyRow} from '../../db/schema.js'
import type {CheckedContact, EmailStatus, FoundContact} from '../provider.js'
import {toCandidate} from './research.js'
import type {RunPayload, Stage} from './stage.js'

type Payload = RunPayload & {companyId: number}

type Checked = FoundContact & CheckedContact

/** A contact counts toward contacts_min unless its email was found bad (no mail server, or not a real address of the company). */
export const counts = (c: {emailStatus: EmailStatus | null}) => c.emailStatus !== 'no_mx' && c.emailStatus !== 'invalid'

/** Contacts: find the decision makers of one selected company, each email and LinkedIn URL checked. */
export const contacts: Stage<Payload, {company: CompanyRow; min: number; max: number}, Checked[]> = {
  name: 'contacts',
  kind: 'contact',
  summary: 'find 1-3 decision makers at each selected company',
  maxAttempts: 2,

  async prepare({db, run, payload}) {
    const company = await db.selectFrom('companies').selectAll().where('id', '=', payload.companyId).executeTakeFirst()
    return company && company.status === 'selected' ? {company, min: run.contacts_min, max: run.contacts_max} : null
  },

  async ask(provider, {company, min, max}, ctx) {
    const found = dedupeContacts(await provider.findContacts({company: toCandidate(company), min, max}, ctx))
    // Every email and LinkedIn URL checked (syntax, shared inboxes, the company's own domain, MX records): a model's word is not enough.
    const ownDomains = (company.checks as {ownDomains?: string[]}).ownDomains ?? [company.domain]
    const checked: Checked[] = []
    for (const person of found) checked.push({...person, ...(await provider.checks.checkContact(person, ownDomains, ctx.signal))})
    const people = [...checked.filter(counts), ...checked.filter((c) => !counts(c))].slice(0, max)
    const usable = people.filter(counts).length
    // Try again later (another attempt, with backoff); the last attempt settles for what it has.
    if (usable < min && ctx.prepared.attempt < ctx.prepared.maxAttempts) {
      throw new Error(`found ${usable} of at least ${min} decision makers with a usable email at ${company.domain}`)
    }

    return people
  },

  result: (people) => ({found: people.length, usable: people.filter(counts).length}),

  async write({trx, run, provider}, {company}, people) {
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
        })),
      )
      .onConflict((oc) => oc.doNothing())
      .execute()
  },

  describe: (p, inFlight) => `${p.contacts} for ${p.companies.selected}/${p.quantity} selected${inFlight > 0 ? `, ${inFlight} searching` : ''}`,

  /**
   * When every contact search is done: companies short of decision makers
   * give their place to the next best (qualified ones, then candidates whose
   * research was stopped at the target, then a new discovery round); the run
   * completes when the selection is full, else it asks for a decision.
   */
  async advance(c) {
    if (c.pending.contacts > 0) return 'running'
    await c.dropShortOfContacts()
    const after = await c.recount()
    if (after.selected >= c.run.quantity) return c.complete()
    if (after.qualified > 0) return c.select()
    if (after.candidate > 0) {
      await c.reopenResearch(Math.ceil((c.run.quantity - after.selected) * c.options.oversample))
      await c.setStage('research')
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
