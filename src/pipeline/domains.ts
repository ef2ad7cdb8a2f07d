/**
 * Domains as keys and as evidence, apart from the criteria schema so that code
 * which only needs these (discovery, the site checks) does not load zod.
 */

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
