import {PMS_VENDORS} from '../../pipeline/criteria.js'
import type {Criteria} from '../../pipeline/criteria.js'
import type {CandidateCompany} from '../../pipeline/provider.js'

/**
 * The simulated world of property-management companies: what discovery finds
 * for a set of criteria (names, domains, and what directories claim about
 * them), and, per company, the truth its own site shows. The truth depends on
 * the seed and the domain only, so every process sees the same world; it
 * differs from the claims often enough that only checking catches it.
 */

export function hash32(text: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }

  return h >>> 0
}

/** mulberry32: a small, good-enough seeded generator. */
export function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}

export const pick = <T>(r: () => number, list: readonly T[]): T => list[Math.floor(r() * list.length)]

export const CITIES: Record<string, string[]> = {
  TX: ['Austin', 'Dallas', 'Houston', 'San Antonio', 'Fort Worth', 'El Paso', 'Plano', 'Round Rock'],
  FL: ['Tampa', 'Orlando', 'Miami', 'Jacksonville', 'Tallahassee'],
  CA: ['Sacramento', 'San Diego', 'Fresno', 'Oakland', 'Riverside'],
  NC: ['Raleigh', 'Charlotte', 'Durham', 'Greensboro'],
}
const STATES = Object.keys(CITIES)
const WORDS_A = ['Lone Star', 'Bluebonnet', 'Keystone', 'Summit', 'Oakline', 'Harbor', 'Cedar', 'Pioneer', 'Granite', 'Magnolia', 'Crescent', 'Liberty']
const WORDS_A2 = ['Redwood', 'Sterling', 'Prairie', 'Riverbend', 'Ironwood', 'Silverleaf', 'Northgate', 'Westfield']
const WORDS_B = ['Property Management', 'Realty & Management', 'Residential', 'Homes', 'Property Group', 'Rentals', 'Management Co', 'Property Services']

/** What discovery finds: a candidate as directories describe it (its claims). */
export type WorldCompany = CandidateCompany & {name: string; domain: string}

/** The companies that exist for these criteria: same seed and criteria, same companies, in the same order. */
export function worldFor(seed: number, criteria: Criteria, supply?: number): WorldCompany[] {
  const key = JSON.stringify({seed, pms: criteria.pms ?? null, state: criteria.state ?? null, city: criteria.city ?? null})
  const base = hash32(key)
  const r = rng(base)
  const size = supply ?? 40 + (base % 80)
  const world: WorldCompany[] = []
  const used = new Set<string>()
  for (let i = 0; i < size; i++) {
    let name = `${pick(r, [...WORDS_A, ...WORDS_A2])} ${pick(r, WORDS_B)}`
    const state = criteria.state ?? pick(r, STATES)
    const city = criteria.city ?? pick(r, CITIES[state] ?? ['Springfield'])
    let slug = name
      .toLowerCase()
      .replace(/&/g, 'and')
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/-+$/, '')
    if (used.has(slug)) {
      name = `${name} of ${city}`
      slug = `${slug}-${city.toLowerCase().replace(/[^a-z0-9]+/g, '-')}-${i}`
    }

    used.add(slug)
    const domain = `${slug}.example`
    // Directories say what the criteria asked for; the company's own site may say otherwise (truthOf).
    world.push({
      name,
      domain,
      website: `https://${domain}`,
      city,
      state,
      pms: criteria.pms ?? pick(r, PMS_VENDORS),
      sources: [`https://directory.example/${slug}`],
    })
  }

  return world
}

/** What a company's own site shows, whatever directories claim. */
export interface Truth {
  /** The site answers at all. */
  answers: boolean
  pms: string
  /** How its site shows its PMS: a portal link, only a "powered by" badge, or not at all. */
  shows: 'portal' | 'badge' | 'none'
  /** Another vendor named in a blog post (a mention, not evidence). */
  mentions: string | null
  state: string
  city: string
  street: string
  zip: string
  /** How its site states its address. */
  address: 'jsonld' | 'text' | 'none'
  residential: boolean
  units: number
  employees: number
  /** Its domain accepts mail (has MX records). */
  mx: boolean
}

/** The truth behind a candidate: from the seed, its domain and the claims discovery recorded. */
export function truthOf(seed: number, c: Pick<CandidateCompany, 'domain' | 'state' | 'city' | 'pms'>): Truth {
  const r = rng(hash32(`${seed}:truth:${c.domain}`))
  const claimedState = c.state && CITIES[c.state] ? c.state : pick(r, STATES)
  const others = (list: readonly string[], not: string) => list.filter((x) => x !== not)
  const pms = c.pms && r() < 0.8 ? c.pms : pick(r, others(PMS_VENDORS, c.pms ?? ''))
  const shown = r()
  const shows = shown < 0.88 ? 'portal' : shown < 0.95 ? 'badge' : 'none'
  const mentions = r() < 0.3 ? pick(r, others(PMS_VENDORS, pms)) : null
  const sameState = r() < 0.92
  const state = sameState ? claimedState : pick(r, others(STATES, claimedState))
  const city = sameState && c.city && r() < 0.9 ? c.city : pick(r, CITIES[state])
  const where = r()
  return {
    answers: r() < 0.97,
    pms,
    shows,
    mentions,
    state,
    city,
    street: `${100 + Math.floor(r() * 9000)} ${pick(r, ['Main', 'Oak', 'Elm', 'Congress', 'Lamar', 'Cedar'])} ${pick(r, ['St', 'Ave', 'Blvd', 'Dr'])}`,
    zip: String(10_000 + Math.floor(r() * 89_999)),
    address: where < 0.45 ? 'jsonld' : where < 0.92 ? 'text' : 'none',
    residential: r() < 0.92,
    units: Math.round(10 * Math.exp(r() * 5.5)),
    employees: 2 + Math.floor(r() * 45),
    mx: rng(hash32(`${seed}:mx:${c.domain}`))() < 0.92,
  }
}

/** How a company can be reached, as its own site shows it: its main phone (contact page) and its LinkedIn company page (about page). */
export interface Presence {
  /** As the contact page writes it, e.g. (512) 555-0142; null when the site shows none. */
  phone: string | null
  linkedin: string | null
}

/** A company's presence: from the seed and its domain only, so every process sees the same. */
export function presenceOf(seed: number, domain: string): Presence {
  const r = rng(hash32(`${seed}:presence:${domain}`))
  const area = pick(r, ['512', '214', '713', '210', '817', '915', '469', '737'])
  const line = String(1000 + Math.floor(r() * 9000))
  return {
    phone: r() < 0.9 ? `(${area}) 555-${line}` : null,
    linkedin: r() < 0.85 ? `https://linkedin.example/company/${domain.replace(/\.example$/, '')}` : null,
  }
}
