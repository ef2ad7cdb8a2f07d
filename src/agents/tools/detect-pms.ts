import {fetchPage, type FetchOptions} from './fetch-page.js'
import {walkHtml} from './html.js'

export interface PmsVendor {
  vendor: string
  /** Hosts of the software's tenant/owner portals, logins and payment pages: ".x.com" is any subdomain of x.com but www, "x.com" is x.com and anything under it. */
  portal: string[]
  /** The vendor's own (marketing) site: a link there is a mention, not a sign of use. */
  marketing: string[]
}

/** Portal and payment hosts that give a company's property-management software away (see docs/domain.md, "PMS detection"). */
export const PMS_VENDORS: PmsVendor[] = [
  {vendor: 'Buildium', portal: ['.managebuilding.com'], marketing: ['buildium.com', 'managebuilding.com']},
  {vendor: 'AppFolio', portal: ['.appfolio.com'], marketing: ['appfolio.com']},
  {vendor: 'Yardi', portal: ['.rentcafe.com', '.yardibreeze.com'], marketing: ['yardi.com', 'yardibreeze.com', 'rentcafe.com']},
  {vendor: 'RentVine', portal: ['.rentvine.com'], marketing: ['rentvine.com']},
  {vendor: 'Propertyware', portal: ['.propertyware.com'], marketing: ['propertyware.com']},
  {vendor: 'DoorLoop', portal: ['app.doorloop.com'], marketing: ['doorloop.com']},
  {vendor: 'Rent Manager', portal: ['.rentmanager.com', 'rmresident.com'], marketing: ['rentmanager.com']},
  {vendor: 'TenantCloud', portal: ['.tenantcloud.com'], marketing: ['tenantcloud.com']},
  {vendor: 'RealPage', portal: ['.realpage.com', 'loftliving.com'], marketing: ['realpage.com']},
  {vendor: 'Entrata', portal: ['.entrata.com'], marketing: ['entrata.com']},
  {vendor: 'ResMan', portal: ['.myresman.com'], marketing: ['resman.com', 'myresman.com']},
]

export interface PmsEvidence {
  vendor: string
  /**
   * portal: a link to the software's portal/login/payment host (evidence of use); badge: a link to the vendor's
   * site in a "powered by" line (weak evidence); marketing: a link to the vendor's site anywhere else (a mention, no evidence).
   */
  kind: 'portal' | 'badge' | 'marketing'
  /** The link (href of an anchor or area, src of a frame, action of a form). */
  url: string
  host: string
  /** The anchor text, "" for frames and forms. */
  text: string
  /** The page the link is on. */
  page: string
}

export interface PmsDetection {
  domain: string
  /** The vendor its portal links show, else the one a "powered by" badge names, else null (unknown). */
  pms: string | null
  strength: 'portal' | 'badge' | null
  evidence: PmsEvidence[]
  pagesChecked: string[]
}

/** Which vendor a link's host belongs to, and how; portal hosts first, so app.doorloop.com is a portal and doorloop.com marketing. */
export function vendorOfHost(rawHost: string): {vendor: string; kind: 'portal' | 'marketing'} | null {
  const host = rawHost.toLowerCase().replace(/\.$/, '')
  const under = (domain: string) => host === domain || host.endsWith(`.${domain}`)
  for (const v of PMS_VENDORS) {
    if (v.portal.some((p) => (p.startsWith('.') ? host.endsWith(p) && host !== `www${p}` : under(p)))) return {vendor: v.vendor, kind: 'portal'}
  }

  for (const v of PMS_VENDORS) {
    if (v.marketing.some(under)) return {vendor: v.vendor, kind: 'marketing'}
  }

  return null
}

const PORTAL_WORDS = /portal|resident|tenant|owner|pay|login|apply|rent/i
/** Bounds per page: links read, anchor text kept, evidence reported. */
const MAX_LINKS = 2000
const MAX_TEXT = 200
const MAX_EVIDENCE = 10

export interface PageLink {
  url: URL
  text: string
  /** The text just before the link ("Powered by"), up to 40 characters. */
  before: string
}

/** The http(s) links of a page (anchors, areas, frames, forms), resolved against its URL, in one linear pass. */
export function pageLinks(html: string, pageUrl: string): PageLink[] {
  const links: PageLink[] = []
  let anchor: PageLink | null = null
  const add = (raw: string | undefined): PageLink | null => {
    if (!raw || links.length >= MAX_LINKS) return null
    let url: URL
    try {
      url = new URL(raw.trim(), pageUrl)
    } catch {
      return null
    }

    if (url.protocol !== 'http:' && url.protocol !== 'https:') return null
    const link = {url, text: '', before: recent.slice(-40)}
    links.push(link)
    return link
  }

  let recent = ''

  walkHtml(html, {
    open(name, attributes) {
      if (name === 'a' || name === 'area') anchor = add(attributes.href)
      else if (name === 'iframe' || name === 'frame') add(attributes.src)
      else if (name === 'form') add(attributes.action)
    },
    close(name) {
      if (name === 'a') anchor = null
    },
    text(text) {
      if (anchor && anchor.text.length < MAX_TEXT) anchor.text += text
      recent = (recent + text).slice(-80)
    },
  })
  for (const link of links) {
    link.text = link.text.replace(/\s+/g, ' ').trim().slice(0, MAX_TEXT)
    link.before = link.before.replace(/\s+/g, ' ').trim()
  }

  return links
}

/** The vendor links among a page's links. */
export function pmsEvidence(links: PageLink[], page: string): PmsEvidence[] {
  const evidence: PmsEvidence[] = []
  for (const {url, text, before} of links) {
    const found = vendorOfHost(url.hostname)
    if (!found) continue
    const kind = found.kind === 'marketing' && POWERED_BY.test(`${before} ${text}`) ? 'badge' : found.kind
    evidence.push({vendor: found.vendor, kind, url: url.href.slice(0, 500), host: url.hostname, text, page})
    if (evidence.length >= MAX_EVIDENCE) break
  }

  return evidence
}

const POWERED_BY = /\b(powered|software|payments?)\s+by\b/i

/**
 * The PMS the evidence shows: the vendor whose portal, login or payment links
 * appear on the most pages; without any, the one a "powered by" badge names
 * (weak); links to vendors' own sites in running text (a blog post, a
 * comparison) are mentions and count for nothing.
 */
export function decidePms(evidence: PmsEvidence[]): {pms: string | null; strength: 'portal' | 'badge' | null; others: string[]} {
  for (const strength of ['portal', 'badge'] as const) {
    const pages = new Map<string, Set<string>>()
    for (const e of evidence.filter((x) => x.kind === strength)) pages.set(e.vendor, (pages.get(e.vendor) ?? new Set()).add(e.page))
    const ranked = [...pages.entries()].sort((a, b) => b[1].size - a[1].size).map(([vendor]) => vendor)
    if (ranked.length > 0) return {pms: ranked[0], strength, others: ranked.slice(1)}
  }

  return {pms: null, strength: null, others: []}
}

/**
 * Deterministic PMS detection: the home page plus up to three portal-looking
 * links on it, their links' hosts matched against the vendors' hosts (a
 * suffix comparison per link, never a pattern over the raw page), decided by
 * decidePms(); no evidence is null (unknown), never a guess.
 */
export async function detectPms(domain: string, options: FetchOptions & {maxPages?: number; baseUrl?: string} = {}): Promise<PmsDetection> {
  const home = options.baseUrl ?? `https://${domain}`
  const fetchOptions = {...options, text: false}
  const evidence: PmsEvidence[] = []
  const pagesChecked: string[] = []

  const first = await fetchPage(home, fetchOptions)
  pagesChecked.push(first.url)
  const links = pageLinks(first.html, first.url)
  evidence.push(...pmsEvidence(links, first.url))
  const host = new URL(first.url).host
  const follow = links.filter((l) => l.url.host === host && (PORTAL_WORDS.test(l.url.href) || PORTAL_WORDS.test(l.text)))
  const sameSite = [...new Map(follow.map((l) => [l.url.href, l.url])).values()].slice(0, options.maxPages ?? 3)
  for (const link of sameSite) {
    try {
      const page = await fetchPage(link.href, fetchOptions)
      pagesChecked.push(page.url)
      evidence.push(...pmsEvidence(pageLinks(page.html, page.url), page.url))
    } catch {
      // a broken link is no evidence either way
    }
  }

  const decided = decidePms(evidence)
  return {domain, pms: decided.pms, strength: decided.strength, evidence, pagesChecked}
}
