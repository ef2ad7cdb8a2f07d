import type {Criteria} from '../../pipeline/criteria.js'
import type {CandidateCompany} from '../../pipeline/provider.js'
import {hash32, pick, presenceOf, rng, truthOf, worldFor} from './world.js'

/**
 * What the simulated world answers each stage's agent call, in the shape of
 * the stage's schema (validated like a model's answer), with the tokens such
 * a call would bill. A stage the world does not answer fails its calls.
 */
export interface SimulatedAnswer {
  /** Tokens in and out of one call. */
  tokens: [number, number]
  answer(input: any, world: {seed: number; supply?: number}): {value: unknown; seen?: string[]}
}

export const SIMULATED_ANSWERS: Record<string, SimulatedAnswer> = {
  discovery: {
    tokens: [900, 300],
    answer(input: {criteria: Criteria; want: number; exclude: string[]}, {seed, supply}) {
      const exclude = new Set(input.exclude.map((d) => d.toLowerCase()))
      const companies = worldFor(seed, input.criteria, supply)
        .filter((c) => !exclude.has(c.domain))
        .slice(0, Math.max(0, input.want))
      return {
        value: {
          companies: companies.map((c) => ({name: c.name, domain: c.domain, website: c.website, city: c.city, state: c.state, pms: c.pms, sources: c.sources})),
        },
      }
    },
  },

  /**
   * A model that reads the company's pages and mostly reports what they say,
   * but lies as models do: it claims the criteria's PMS where the portal shows
   * another, the criteria's location where the address says otherwise, and
   * cites pages it never read. The pipeline's checks must catch every one.
   */
  research: {
    tokens: [2500, 600],
    answer({criteria, company}: {criteria: Criteria; company: CandidateCompany}, {seed}) {
      const t = truthOf(seed, company)
      const r = rng(hash32(`${seed}:model:${company.domain}`))
      const home = `https://${company.domain}/`
      const about = `https://${company.domain}/about`
      const contact = `https://${company.domain}/contact`
      const seen = t.answers ? [home, about, contact] : []
      type Said = {verdict: 'match' | 'mismatch' | 'unknown'; evidence: Array<{url: string; quote: string}>}
      const said = (verdict: Said['verdict'], url: string, quote: string): Said => ({verdict, evidence: verdict === 'unknown' ? [] : [{url, quote}]})
      const verdicts: Record<string, Said> = {}
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
        verdicts.city = located
          ? said(t.city.toLowerCase() === criteria.city.toLowerCase() ? 'match' : 'mismatch', contact, where)
          : said('unknown', contact, '')
      if (criteria.units_min !== undefined || criteria.units_max !== undefined) {
        const inRange =
          (criteria.units_min === undefined || t.units >= criteria.units_min) && (criteria.units_max === undefined || t.units <= criteria.units_max)
        verdicts.units = said(t.answers ? (inRange ? 'match' : 'mismatch') : 'unknown', about, `about ${t.units} units`)
      }

      if (criteria.natural_request)
        verdicts.natural_request = said(t.residential ? 'match' : 'mismatch', home, t.residential ? 'Single-family homes' : 'Homeowner associations')
      // Now and then a verdict cites a page the model never read.
      const cited = Object.values(verdicts).filter((v) => v.evidence.length > 0)
      if (cited.length > 0 && r() < 0.1) cited[0].evidence = [{url: `https://directory.example/${company.domain}`, quote: 'as listed'}]
      const value = {
        verdicts,
        portfolio: t.residential ? 'residential' : 'hoa_only',
        units_estimate: t.answers ? t.units : null,
        employees_estimate: t.answers ? t.employees : null,
        confidence: 'medium',
        reasons: [`about ${t.units} units, ${t.employees} employees`],
        sources: seen,
        pms: t.pms,
        city: t.city,
        state: t.state,
      }
      return {value, seen}
    },
  },

  /**
   * A model that mostly reports the phone the contact page shows and the
   * LinkedIn page the about page links to, but also a number from a
   * directory that the site never shows, a person's profile or a post for the
   * company page, or a number where the site shows none: rvx's checks must
   * catch every one.
   */
  enrich: {
    tokens: [1500, 250],
    answer({company}: {company: CandidateCompany}, {seed}) {
      const shown = presenceOf(seed, company.domain)
      const r = rng(hash32(`${seed}:enrich:${company.domain}`))
      const slug = company.domain.replace(/\.example$/, '')
      const directory = `https://directory.example/${slug}`
      const made = `+1 512-555-${String(1000 + Math.floor(r() * 9000))}`
      const phoneRoll = r()
      const phone =
        shown.phone === null || phoneRoll < 0.1
          ? {value: made, url: directory, quote: `Phone: ${made}`}
          : phoneRoll < 0.15
            ? {value: null, url: null, quote: null}
            : {
                value: `+1 ${shown.phone.replace(/[()]/g, '').replace(' ', '-')}`,
                url: `https://${company.domain}/contact`,
                quote: `Main office: ${shown.phone}`,
              }
      const linkRoll = r()
      const about = `https://${company.domain}/about`
      const linkedin =
        shown.linkedin === null || linkRoll < 0.1
          ? {value: `https://linkedin.example/in/${pick(r, FIRST).toLowerCase()}-${slug}`, url: about, quote: 'Meet our founder'}
          : linkRoll < 0.15
            ? {value: `https://linkedin.example/posts/${slug}-now-hiring`, url: about, quote: 'We are hiring'}
            : {value: shown.linkedin, url: about, quote: 'Follow us on LinkedIn'}
      return {value: {phone, linkedin_company: linkedin}, seen: [`https://${company.domain}/contact`, about]}
    },
  },

  contacts: {
    tokens: [1800, 400],
    answer({company, max}: {company: CandidateCompany; max: number}, {seed}) {
      // Contacts depend on seed and domain only, so any worker process finds the same people.
      const people = contactsFor(company, rng(hash32(`${seed}:${company.domain}`)))
      return {value: {contacts: people.sort((a, b) => a.tier - b.tier).slice(0, max)}}
    },
  },
}

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

type Person = {
  full_name: string
  title: string
  tier: 1 | 2 | 3 | 4
  email: string | null
  phone: string | null
  linkedin_url: string | null
  confidence: 'high' | 'medium'
  sources: string[]
}

function contactsFor(c: CandidateCompany, r: () => number): Person[] {
  // A few companies have nobody findable: the pipeline must cope.
  const count = r() < 0.03 ? 0 : 1 + Math.floor(r() * 5)
  const people: Person[] = []
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
      full_name: fullName,
      title,
      tier,
      email,
      phone: r() < 0.5 ? `+1-555-${String(Math.floor(r() * 9000) + 1000)}` : null,
      linkedin_url: r() < 0.7 ? `https://linkedin.example/in/${local.replace(/\./g, '-')}-${c.domain.split('.')[0]}` : null,
      confidence: tier <= 2 ? 'high' : 'medium',
      sources: [`https://${c.domain}/team`],
    })
  }

  return people
}
