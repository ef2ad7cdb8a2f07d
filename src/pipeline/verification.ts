import {UsageError} from '../shared/errors.js'
import type {Criteria} from './criteria.js'
import type {CompanyResearch, CriterionName, Evidence, SiteFacts, Verdict} from './provider.js'

/**
 * Verification rules (docs/domain.md, "Verification"): a verdict per criterion
 * with evidence that was really read; deterministic checks overrule the
 * model where they can; qualification and the ICP score follow from the
 * verdicts and the fit rules, never from what the model asserts.
 */

/** What a verdict can be about: the run's criteria, plus the site check every company gets. */
export type VerdictKey = CriterionName | 'site'

/** In export order. */
export const VERDICT_KEYS: readonly VerdictKey[] = ['pms', 'state', 'city', 'units', 'natural_request', 'site']

/**
 * A verdict key (or what kept a company out) as people read it: "natural
 * request"; "portfolio", the check that a company manages residential
 * rentals, as "residential portfolio" (it is not the units criterion).
 */
export function verdictLabel(key: string): string {
  return key === 'portfolio' ? 'residential portfolio' : key.replaceAll('_', ' ')
}

/** Verdicts that may be accepted when unknown (`--accept-unknown`). */
export const ACCEPTABLE_UNKNOWN: readonly VerdictKey[] = ['pms', 'state', 'city', 'units', 'site']

/** "pms,units" -> ['pms', 'units'], or a usage error naming what cannot be accepted. */
export function parseAcceptUnknown(text: string): VerdictKey[] {
  const keys = [
    ...new Set(
      text
        .split(',')
        .map((k) => k.trim().toLowerCase())
        .filter(Boolean),
    ),
  ]
  const bad = keys.filter((k) => !(ACCEPTABLE_UNKNOWN as readonly string[]).includes(k))
  if (keys.length === 0 || bad.length > 0) {
    throw new UsageError(
      `${bad.length > 0 ? `names ${bad.map((b) => `"${b}"`).join(', ')}, which cannot be accepted unknown` : 'is empty'}: use ${ACCEPTABLE_UNKNOWN.join(', ')}`,
      {field: 'accept_unknown'},
    )
  }

  return keys as VerdictKey[]
}

export interface FinalVerdict {
  verdict: Verdict
  evidence: Evidence[]
  /** Who decided: a deterministic check, or the model (its evidence checked). */
  by: 'check' | 'model'
  note?: string
}

export interface Verification {
  verdicts: Partial<Record<VerdictKey, FinalVerdict>>
  qualified: boolean
  /** What kept it out: criteria that did not match (or were unknown and not accepted), or its portfolio. */
  disqualifiedBy: string[]
  fit: 'yes' | 'no'
  score: number
  tier: 'low' | 'medium' | 'high' | 'enterprise' | 'unknown'
  confidence: 'low' | 'medium' | 'high'
  reasons: string[]
  /** The URLs behind the verdicts that stand. */
  sources: string[]
  facts: {pms: string | null; city: string | null; state: string | null; unitsEstimate: number | null}
}

/** The criteria a run asks about (units for units_min and/or units_max). */
export function criteriaOf(criteria: Criteria): CriterionName[] {
  const out: CriterionName[] = []
  if (criteria.pms) out.push('pms')
  if (criteria.state) out.push('state')
  if (criteria.city) out.push('city')
  if (criteria.units_min !== undefined || criteria.units_max !== undefined) out.push('units')
  if (criteria.natural_request) out.push('natural_request')
  return out
}

/** A criterion that must match for a company to qualify (natural_request only adds to the score). */
const HARD: ReadonlySet<VerdictKey> = new Set(['pms', 'state', 'city', 'units', 'site'])

const DISQUALIFYING_PORTFOLIO: Record<string, string> = {
  hoa_only: 'manages HOAs only',
  large_multifamily_only: 'manages large multifamily only',
  brokerage_only: 'a brokerage without management',
  no_active_management: 'no active property management',
}

/** One URL as the same page, however it was written (scheme, www, trailing slash, fragment). */
export function samePage(url: string): string {
  try {
    const u = new URL(/^[a-z][a-z0-9+.-]*:/i.test(url) ? url : `https://${url}`)
    const host = u.hostname.toLowerCase().replace(/^www\./, '')
    const path = u.pathname.replace(/\/+$/, '')
    return `${host}${path}${u.search}`
  } catch {
    return url.trim().toLowerCase()
  }
}

export function verifyCompany(input: {criteria: Criteria; acceptUnknown: readonly string[]; research: CompanyResearch | null; site: SiteFacts}): Verification {
  const {criteria, research, site} = input
  const seen = new Set([...(research?.seen ?? []), ...site.pages].map(samePage))
  const reasons: string[] = []
  let dropped = 0
  const real = (evidence: Evidence[]) => {
    const kept = evidence.filter((e) => e.url && seen.has(samePage(e.url)))
    dropped += evidence.length - kept.length
    return kept
  }

  /** The model's verdict, standing only on evidence that was read: a match without it is unknown. */
  const fromModel = (key: CriterionName): FinalVerdict => {
    const v = research?.verdicts[key]
    if (!v) return {verdict: 'unknown', evidence: [], by: 'model', note: 'not researched'}
    const evidence = real(v.evidence)
    if (v.verdict !== 'unknown' && evidence.length === 0)
      return {verdict: 'unknown', evidence: [], by: 'model', note: `the model said ${v.verdict} without a page it read`}
    return {verdict: v.verdict, evidence, by: 'model'}
  }

  const verdicts: Partial<Record<VerdictKey, FinalVerdict>> = {}
  verdicts.site = {verdict: site.site.verdict, evidence: site.site.evidence, by: 'check', note: site.site.reason}
  for (const key of criteriaOf(criteria)) {
    if (key === 'pms') verdicts.pms = pmsVerdict(criteria.pms!, site)
    else if ((key === 'state' || key === 'city') && site.address) verdicts[key] = locationVerdict(key, criteria, site.address)
    else verdicts[key] = fromModel(key)
  }

  if (dropped > 0) reasons.push(`${dropped} cited source${dropped === 1 ? '' : 's'} dropped: not read during the research`)
  const accepted = new Set(input.acceptUnknown)
  const disqualifiedBy: string[] = []
  for (const [key, v] of Object.entries(verdicts) as Array<[VerdictKey, FinalVerdict]>) {
    if (!HARD.has(key)) continue
    if (v.verdict === 'mismatch' || (v.verdict === 'unknown' && !accepted.has(key))) disqualifiedBy.push(key)
  }

  const portfolio = research?.portfolio ?? 'unknown'
  if (DISQUALIFYING_PORTFOLIO[portfolio]) {
    disqualifiedBy.push('portfolio')
    reasons.push(DISQUALIFYING_PORTFOLIO[portfolio])
  }

  for (const [key, v] of Object.entries(verdicts) as Array<[VerdictKey, FinalVerdict]>) {
    reasons.push(`${key}: ${v.verdict}${v.note ? ` (${v.note})` : ''}`)
  }

  const units = research?.unitsEstimate ?? null
  const tier = units === null ? 'unknown' : units < 50 ? 'low' : units < 150 ? 'medium' : units <= 1000 ? 'high' : 'enterprise'
  const qualified = disqualifiedBy.length === 0
  const score = icpScore({verdicts, qualified, portfolio, tier, employees: research?.employeesEstimate ?? null})
  const standing = Object.values(verdicts).flatMap((v) => (v.verdict === 'unknown' ? [] : v.evidence))
  const matched = Object.values(verdicts).filter((v) => v.verdict === 'match' && v.evidence.length > 0).length
  return {
    verdicts,
    qualified,
    disqualifiedBy,
    fit: qualified ? 'yes' : 'no',
    score,
    tier,
    confidence: matched >= 3 && Object.values(verdicts).every((v) => v.verdict !== 'unknown') ? 'high' : matched >= 2 ? 'medium' : 'low',
    reasons,
    sources: [...new Set(standing.map((e) => e.url))],
    facts: {
      pms: site.pms.vendor,
      city: site.address?.city ?? (verdicts.city?.verdict === 'match' ? criteria.city! : (research?.city ?? null)),
      state: site.address?.state ?? (verdicts.state?.verdict === 'match' ? criteria.state! : (research?.state ?? null)),
      unitsEstimate: units,
    },
  }
}

/** The PMS is what the company's own portal, login and payment links show, whatever the model said. */
function pmsVerdict(wanted: string, site: SiteFacts): FinalVerdict {
  const {vendor, strength, evidence} = site.pms
  if (site.site.verdict !== 'match') return {verdict: 'unknown', evidence: [], by: 'check', note: `no site to check: ${site.site.reason}`}
  if (!vendor) return {verdict: 'unknown', evidence: [], by: 'check', note: 'no portal, login or payment link of any PMS on its site'}
  const same = vendor.toLowerCase() === wanted.trim().toLowerCase()
  const weak = strength === 'badge' ? ', weak: only a "powered by" badge' : ''
  return same
    ? {verdict: 'match', evidence, by: 'check', note: `${vendor} ${strength === 'portal' ? 'portal link' : 'badge'} on its site${weak}`}
    : {verdict: 'mismatch', evidence, by: 'check', note: `its site links ${vendor}, not ${wanted}${weak}`}
}

/** A postal address on the company's own pages decides state and city. */
function locationVerdict(key: 'state' | 'city', criteria: Criteria, address: NonNullable<SiteFacts['address']>): FinalVerdict {
  const wanted = key === 'state' ? criteria.state! : criteria.city!
  const found = key === 'state' ? address.state : address.city
  if (!found) return {verdict: 'unknown', evidence: [address.evidence], by: 'check', note: 'its address names no city'}
  const same = found.trim().toLowerCase() === wanted.trim().toLowerCase()
  return {verdict: same ? 'match' : 'mismatch', evidence: [address.evidence], by: 'check', note: `its address is in ${found}`}
}

/**
 * The ICP score, from the verdicts and the fit rules: matched criteria with
 * evidence, portfolio fit, size (units), team size, and the free-text request.
 * A company that does not qualify scores at most 30.
 */
function icpScore(f: {
  verdicts: Partial<Record<VerdictKey, FinalVerdict>>
  qualified: boolean
  portfolio: string
  tier: string
  employees: number | null
}): number {
  const v = f.verdicts
  let score = 30
  for (const key of ['pms', 'state', 'city', 'units'] as const) if (v[key]?.verdict === 'match') score += 5
  if (v.pms?.verdict === 'match' && v.pms.note?.includes('portal')) score += 5
  if (f.portfolio === 'residential') score += 15
  score += {low: 3, medium: 10, high: 15, enterprise: 12, unknown: 0}[f.tier] ?? 0
  if (f.employees !== null) score += f.employees >= 20 ? 10 : f.employees >= 5 ? 5 : 2
  if (v.natural_request?.verdict === 'match') score += 10
  if (v.natural_request?.verdict === 'mismatch') score -= 15
  const bounded = Math.max(0, Math.min(100, score))
  return f.qualified ? bounded : Math.min(30, bounded)
}
