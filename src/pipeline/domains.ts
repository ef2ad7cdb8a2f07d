import {domainToASCII} from 'node:url'

import {parse as parsePublicSuffix} from 'tldts'

/**
 * Domains as keys and as evidence, apart from the criteria schema so that code
 * which only needs these (discovery, the site checks) does not load zod.
 */
import {getDomain} from 'tldts'

/** A domain name's limits (RFC 1035): 253 characters, labels of 1-63. */
const MAX_DOMAIN = 253
const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/

/**
 * The one parser of domains: a host as people, pages and models write it
 * (bare, or in a URL with scheme, www., port, path) to its key, or why it is
 * not a domain. UTS-46 (IDNA) mapping makes the Unicode, fullwidth and xn--
 * forms one key (bücher.example, ｂücher.example and xn--bcher-kva.example are
 * all xn--bcher-kva.example); userinfo, spaces, characters no host has,
 * invalid labels, IP addresses and a single label are refused.
 */
export function parseDomain(input: string): {domain: string} | {problem: string} {
  let s = input.trim()
  if (s.length > 2048) return {problem: `is ${s.length} characters long (a domain has at most ${MAX_DOMAIN})`}
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(s)
  if (scheme && !/^https?$/i.test(scheme[1])) return {problem: `is a URL with scheme ${scheme[1]}: (only http and https sites are researched)`}
  s = s.slice(scheme ? scheme[0].length : 0).split(/[/?#]/)[0]
  if (s.includes('@')) return {problem: 'has a user name in it (user@host): give the host alone'}
  if (/\s/.test(s) || s === '') return {problem: s === '' ? 'is empty' : 'has spaces in it'}
  s = s.replace(/:\d{1,5}$/, '')
  const ascii = domainToASCII(s)
    .replace(/\.$/, '')
    .replace(/^www\./, '')
  if (!ascii) return {problem: 'is not a domain name (characters or labels no domain has)'}
  if (ascii.length > MAX_DOMAIN) return {problem: `is longer than ${MAX_DOMAIN} characters`}
  const labels = ascii.split('.')
  if (labels.length < 2) return {problem: 'has a single label (a domain looks like acme-pm.com)'}
  if (!labels.every((l) => LABEL.test(l))) return {problem: 'has a label that is empty, too long, or has characters other than letters, digits and hyphens'}
  if (/^[0-9]+$/.test(labels.at(-1)!)) return {problem: 'is an IP address, not a domain'}
  return {domain: ascii}
}

/** The key of a domain, or '' when it is not one (callers skip those). */
export function normalizeDomain(input: string): string {
  const parsed = parseDomain(input)
  return 'domain' in parsed ? parsed.domain : ''
}

/**
 * The part of a domain its owner registered, by the public-suffix list
 * (shop.acme.co.uk -> acme.co.uk); null when there is none (a bare suffix).
 */
export function registrableDomain(input: string): string | null {
  const domain = normalizeDomain(input)
  return domain ? parsePublicSuffix(domain, {allowPrivateDomains: false}).domain : null
}

/**
 * Platforms whose customers each get a subdomain (site builders, property
 * managers' tenant portals) that the public-suffix list's private section does
 * not name: there the tenant's host, not the platform, is the company.
 */
export const SHARED_HOSTS = [
  'squarespace.com',
  'wordpress.com',
  'weebly.com',
  'godaddysites.com',
  'mystrikingly.com',
  'site123.me',
  'business.site',
  'jimdosite.com',
  'jimdofree.com',
  'webnode.com',
  'hs-sites.com',
  'wpengine.com',
  'managebuilding.com',
  'appfolio.com',
  'rentcafe.com',
  'securecafe.com',
  'propertyware.com',
  'rentmanager.com',
  'doorloop.com',
  'rentvine.com',
  'tenantcloud.com',
]

/**
 * The key one company has in a run, from a host as `normalizeDomain` gives it:
 * its registrable domain (`blog.acme.com` and `acme.com` are one company;
 * `acme.co.uk` is not `co.uk`), or, on a shared host (a private suffix of the
 * public-suffix list such as `wixsite.com`, or one of SHARED_HOSTS), the
 * tenant's host (`acme.wixsite.com`). A host with no registrable domain (an IP
 * address, `localhost`, a bare suffix) is its own key.
 */
export function companyKey(host: string): string {
  const shared = SHARED_HOSTS.find((p) => host.endsWith(`.${p}`))
  if (shared)
    return (
      host
        .slice(0, -shared.length - 1)
        .split('.')
        .pop() + `.${shared}`
    )
  return getDomain(host, {allowPrivateDomains: true}) ?? host
}

/** Directories, listings and social networks: a page there is about a company, never the company's own site. */
export const DIRECTORY_DOMAINS = [
  'yelp.com',
  'facebook.com',
  'linkedin.com',
  'bbb.org',
  'zillow.com',
  'apartments.com',
  'trulia.com',
  'realtor.com',
  'redfin.com',
  'rent.com',
  'hotpads.com',
  'zumper.com',
  'google.com',
  'instagram.com',
  'twitter.com',
  'x.com',
  'youtube.com',
  'tiktok.com',
  'nextdoor.com',
  'yellowpages.com',
  'manta.com',
  'angi.com',
  'angieslist.com',
  'thumbtack.com',
  'houzz.com',
  'mapquest.com',
  'indeed.com',
  'glassdoor.com',
  'crunchbase.com',
  'bizapedia.com',
  'opencorporates.com',
  'allpropertymanagement.com',
  'rentometer.com',
  'apartmentratings.com',
  'apartmentguide.com',
  'rentals.com',
  'craigslist.org',
  'wikipedia.org',
]

/** A domain that is a directory, a listing site or a social network (or a subdomain of one). */
export function isDirectoryDomain(domain: string): boolean {
  const d = domain.toLowerCase().replace(/\.$/, '')
  return DIRECTORY_DOMAINS.some((x) => d === x || d.endsWith(`.${x}`))
}
