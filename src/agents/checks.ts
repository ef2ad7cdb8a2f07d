import dns from 'node:dns'
import {domainToASCII} from 'node:url'
import emailAddresses from 'email-addresses'

import type {CandidateCompany, CheckedContact, EmailStatus, FoundContact, SiteChecks, SiteFacts} from '../pipeline/provider.js'
import {isDirectoryDomain, normalizeDomain} from '../pipeline/domains.js'
import {findAddresses} from './tools/address.js'
import {decidePms, pageLinks, pmsEvidence, vendorOfHost} from './tools/detect-pms.js'
import {fetchPage} from './tools/fetch-page.js'
import {dnsResolver} from './tools/resolve.js'

/** What the checks read the world through: pages (behind the fetch guard) and MX records. */
export interface WebIO {
  fetchPage(url: string, signal: AbortSignal): Promise<{url: string; status: number; html: string; text: string}>
  /** MX records; [] for a domain without them; an error with code ENOTFOUND for a domain that does not exist. */
  resolveMx(domain: string, signal: AbortSignal): Promise<Array<{exchange: string; priority: number}>>
}

/** Pages beyond the home page that may show portals or the address. */
const FOLLOW = /portal|resident|tenant|owner|pay|login|apply|rent|contact|about|location|office/i
const MAX_EXTRA_PAGES = 4
/** Mailbox names that reach a desk, not a person. */
const GENERIC_INBOX =
  /^(info|office|contact|contactus|admin|hello|hi|support|help|sales|leasing|lease|rentals?|noreply|no-reply|donotreply|do-not-reply|mail|email|team|billing|accounts?|frontdesk|reception|management|manager|service|services|inquiries|enquiries|applications?|maintenance|webmaster|marketing)$/i
const MX_TIMEOUT_MS = 5000
/** RFC 5321: a mailbox name of at most 64 octets, an address of at most 254. */
const MAX_LOCAL_PART = 64
const MAX_EMAIL = 254
/** An unquoted mailbox name (RFC 5322 dot-atom). */
const DOT_ATOM = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/

/**
 * The deterministic checks rvx runs itself, whatever the model said: the
 * company's own site (its PMS links, its address, whether it is a site of its
 * own at all) and each contact's email (syntax, not a generic inbox, on the
 * company's own domain, MX records) and LinkedIn URL.
 */
export class WebChecks implements SiteChecks {
  readonly linkedinHosts: readonly string[]

  constructor(
    private readonly io: WebIO,
    options: {linkedinHosts?: string[]} = {},
  ) {
    this.linkedinHosts = options.linkedinHosts ?? ['linkedin.com']
  }

  async readPage(url: string, signal: AbortSignal): Promise<{url: string; status: number; text: string}> {
    const page = await this.io.fetchPage(url, signal)
    return {url: page.url, status: page.status, text: page.text}
  }

  async checkSite(company: CandidateCompany, signal: AbortSignal): Promise<SiteFacts> {
    const domain = company.domain.toLowerCase().replace(/^www\./, '')
    const facts: SiteFacts = {
      domain,
      site: {verdict: 'unknown', reason: '', evidence: []},
      pms: {vendor: null, strength: null, evidence: [], otherVendors: []},
      address: null,
      ownDomains: [domain],
      pages: [],
    }
    if (isDirectoryDomain(domain)) {
      facts.site = {verdict: 'mismatch', reason: `${domain} is a directory or social profile, never a company's own site`, evidence: []}
      return facts
    }

    let home
    try {
      home = await this.io.fetchPage(homeUrl(company, domain), signal)
    } catch (error) {
      facts.site.reason = `${domain} did not answer: ${(error as Error).message}`
      return facts
    }

    facts.pages.push(home.url)
    const landed = new URL(home.url).hostname.toLowerCase().replace(/^www\./, '')
    if (isDirectoryDomain(landed)) {
      facts.site = {verdict: 'mismatch', reason: `${domain} forwards to ${landed}, a directory or social profile`, evidence: [{url: home.url, quote: landed}]}
      return facts
    }

    if (home.status >= 400) {
      facts.site.reason = `${domain} answered HTTP ${home.status}`
      return facts
    }

    facts.site = {verdict: 'match', reason: `${domain} answers with a site of its own`, evidence: [{url: home.url, quote: pageTitle(home.html) || domain}]}
    const pages = [home]
    const links = pageLinks(home.html, home.url)
    const follow = [
      ...new Map(
        links.filter((l) => sameSite(l.url.hostname, landed) && (FOLLOW.test(l.url.pathname) || FOLLOW.test(l.text))).map((l) => [l.url.href, l.url]),
      ).values(),
    ]
    for (const url of follow.slice(0, MAX_EXTRA_PAGES)) {
      try {
        const page = await this.io.fetchPage(url.href, signal)
        if (page.status < 400) pages.push(page)
        facts.pages.push(page.url)
      } catch {
        // a broken link is no evidence either way
      }
    }

    const evidence = pages.flatMap((p) => pmsEvidence(p === home ? links : pageLinks(p.html, p.url), p.url))
    const decided = decidePms(evidence)
    facts.pms = {
      vendor: decided.pms,
      strength: decided.strength,
      evidence: evidence
        .filter((e) => e.vendor === decided.pms && e.kind === decided.strength)
        .map((e) => ({url: e.page, quote: `${e.text || e.host} -> ${e.url}`})),
      otherVendors: decided.others,
    }
    for (const p of pages) {
      const found = findAddresses(p.html, p.text)[0]
      if (found) {
        facts.address = {street: found.street, city: found.city, state: found.state, postalCode: found.postalCode, evidence: {url: p.url, quote: found.quote}}
        break
      }
    }

    for (const p of pages) {
      for (const mail of mailtoDomains(p.html))
        if (!facts.ownDomains.includes(mail) && !vendorOfHost(mail) && !isDirectoryDomain(mail)) facts.ownDomains.push(mail)
    }

    return facts
  }

  async checkContact(contact: FoundContact, ownDomains: string[], signal: AbortSignal): Promise<CheckedContact> {
    const notes: string[] = []
    const linkedinUrl = this.linkedin(contact.linkedinUrl, notes)
    if (!contact.email) return {email: null, emailStatus: null, linkedinUrl, notes}
    const raw = contact.email.trim()
    // RFC 5321's limits: an address no server accepts is invalid, whatever its domain's MX records say.
    if (raw.length > MAX_EMAIL)
      return this.invalid(`"${raw.slice(0, 40)}..." is longer than ${MAX_EMAIL} characters, so not an email address`, linkedinUrl, notes)
    const parsed = emailAddresses.parseOneAddress({input: raw, rejectTLD: true})
    if (!parsed || parsed.type !== 'mailbox') return this.invalid(`"${contact.email}" is not an email address`, linkedinUrl, notes)
    const local = parsed.local
    // The parser unquotes a quoted local part ("a b"@x comes back as a b@x, not an address): such addresses are refused, not rewritten.
    if (!DOT_ATOM.test(local)) return this.invalid(`"${raw}" has a quoted or unusual mailbox name`, linkedinUrl, notes)
    if (local.length > MAX_LOCAL_PART)
      return this.invalid(`"${raw.slice(0, 40)}..." has a mailbox name longer than ${MAX_LOCAL_PART} characters`, linkedinUrl, notes)
    // The domain as DNS knows it (an IDN in its xn-- form), kept as written otherwise (mail to www.acme.com is not mail to acme.com).
    const domain = domainToASCII(parsed.domain)
    if (!domain || !normalizeDomain(domain)) return this.invalid(`"${contact.email}" is not on a domain`, linkedinUrl, notes)
    const address = `${local}@${domain}`
    if (GENERIC_INBOX.test(local)) return this.invalid(`${address} is a shared inbox, not a person's`, linkedinUrl, notes)
    if (vendorOfHost(domain)) return this.invalid(`${address} is on a PMS vendor's domain, not the company's`, linkedinUrl, notes)
    if (!ownDomains.some((own) => domain === own || domain.endsWith(`.${own}`))) {
      return this.invalid(`${address} is not on the company's domain (${ownDomains.join(', ')})`, linkedinUrl, notes)
    }

    const status = await this.mx(domain, signal)
    if (status === 'no_mx') notes.push(`${domain} accepts no mail (no MX records)`)
    if (status === 'unchecked') notes.push(`the MX records of ${domain} could not be read`)
    return {email: address, emailStatus: status, linkedinUrl, notes}
  }

  private invalid(note: string, linkedinUrl: string | null, notes: string[]): CheckedContact {
    return {email: null, emailStatus: 'invalid', linkedinUrl, notes: [...notes, `${note}: email dropped`]}
  }

  /** MX found -> valid_domain; none, a null MX (RFC 7505) or no such domain -> no_mx; the lookup failing -> unchecked. */
  private async mx(domain: string, signal: AbortSignal): Promise<EmailStatus> {
    try {
      const timeout = AbortSignal.timeout(MX_TIMEOUT_MS)
      const records = await abortable(this.io.resolveMx(domain, AbortSignal.any([signal, timeout])), AbortSignal.any([signal, timeout]))
      const usable = records.filter((r) => r.exchange && r.exchange !== '.')
      return usable.length > 0 ? 'valid_domain' : 'no_mx'
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      return code === 'ENOTFOUND' || code === 'ENODATA' ? 'no_mx' : 'unchecked'
    }
  }

  private linkedin(raw: string | null | undefined, notes: string[]): string | null {
    if (!raw) return null
    const hosts = this.linkedinHosts
    try {
      const url = new URL(/^https?:\/\//i.test(raw) ? raw : `https://${raw}`)
      const host = url.hostname.toLowerCase()
      const onLinkedIn = hosts.some((h) => host === h || host.endsWith(`.${h}`))
      const profile = /^\/in\/[^/]+\/?$/.exec(url.pathname)
      if (onLinkedIn && profile) return `https://${host}${url.pathname.replace(/\/$/, '')}`
    } catch {
      // not a URL
    }

    notes.push(`"${raw}" is not a LinkedIn profile URL (linkedin.com/in/...): dropped`)
    return null
  }
}

/** Checks against the real web (behind the fetch guard) and DNS (`dnsServer`, from RVX_DNS_SERVER; else the system's). */
export function webChecks(options: {allowPrivateFetch?: boolean; dnsServer?: string} = {}): WebChecks {
  return new WebChecks({
    async fetchPage(url, signal) {
      const page = await fetchPage(url, {signal, allowPrivate: options.allowPrivateFetch, dnsServer: options.dnsServer})
      return {url: page.url, status: page.status, html: page.html, text: page.text}
    },
    async resolveMx(domain) {
      const resolver = dnsResolver(options.dnsServer)
      try {
        return await (resolver ? resolver.resolveMx(domain) : dns.promises.resolveMx(domain))
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENODATA') return []
        throw error
      }
    },
  })
}

/** The company's website when it is on its own domain (a model cannot point the check elsewhere), else https://<domain>/. */
function homeUrl(company: CandidateCompany, domain: string): string {
  try {
    const url = new URL(company.website ?? '')
    if ((url.protocol === 'https:' || url.protocol === 'http:') && sameSite(url.hostname, domain)) return url.href
  } catch {
    // no usable website
  }

  return `https://${domain}/`
}

function sameSite(host: string, site: string): boolean {
  const h = host.toLowerCase().replace(/^www\./, '')
  return h === site || h.endsWith(`.${site}`)
}

function pageTitle(html: string): string {
  const m = /<title[^>]*>([^<]{0,200})/i.exec(html.slice(0, 20_000))
  return m ? m[1].replace(/\s+/g, ' ').trim() : ''
}

/** Domains of the mailto: links of a page. */
function mailtoDomains(html: string): string[] {
  const out = new Set<string>()
  for (const m of html.slice(0, 1_000_000).matchAll(/mailto:[^"'\s>?@]{1,64}@([a-z0-9.-]{1,253})/gi)) out.add(m[1].toLowerCase().replace(/\.$/, ''))
  return [...out].slice(0, 10)
}

function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(Object.assign(new Error('timed out'), {code: 'ETIMEOUT'}))
    signal.addEventListener('abort', () => reject(Object.assign(new Error('timed out'), {code: 'ETIMEOUT'})), {once: true})
    p.then(resolve, reject)
  })
}
