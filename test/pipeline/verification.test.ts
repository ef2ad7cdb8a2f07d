import assert from 'node:assert/strict'

import type {CompanyResearch, SiteFacts} from '../../src/pipeline/provider.js'
import {verifyCompany} from '../../src/pipeline/verification.js'

const HOME = 'https://acme.example/'
const site = (over: Partial<SiteFacts> = {}): SiteFacts => ({
  domain: 'acme.example',
  site: {verdict: 'match', reason: 'answers', evidence: [{url: HOME, quote: 'Acme PM'}]},
  pms: {vendor: 'Buildium', strength: 'portal', evidence: [{url: HOME, quote: 'Pay Rent -> https://acme.managebuilding.com/'}], otherVendors: []},
  address: {
    street: '1 Main St',
    city: 'Austin',
    state: 'TX',
    postalCode: '78701',
    evidence: {url: 'https://acme.example/contact', quote: '1 Main St, Austin, TX 78701'},
  },
  ownDomains: ['acme.example'],
  pages: [HOME, 'https://acme.example/contact'],
  ...over,
})
const research = (over: Partial<CompanyResearch> = {}): CompanyResearch => ({
  verdicts: {},
  portfolio: 'residential',
  unitsEstimate: 120,
  employeesEstimate: 12,
  confidence: 'high',
  reasons: [],
  sources: [],
  seen: [HOME, 'https://acme.example/about'],
  ...over,
})

describe('verification: verdicts from checks and evidence, qualification and score computed', () => {
  const criteria = {pms: 'Buildium', state: 'TX', units_min: 50}

  it('checks decide PMS and location; the model decides units on evidence it read; all hard criteria match: qualified', () => {
    const v = verifyCompany({
      criteria,
      acceptUnknown: [],
      site: site(),
      research: research({
        verdicts: {pms: {verdict: 'mismatch', evidence: []}, units: {verdict: 'match', evidence: [{url: 'https://acme.example/about', quote: '120 units'}]}},
      }),
    })
    assert.deepEqual(Object.fromEntries(Object.entries(v.verdicts).map(([k, x]) => [k, [x.verdict, x.by]])), {
      site: ['match', 'check'],
      pms: ['match', 'check'],
      state: ['match', 'check'],
      units: ['match', 'model'],
    })
    assert.equal(v.qualified, true)
    assert.ok(v.score > 30)
  })

  it('a lying model cannot pass: another vendor on the portal is a mismatch, an address in another state too', () => {
    const v = verifyCompany({
      criteria,
      acceptUnknown: [],
      site: site({
        pms: {vendor: 'AppFolio', strength: 'portal', evidence: [{url: HOME, quote: 'x.appfolio.com'}], otherVendors: []},
        address: {street: null, city: 'Tampa', state: 'FL', postalCode: null, evidence: {url: HOME, quote: 'Tampa, FL 33602'}},
      }),
      research: research({
        verdicts: {
          pms: {verdict: 'match', evidence: [{url: HOME, quote: 'we use Buildium'}]},
          state: {verdict: 'match', evidence: [{url: HOME, quote: 'Texas'}]},
        },
      }),
    })
    assert.equal(v.verdicts.pms?.verdict, 'mismatch')
    assert.equal(v.verdicts.state?.verdict, 'mismatch')
    assert.equal(v.qualified, false)
    assert.deepEqual(v.disqualifiedBy.sort(), ['pms', 'state', 'units'])
    assert.ok(v.score <= 30, 'a company that does not qualify scores at most 30')
  })

  it('evidence the model never read is dropped, and a match without evidence left is unknown', () => {
    const v = verifyCompany({
      criteria: {state: 'TX'},
      acceptUnknown: [],
      site: site({address: null}),
      research: research({verdicts: {state: {verdict: 'match', evidence: [{url: 'https://certified-leads.example/acme', quote: 'TX, certified'}]}}}),
    })
    assert.equal(v.verdicts.state?.verdict, 'unknown')
    assert.match(v.reasons.join(' '), /1 cited source dropped: not read during the research/)
    assert.equal(v.qualified, false)
    assert.deepEqual(v.disqualifiedBy, ['state'])
  })

  it('--accept-unknown lets an unknown pass for the named criteria only', () => {
    const noPms = site({pms: {vendor: null, strength: null, evidence: [], otherVendors: []}})
    assert.equal(verifyCompany({criteria: {pms: 'Buildium'}, acceptUnknown: [], site: noPms, research: research()}).qualified, false)
    assert.equal(verifyCompany({criteria: {pms: 'Buildium'}, acceptUnknown: ['pms'], site: noPms, research: research()}).qualified, true)
    assert.equal(
      verifyCompany({criteria: {pms: 'Buildium', units_min: 10}, acceptUnknown: ['pms'], site: noPms, research: research()}).qualified,
      false,
      'units still unknown',
    )
  })

  it('a portfolio the fit rules exclude disqualifies whatever else matches; a "powered by" badge matches but says it is weak', () => {
    const hoa = verifyCompany({criteria: {pms: 'Buildium'}, acceptUnknown: [], site: site(), research: research({portfolio: 'hoa_only'})})
    assert.deepEqual([hoa.qualified, hoa.disqualifiedBy], [false, ['portfolio']])
    const badge = verifyCompany({
      criteria: {pms: 'Buildium'},
      acceptUnknown: [],
      site: site({pms: {vendor: 'Buildium', strength: 'badge', evidence: [], otherVendors: []}}),
      research: research(),
    })
    assert.equal(badge.verdicts.pms?.verdict, 'match')
    assert.match(badge.verdicts.pms!.note!, /weak: only a "powered by" badge/)
  })

  it('a directory or a site that does not answer: the site verdict keeps it out, and no PMS can be verified', () => {
    const v = verifyCompany({
      criteria: {pms: 'Buildium'},
      acceptUnknown: [],
      site: site({
        site: {verdict: 'unknown', reason: 'acme.example did not answer', evidence: []},
        pms: {vendor: null, strength: null, evidence: [], otherVendors: []},
        address: null,
        pages: [],
      }),
      research: null,
    })
    assert.equal(v.verdicts.pms?.verdict, 'unknown')
    assert.deepEqual(v.disqualifiedBy.sort(), ['pms', 'site'])
  })
})
