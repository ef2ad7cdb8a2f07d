/**
 * Domains as keys and as evidence, apart from the criteria schema so that code
 * which only needs these (discovery, the site checks) does not load zod.
 */
import {getDomain} from 'tldts'

/** Lower-case host without www., scheme, path or port: the key that dedupes companies. */
export function normalizeDomain(input: string): string {
  let s = input.trim().toLowerCase()
  s = s.replace(/^[a-z][a-z0-9+.-]*:\/\//, '')
  s = s.split(/[/?#]/)[0]
  s = s
    .replace(/:\d+$/, '')
    .replace(/^www\./, '')
    .replace(/\.$/, '')
  return s
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
