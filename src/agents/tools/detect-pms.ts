import {fetchPage, type FetchOptions} from './fetch-page.js'
import {walkHtml} from './html.js'

export interface PmsVendor {
  vendor: string
  /** Hosts of the software's tenant/owner portals, logins and payment pages: ".x.com" is any subdomain of x.com but www, "x.com" is x.com and anything under it. */
  portal: string[]
  /** The vendor's own (marketing) site: a link there is a mention, not a sign of use. */
  marketing: string[]
}

/** Portal and payment hosts that give a company's property-management software away (see domain.md). */
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
  /** portal: a link to the software's portal/login/payment host; marketing: a link to the vendor's own site. */
  kind: 'portal' | 'marketing'
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
  pms: string | null
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

interface PageLink {
  url: URL
  text: string
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
    const link = {url, text: ''}
    links.push(link)
    return link
  }

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
    },
  })
  for (const link of links) link.text = link.text.replace(/\s+/g, ' ').trim().slice(0, MAX_TEXT)
  return links
}

/** The vendor links among a page's links. */
export function pmsEvidence(links: PageLink[], page: string): PmsEvidence[] {
  const evidence: PmsEvidence[] = []
  for (const {url, text} of links) {
    const found = vendorOfHost(url.hostname)
    if (found) evidence.push({...found, url: url.href.slice(0, 500), host: url.hostname, text, page})
    if (evidence.length >= MAX_EVIDENCE) break
  }

  return evidence
}

/**
 * Deterministic PMS detection: the home page plus up to three portal-looking
 * links on it, their links' hosts matched against the vendors' hosts (a
 * suffix comparison per link, never a pattern over the raw page). The vendor
 * found on the most pages wins; no evidence is null (unknown), never a guess.
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

  // One vote per vendor per page, as before the evidence listed every link.
  const votes = new Map<string, number>()
  for (const vendorPage of new Set(evidence.map((e) => `${e.vendor}\n${e.page}`))) {
    const vendor = vendorPage.split('\n')[0]
    votes.set(vendor, (votes.get(vendor) ?? 0) + 1)
  }

  const best = [...votes.entries()].sort((a, b) => b[1] - a[1])[0]
  return {domain, pms: best ? best[0] : null, evidence, pagesChecked}
}
