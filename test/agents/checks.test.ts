import assert from 'node:assert/strict'

import {webChecks} from '../../src/agents/checks.js'
import type {CandidateCompany, FoundContact} from '../../src/pipeline/provider.js'
import {homePage, WebWorld} from '../helpers/web-world.js'

/**
 * The deterministic checks against real HTTP and DNS servers on 127.0.0.1:
 * one local site per case. A portal, login or payment link on a vendor's
 * portal host is evidence; a link to a vendor's own site in running text is
 * not; a "powered by" badge is weak and says so.
 */
describe('checks: a company site and its contacts, as rvx judges them without a model', function () {
  this.timeout(30_000)
  const web = new WebWorld()
  const signal = new AbortController().signal

  before(async () => {
    await web.start()
    web
      .site('buildium-pm.example', {
        '/': homePage({
          name: 'Buildium PM',
          portal: 'https://buildiumpm.managebuilding.com/Resident/portal/login',
          footer: '512 Congress Ave, Austin, TX 78701',
        }),
      })
      .site('appfolio-pm.example', {
        '/': homePage({name: 'AppFolio PM', portal: 'https://bayou.appfolio.com/connect', links: '<a href="/blog/why-we-left">Blog</a>'}),
        '/blog/why-we-left': homePage({name: 'Blog', body: '<p>Why we left <a href="https://www.buildium.com/pricing">Buildium</a> for good.</p>'}),
      })
      .site('article-pm.example', {
        '/': homePage({
          name: 'Article PM',
          body: '<p>We compared <a href="https://www.buildium.com/">Buildium</a> and <a href="https://www.appfolio.com/">AppFolio</a> in depth.</p>',
        }),
      })
      .site('badge-pm.example', {'/': homePage({name: 'Badge PM', badge: {vendor: 'Buildium', url: 'https://www.buildium.com/'}})})
      .site('jsonld-pm.example', {
        '/': homePage({
          name: 'JSON-LD PM',
          portal: 'https://jl.rentvine.com/portal',
          jsonLd: {streetAddress: '1 Elm St', addressLocality: 'Tampa', addressRegion: 'Florida', postalCode: '33602'},
        }),
      })
      .site('contact-page-pm.example', {
        '/': homePage({name: 'Contact PM', links: '<a href="/contact-us">Contact</a> <a href="mailto:team@contactpm-mail.example">Mail us</a>'}),
        '/contact-us': homePage({name: 'Contact', body: '<p>Visit: 77 Oak Blvd, Raleigh, NC 27601</p>'}),
      })
      .site('nomail.example', {'/': homePage({name: 'No Mail PM'})}, {mx: false})
      .site('contactpm-mail.example', {'/': homePage({name: 'mail'})})
    web.dns.set('slow-mail.example', 'MX', 'drop')
  })

  after(async () => {
    await web.stop()
  })

  // The test web's names, from its own DNS server (as RVX_DNS_SERVER gives it).
  const checks = () => webChecks({allowPrivateFetch: true, dnsServer: web.dns.address})
  const company = (domain: string): CandidateCompany => ({name: domain, domain, website: web.url(domain), sources: []})
  const person = (email: string | null, linkedinUrl: string | null = null): FoundContact => ({
    fullName: 'Jo Owner',
    title: 'Owner',
    tier: 1,
    email,
    linkedinUrl,
    confidence: 'high',
    sources: [],
  })

  it("a portal link on the vendor's portal host is the PMS, with the link as evidence; the footer address is found", async () => {
    const site = await checks().checkSite(company('buildium-pm.example'), signal)
    assert.equal(site.site.verdict, 'match')
    assert.deepEqual([site.pms.vendor, site.pms.strength], ['Buildium', 'portal'])
    assert.match(site.pms.evidence[0].quote, /Pay Rent \/ Resident Login -> https:\/\/buildiumpm\.managebuilding\.com/)
    assert.deepEqual([site.address?.city, site.address?.state, site.address?.postalCode], ['Austin', 'TX', '78701'])
  })

  it("AppFolio's portal link wins over a blog post linking Buildium's pricing page (a mention is not evidence)", async () => {
    const site = await checks().checkSite(company('appfolio-pm.example'), signal)
    assert.deepEqual([site.pms.vendor, site.pms.strength], ['AppFolio', 'portal'])
    assert.deepEqual(site.pms.otherVendors, [], 'the mention is not counted for Buildium')
  })

  it("an article that links both vendors' own sites shows no PMS at all (unknown)", async () => {
    const site = await checks().checkSite(company('article-pm.example'), signal)
    assert.equal(site.pms.vendor, null)
  })

  it('a "powered by" badge is weak evidence, and says so', async () => {
    const site = await checks().checkSite(company('badge-pm.example'), signal)
    assert.deepEqual([site.pms.vendor, site.pms.strength], ['Buildium', 'badge'])
  })

  it('a schema.org PostalAddress in JSON-LD decides the location (a state name becomes its code)', async () => {
    const site = await checks().checkSite(company('jsonld-pm.example'), signal)
    assert.deepEqual([site.address?.street, site.address?.city, site.address?.state], ['1 Elm St', 'Tampa', 'FL'])
    assert.deepEqual([site.pms.vendor, site.pms.strength], ['RentVine', 'portal'])
  })

  it("reads the contact page for the address, and takes mailto domains as the company's own", async () => {
    const site = await checks().checkSite(company('contact-page-pm.example'), signal)
    assert.deepEqual([site.address?.city, site.address?.state], ['Raleigh', 'NC'])
    assert.match(site.address!.evidence.url, /\/contact-us$/)
    assert.deepEqual(site.ownDomains, ['contact-page-pm.example', 'contactpm-mail.example'])
  })

  it('a directory or social profile is never a company site (no fetch); a domain that does not resolve is unknown', async () => {
    const before = web.requests.length
    const yelp = await checks().checkSite({name: 'x', domain: 'yelp.com', sources: []}, signal)
    assert.equal(yelp.site.verdict, 'mismatch')
    assert.match(yelp.site.reason, /directory or social profile/)
    assert.equal(web.requests.length, before, 'nothing was fetched')
    const gone = await checks().checkSite(company('gone.example'), signal)
    assert.equal(gone.site.verdict, 'unknown')
    assert.match(gone.site.reason, /did not answer/)
  })

  it('emails: MX found, no MX, no such domain, lookup timing out, bad syntax, shared inboxes, other domains', async () => {
    const c = checks()
    const own = ['buildium-pm.example', 'nomail.example', 'missing.example', 'slow-mail.example']
    const status = async (email: string) => {
      const r = await c.checkContact(person(email), own, signal)
      return [r.email, r.emailStatus]
    }

    assert.deepEqual(await status('Jo.Owner@buildium-pm.example'), ['Jo.Owner@buildium-pm.example', 'valid_domain'])
    assert.deepEqual(await status('jo@nomail.example'), ['jo@nomail.example', 'no_mx'])
    assert.deepEqual(await status('jo@missing.example'), ['jo@missing.example', 'no_mx'])
    assert.deepEqual(await status('jo@slow-mail.example'), ['jo@slow-mail.example', 'unchecked'])
    assert.deepEqual(await status('jo@@buildium-pm.example'), [null, 'invalid'])
    assert.deepEqual(await status('info@buildium-pm.example'), [null, 'invalid'])
    assert.deepEqual(await status('jo@gmail.com'), [null, 'invalid'])
    assert.deepEqual(await status('jo@buildium.com'), [null, 'invalid'])
    assert.deepEqual(await c.checkContact(person(null), own, signal), {email: null, emailStatus: null, linkedinUrl: null, notes: []})
  })

  it('LinkedIn: only linkedin.com/in/... profiles are kept', async () => {
    const c = checks()
    const url = async (u: string) => (await c.checkContact(person(null, u), [], signal)).linkedinUrl
    assert.equal(await url('https://www.linkedin.com/in/jo-owner/'), 'https://www.linkedin.com/in/jo-owner')
    assert.equal(await url('linkedin.com/in/jo-owner'), 'https://linkedin.com/in/jo-owner')
    assert.equal(await url('https://www.linkedin.com/company/acme'), null)
    assert.equal(await url('https://linkedin.com.evil.example/in/jo'), null)
  })
})
