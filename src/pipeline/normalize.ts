import {cleanText} from '../shared/text.js'
import {normalizeDomain} from './domains.js'
import type {CandidateCompany, CompanyResearch, Evidence, FoundContact, ModelVerdict, SiteFacts} from './provider.js'

/**
 * What a provider gives (a model's answer, the pages its checks read) made
 * fit to store and show, once, before any of it is written: text without
 * control characters, terminal escapes or direction overrides, and cut to a
 * length; numbers within what the columns hold and what is plausible; URLs
 * http(s) and bounded; domains through the one parser; lists bounded. A value
 * that cannot be made sensible becomes unknown (null) rather than failing
 * the task: a model's or a page's nonsense must not make a settlement fail
 * and the task pay again.
 */

export const MAX = {
  name: 200,
  title: 200,
  /** City, state, PMS vendor. */
  field: 100,
  quote: 500,
  reason: 500,
  url: 2000,
  phone: 50,
  email: 254,
  /** Companies one discovery call may add. */
  companies: 200,
  /** People one contact search may return, whatever was asked. */
  contacts: 20,
  sources: 20,
  evidence: 5,
  reasons: 20,
  pages: 50,
  ownDomains: 20,
} as const

/** More units or employees than any property manager has is not an estimate (the largest manage under a million units). */
const MAX_UNITS = 5_000_000
const MAX_EMPLOYEES = 1_000_000

/** One line of text, or '' when nothing is left. */
export function line(value: unknown, max: number): string {
  return typeof value === 'string' ? cleanText(value, max) : ''
}

function optionalLine(value: unknown, max: number): string | null {
  return line(value, max) || null
}

/** An http(s) URL as text, or null. */
export function url(value: unknown): string | null {
  if (typeof value !== 'string') return null
  const text = cleanText(value, MAX.url)
  if (!text) return null
  try {
    const u = new URL(text)
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href.slice(0, MAX.url) : null
  } catch {
    return null
  }
}

/** A whole number from 0 to max, or null (a float is rounded; negative, huge or not a number is unknown). */
export function count(value: unknown, max: number): number | null {
  if (typeof value !== 'number' || !Number.isFinite(value)) return null
  const n = Math.round(value)
  return n >= 0 && n <= max ? n : null
}

function urls(values: unknown, max: number): string[] {
  return Array.isArray(values) ? [...new Set(values.map(url).filter((u): u is string => u !== null))].slice(0, max) : []
}

function evidence(values: unknown): Evidence[] {
  if (!Array.isArray(values)) return []
  return values.flatMap((e) => (e && typeof e === 'object' ? [{url: line(e.url, MAX.url), quote: line(e.quote, MAX.quote)}] : [])).slice(0, MAX.evidence)
}

/** Discovery's companies: those with a domain, each field cleaned, at most MAX.companies. */
export function normalizeCandidates(found: CandidateCompany[]): CandidateCompany[] {
  return found
    .flatMap((c) => {
      const domain = normalizeDomain(typeof c.domain === 'string' ? c.domain.slice(0, 2048) : '')
      if (!domain) return []
      return [
        {
          name: line(c.name, MAX.name) || domain,
          domain,
          website: url(c.website),
          city: optionalLine(c.city, MAX.field),
          state: optionalLine(c.state, MAX.field),
          pms: optionalLine(c.pms, MAX.field),
          unitsEstimate: count(c.unitsEstimate, MAX_UNITS),
          sources: urls(c.sources, MAX.sources),
        },
      ]
    })
    .slice(0, MAX.companies)
}

/** Research's findings with every text cleaned and every number bounded. */
export function normalizeResearch(r: CompanyResearch): CompanyResearch {
  const verdicts: CompanyResearch['verdicts'] = {}
  for (const [key, v] of Object.entries(r.verdicts ?? {}) as Array<[keyof CompanyResearch['verdicts'], ModelVerdict | undefined]>)
    if (v) verdicts[key] = {verdict: v.verdict, evidence: evidence(v.evidence)}
  return {
    ...r,
    verdicts,
    unitsEstimate: count(r.unitsEstimate, MAX_UNITS),
    employeesEstimate: count(r.employeesEstimate, MAX_EMPLOYEES),
    reasons: (r.reasons ?? [])
      .map((x) => line(x, MAX.reason))
      .filter(Boolean)
      .slice(0, MAX.reasons),
    sources: urls(r.sources, MAX.sources),
    pms: optionalLine(r.pms, MAX.field),
    city: optionalLine(r.city, MAX.field),
    state: optionalLine(r.state, MAX.field),
    seen: (r.seen ?? []).map((u) => line(u, MAX.url)).filter(Boolean),
  }
}

/** The site checks' facts: what the pages said (a title, an address, link text) cleaned and cut. */
export function normalizeSiteFacts(f: SiteFacts): SiteFacts {
  const quote = (e: Evidence): Evidence => ({url: line(e.url, MAX.url), quote: line(e.quote, MAX.quote)})
  return {
    domain: f.domain,
    site: {verdict: f.site.verdict, reason: line(f.site.reason, MAX.reason), evidence: f.site.evidence.slice(0, MAX.evidence).map(quote)},
    pms: {
      vendor: optionalLine(f.pms.vendor, MAX.field),
      strength: f.pms.strength,
      evidence: f.pms.evidence.slice(0, MAX.evidence).map(quote),
      otherVendors: f.pms.otherVendors.map((v) => line(v, MAX.field)).filter(Boolean),
    },
    address: f.address && {
      street: optionalLine(f.address.street, MAX.title),
      city: optionalLine(f.address.city, MAX.field),
      state: line(f.address.state, MAX.field),
      postalCode: optionalLine(f.address.postalCode, 20),
      evidence: quote(f.address.evidence),
    },
    ownDomains: [...new Set(f.ownDomains.map((d) => normalizeDomain(d)).filter(Boolean))].slice(0, MAX.ownDomains),
    pages: f.pages
      .map((p) => line(p, MAX.url))
      .filter(Boolean)
      .slice(0, MAX.pages),
  }
}

/** People a contact search found: named, tier 1-4, fields cleaned, at most MAX.contacts (the first ones). */
export function normalizeContacts(found: FoundContact[]): FoundContact[] {
  return found
    .flatMap((p) => {
      const fullName = line(p.fullName, MAX.name)
      if (!fullName) return []
      const tier = count(p.tier, 4)
      return [
        {
          fullName,
          title: line(p.title, MAX.title),
          tier: (tier && tier >= 1 ? tier : 4) as FoundContact['tier'],
          email: optionalLine(p.email, MAX.email * 2),
          phone: optionalLine(p.phone, MAX.phone),
          linkedinUrl: optionalLine(p.linkedinUrl, MAX.url),
          confidence: p.confidence,
          sources: urls(p.sources, MAX.sources),
        },
      ]
    })
    .slice(0, MAX.contacts)
}
