import type {WebIO} from '../checks.js'
import {PMS_VENDORS} from '../tools/detect-pms.js'
import {htmlToText} from '../tools/html.js'
import {hash32, type Presence, presenceOf, rng, truthOf, type Truth} from './world.js'

/**
 * The simulated world's web and DNS, for the same checks rvx runs on the real
 * ones: each company's site is rendered from its truth (portal or badge
 * links, a blog post that merely mentions another vendor, its address in
 * JSON-LD or in its footer, a mailto link), and its domain has MX records or
 * not. Claims come from the company row, as on the real web.
 */
export class SimulatedWeb implements WebIO {
  constructor(
    private readonly seed: number,
    /** The claims recorded for a domain (what discovery found), to derive its truth from. */
    private readonly claims: (domain: string) => {state?: string | null; city?: string | null; pms?: string | null} | undefined,
  ) {}

  async fetchPage(url: string): Promise<{url: string; status: number; html: string; text: string}> {
    const u = new URL(url)
    const domain = u.hostname.replace(/^www\./, '')
    if (!domain.endsWith('.example')) throw Object.assign(new Error(`simulated web: ${domain} is not in the simulated world`), {code: 'ENOTFOUND'})
    const truth = truthOf(this.seed, {domain, ...this.claims(domain)})
    if (!truth.answers) throw Object.assign(new Error(`connect ECONNREFUSED (simulated: ${domain} does not answer)`), {code: 'ECONNREFUSED'})
    const html = page(domain, u.pathname, truth, presenceOf(this.seed, domain))
    if (html === null) return {url: u.href, status: 404, html: '<html><body>Not found</body></html>', text: 'Not found'}
    return {url: u.href, status: 200, html, text: htmlToText(html)}
  }

  async resolveMx(domain: string): Promise<Array<{exchange: string; priority: number}>> {
    if (!domain.endsWith('.example')) return []
    return truthOf(this.seed, {domain, ...this.claims(domain)}).mx ? [{exchange: `mx.${domain}`, priority: 10}] : []
  }
}

function slugOf(domain: string): string {
  return domain.replace(/\.example$/, '').slice(0, 40)
}

function portalUrl(vendor: string, domain: string): string {
  const host = PMS_VENDORS.find((v) => v.vendor === vendor)!.portal[0]
  return host.startsWith('.') ? `https://${slugOf(domain)}${host}/Resident/portal/login` : `https://${host}/tenant-portal/${slugOf(domain)}`
}

function marketingUrl(vendor: string): string {
  return `https://www.${PMS_VENDORS.find((v) => v.vendor === vendor)!.marketing[0]}/`
}

/** The HTML of one page of a company's site, or null (404). */
function page(domain: string, path: string, t: Truth, presence: Presence): string | null {
  const title = domain.replace(/\.example$/, '').replace(/-/g, ' ')
  const nav = `<nav><a href="/about">About us</a> <a href="/contact">Contact</a>${t.mentions ? ' <a href="/blog/software">Blog</a>' : ''}</nav>`
  const portal = t.shows === 'portal' ? `<p><a href="${portalUrl(t.pms, domain)}">Pay Rent / Resident Login</a></p>` : ''
  const badge = t.shows === 'badge' ? `<p class="small">Powered by <a href="${marketingUrl(t.pms)}">${t.pms}</a></p>` : ''
  const jsonLd =
    t.address === 'jsonld'
      ? `<script type="application/ld+json">${JSON.stringify({'@context': 'https://schema.org', '@type': 'RealEstateAgent', name: title, address: {'@type': 'PostalAddress', streetAddress: t.street, addressLocality: t.city, addressRegion: t.state, postalCode: t.zip}})}</script>`
      : ''
  const footer = `<footer>${t.address === 'text' ? `<p>${t.street}, ${t.city}, ${t.state} ${t.zip}</p>` : ''}<p><a href="mailto:office@${domain}">office@${domain}</a></p></footer>`
  const shell = (body: string) => `<html><head><title>${title}</title>${jsonLd}</head><body>${nav}${body}${footer}</body></html>`
  const r = rng(hash32(`page:${domain}`))
  switch (path.replace(/\/+$/, '') || '/') {
    case '/':
      return shell(
        `<h1>${title}</h1><p>${t.residential ? 'Single-family homes and small apartment buildings' : 'Homeowner associations'} managed with care.</p>${portal}${badge}`,
      )
    case '/about':
      return shell(
        `<h1>About us</h1><p>${t.employees} people manage about ${t.units} units${t.residential ? ' of residential rentals' : ' for associations'}.</p>${presence.linkedin ? `<p>Follow us on <a href="${presence.linkedin}">LinkedIn</a></p>` : ''}`,
      )
    case '/contact':
      return shell(
        `<h1>Contact</h1><p>${t.address === 'none' ? 'Call us any time.' : `Visit us at ${t.street}, ${t.city}, ${t.state} ${t.zip}.`}</p>${presence.phone ? `<p>Main office: ${presence.phone}</p>` : ''}`,
      )
    case '/blog/software':
      return t.mentions
        ? shell(
            `<h1>Why we compared property software</h1><p>We looked at <a href="${marketingUrl(t.mentions)}pricing">${t.mentions}</a> before choosing ours (${Math.floor(r() * 9)} reasons).</p>`,
          )
        : null
    default:
      return null
  }
}
