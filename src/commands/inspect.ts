import {Args, Flags} from '@oclif/core'

import {checkEnvironment} from '../agents/environment.js'
import {inspect, type Inspection} from '../agents/inspect.js'
import {parseDnsServer} from '../agents/tools/resolve.js'
import {privateFetchAllowed} from '../agents/tools/ssrf.js'
import {BaseCommand} from '../cli/base-command.js'
import {withSignals} from '../cli/signals.js'

export default class Inspect extends BaseCommand<typeof Inspect> {
  static override summary = "Run rvx's deterministic checks on a company site (and emails): PMS links, address, own site, email status."
  static override description = `The same checks research uses to overrule a model: the PMS its portal, login and payment links point at (a "powered by" badge is weak evidence; a link to a vendor's site in running text is none), a postal address on its own pages (JSON-LD or the text), whether the domain answers and is the company's own site (not a directory or social profile), and for --email: syntax, shared inboxes, the company's own domain, MX records. Pages are fetched behind the same address guard as research (public addresses only). No database is used.`
  static override examples = [
    '<%= config.bin %> inspect acme-pm.com',
    '<%= config.bin %> inspect https://www.acme-pm.com/contact --email jane@acme-pm.com --email info@acme-pm.com',
    '<%= config.bin %> inspect acme-pm.com --json',
  ]
  static override enableJsonFlag = true
  static override strict = false
  static override args = {target: Args.string({description: 'Domain or URL of a company site (one or more).', required: true})}
  static override flags = {
    email: Flags.string({summary: 'An email address to check against the sites given (repeat for more).', multiple: true}),
  }

  async run(): Promise<Inspection> {
    checkEnvironment(this.env)
    const abort = new AbortController()
    const {result} = await withSignals(
      () => abort.abort(),
      () =>
        inspect(this.positional, this.flags.email ?? [], {
          signal: abort.signal,
          allowPrivateFetch: privateFetchAllowed(this.env),
          dnsServer: parseDnsServer(this.env.RVX_DNS_SERVER),
        }),
    )
    for (const s of result.sites) {
      this.out(s.domain)
      this.out(`  site:     ${s.site.verdict}: ${s.site.reason}`)
      const pms = s.pms.vendor
        ? `${s.pms.vendor} (${s.pms.strength === 'portal' ? 'portal link' : 'only a "powered by" badge: weak'})${s.pms.evidence[0] ? `: ${s.pms.evidence[0].quote} on ${s.pms.evidence[0].url}` : ''}`
        : 'unknown: no portal, login or payment link of any PMS'
      this.out(`  pms:      ${pms}${s.pms.otherVendors.length > 0 ? `; also linked: ${s.pms.otherVendors.join(', ')}` : ''}`)
      this.out(`  address:  ${s.address ? `${s.address.evidence.quote} (${s.address.evidence.url})` : 'none found on its pages'}`)
      this.out(`  domains:  ${s.ownDomains.join(', ')}`)
      this.out(`  pages:    ${s.pages.length > 0 ? s.pages.join(', ') : 'none read'}`)
    }

    for (const e of result.emails) {
      this.out(`${e.address}: ${e.emailStatus ?? 'none'}${e.notes.length > 0 ? ` (${e.notes.join('; ')})` : ''}`)
    }

    return result
  }
}
