import {fetchPage, type FetchOptions} from './fetch-page.js'

/** Portal and payment hosts that give a company's property-management software away (see domain.md). */
export const PMS_SIGNATURES: Array<{vendor: string; pattern: RegExp}> = [
  {vendor: 'Buildium', pattern: /[\w-]+\.managebuilding\.com|buildium\.com/i},
  {vendor: 'AppFolio', pattern: /[\w-]+\.appfolio\.com/i},
  {vendor: 'Yardi', pattern: /[\w-]+\.rentcafe\.com|yardi(?:breeze)?\.com/i},
  {vendor: 'RentVine', pattern: /[\w-]+\.rentvine\.com/i},
  {vendor: 'Propertyware', pattern: /[\w-]+\.propertyware\.com/i},
  {vendor: 'DoorLoop', pattern: /app\.doorloop\.com|doorloop\.com/i},
  {vendor: 'Rent Manager', pattern: /[\w-]+\.rentmanager\.com|rmresident\.com/i},
  {vendor: 'TenantCloud', pattern: /[\w-]+\.tenantcloud\.com/i},
  {vendor: 'RealPage', pattern: /[\w-]+\.realpage\.com|loftliving\.com/i},
  {vendor: 'Entrata', pattern: /[\w-]+\.entrata\.com/i},
  {vendor: 'ResMan', pattern: /[\w-]+\.myresman\.com|resman\.com/i},
]

export interface PmsDetection {
  domain: string
  pms: string | null
  evidence: Array<{vendor: string; match: string; page: string}>
  pagesChecked: string[]
}

const PORTAL_WORDS = /portal|resident|tenant|owner|pay|login|apply|rent/i

/**
 * Deterministic PMS detection: the home page plus up to three portal-looking
 * links on it, matched against the vendors' portal hosts. The vendor with
 * the most evidence wins; no evidence is null (unknown), never a guess.
 */
export async function detectPms(domain: string, options: FetchOptions & {maxPages?: number; baseUrl?: string} = {}): Promise<PmsDetection> {
  const home = options.baseUrl ?? `https://${domain}`
  const evidence: PmsDetection['evidence'] = []
  const pagesChecked: string[] = []
  const scan = (html: string, page: string) => {
    for (const {vendor, pattern} of PMS_SIGNATURES) {
      const m = pattern.exec(html)
      if (m) evidence.push({vendor, match: m[0], page})
    }
  }

  const first = await fetchPage(home, options)
  pagesChecked.push(first.url)
  scan(first.html, first.url)
  const links = [...first.html.matchAll(/<a\b[^>]*href=["']([^"']+)["'][^>]*>([\s\S]*?)<\/a>/gi)]
    .filter(([, href, label]) => PORTAL_WORDS.test(href) || PORTAL_WORDS.test(label))
    .map(([, href]) => new URL(href, first.url))
    .filter((u) => u.protocol === 'http:' || u.protocol === 'https:')
  const sameSite = [...new Map(links.filter((u) => u.host === new URL(first.url).host).map((u) => [u.href, u])).values()].slice(0, options.maxPages ?? 3)
  for (const link of sameSite) {
    try {
      const page = await fetchPage(link.href, options)
      pagesChecked.push(page.url)
      scan(page.html, page.url)
    } catch {
      // a broken link is no evidence either way
    }
  }

  const votes = new Map<string, number>()
  for (const e of evidence) votes.set(e.vendor, (votes.get(e.vendor) ?? 0) + 1)
  const best = [...votes.entries()].sort((a, b) => b[1] - a[1])[0]
  return {domain, pms: best ? best[0] : null, evidence, pagesChecked}
}
