import {normalizeDomain, parseDomain} from '../pipeline/domains.js'
import type {CheckedContact, SiteFacts} from '../pipeline/provider.js'
import {UsageError} from '../shared/errors.js'
import {webChecks} from './checks.js'

export interface Inspection {
  sites: SiteFacts[]
  emails: Array<{address: string; checkedAgainst: string[]} & CheckedContact>
}

/** A domain or URL as people type it: "acme.com", "https://www.acme.com/contact". */
export function inspectTarget(text: string): {domain: string; website: string | null} {
  const trimmed = text.trim()
  const parsed = parseDomain(trimmed)
  if ('problem' in parsed) {
    const shown = JSON.stringify(trimmed.length > 80 ? `${trimmed.slice(0, 80)}...` : trimmed)
    throw new UsageError(`${shown} ${parsed.problem}: use a domain or http(s) URL, e.g. acme-pm.com or https://acme-pm.com/contact`, {field: 'target'})
  }

  return {domain: parsed.domain, website: /^https?:\/\//i.test(trimmed) ? trimmed : null}
}

/**
 * The deterministic checks for people: each site's PMS links, address and
 * own-site check, and each email's checks against the domains those sites
 * show as their own (or, with no site given, the email's own domain).
 */
export async function inspect(
  targets: string[],
  emails: string[],
  options: {signal: AbortSignal; allowPrivateFetch?: boolean; dnsServer?: string},
): Promise<Inspection> {
  const checks = webChecks({allowPrivateFetch: options.allowPrivateFetch, dnsServer: options.dnsServer})
  const sites: SiteFacts[] = []
  for (const target of targets.map(inspectTarget)) {
    sites.push(await checks.checkSite({name: target.domain, domain: target.domain, website: target.website, sources: []}, options.signal))
  }

  const own = [...new Set(sites.flatMap((s) => s.ownDomains))]
  const checked: Inspection['emails'] = []
  for (const address of emails) {
    const against = own.length > 0 ? own : [normalizeDomain(address.split('@').pop() ?? '')]
    const result = await checks.checkContact({fullName: address, title: '', tier: 4, email: address, confidence: 'low', sources: []}, against, options.signal)
    checked.push({address, checkedAgainst: against, ...result})
  }

  return {sites, emails: checked}
}
