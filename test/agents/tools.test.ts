import assert from 'node:assert/strict'
import http from 'node:http'
import type {AddressInfo} from 'node:net'

import {detectPms, PMS_VENDORS} from '../../src/agents/tools/detect-pms.js'
import {fetchPage} from '../../src/agents/tools/fetch-page.js'
import {isPrivateAddress} from '../../src/agents/tools/ssrf.js'
import {spawnScript, waitFor} from '../helpers/processes.js'

/** One portal host per vendor, as their customers' sites link to them. */
const PORTALS: Record<string, string> = {
  Buildium: 'https://acme.managebuilding.com/Resident/portal/login',
  AppFolio: 'https://acme.appfolio.com/connect/users/sign_in',
  Yardi: 'https://acme.rentcafe.com/residentservices/apartmentsforrent/userlogin.aspx',
  RentVine: 'https://acme.rentvine.com/portals/resident',
  Propertyware: 'https://acme.propertyware.com/pw/portals/acme/tenant.action',
  DoorLoop: 'https://app.doorloop.com/auth/login',
  'Rent Manager': 'https://acme.rentmanager.com/ResidentPortal',
  TenantCloud: 'https://acme.tenantcloud.com/login',
  RealPage: 'https://acme.realpage.com/portal',
  Entrata: 'https://acme.entrata.com/resident-portal',
  ResMan: 'https://acme.myresman.com/Portal/Access/SignIn',
}

describe('agent tools: fetch_page and detect_pms against a local site', function () {
  let server: http.Server
  let base: string

  before(async () => {
    server = http.createServer((req, res) => {
      const url = new URL(req.url!, 'http://x')
      const [, vendor, page] = url.pathname.split('/').map(decodeURIComponent)
      if (url.pathname === '/redirect') {
        res.writeHead(302, {location: '/Buildium/'}).end()
        return
      }

      if (url.pathname === '/big') {
        res.writeHead(200, {'content-type': 'text/plain'})
        res.end('x'.repeat(200_000))
        return
      }

      if (url.pathname === '/deep') {
        res.writeHead(200, {'content-type': 'text/html'})
        res.end(
          `<html><body><h1>Deep Homes PM</h1><p>Managing rentals since 2001.</p>${'<div>'.repeat(10_000)}Nested office hours${'</div>'.repeat(10_000)}<p>Call us today.</p></body></html>`,
        )
        return
      }

      if (url.pathname === '/evidence') {
        res.writeHead(200, {'content-type': 'text/html'})
        res.end(`<html><body>
          <p>We switched to <a href="https://www.buildium.com/">Buildium</a> in 2020.</p>
          <a href="https://acme.managebuilding.com/Resident/portal/login">Pay
             rent &amp; log in</a>
          <form action="https://acme.managebuilding.com/Resident/apps/payments"></form>
          <a href="/contact">Contact</a></body></html>`)
        return
      }

      if (url.pathname === '/slow') {
        setTimeout(() => res.end('late'), 2000)
        return
      }

      if (vendor === 'nowhere') {
        // A PM company's site whose portal page links to no vendor (it takes rent by check).
        res.writeHead(200, {'content-type': 'text/html; charset=utf-8'})
        if (page === 'residents')
          res.end('<html><body><h1>Residents</h1><p>Mail your rent check to our office. <a href="https://example.com/forms">Forms</a></p></body></html>')
        else
          res.end(
            '<html><body><h1>Nowhere Homes PM</h1><p>Family-owned since 1998.</p><a href="/nowhere/residents">Tenant Portal</a><a href="/nowhere/about">About</a></body></html>',
          )
        return
      }

      const portal = PORTALS[vendor]
      if (!portal) {
        res.writeHead(404).end('not found')
        return
      }

      res.writeHead(200, {'content-type': 'text/html; charset=utf-8'})
      if (page === 'residents') {
        res.end(`<html><body><h1>Residents</h1><p>Pay rent online: <a href="${portal}">Resident login</a></p></body></html>`)
      } else {
        // The home page has no vendor link itself: only a portal-looking link to follow.
        res.end(
          `<html><head><script>var x = 1</script></head><body><nav>Menu</nav><h1>${vendor} Homes PM</h1><p>Family-owned property management since 1998.</p><a href="/${vendor}/residents">Tenant Portal</a><a href="/${vendor}/about">About</a></body></html>`,
        )
      }
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })

  after(() => server.close())

  for (const vendor of Object.keys(PORTALS)) {
    it(`detects ${vendor} from the portal page linked from the home page`, async () => {
      const result = await detectPms('acme.example', {baseUrl: `${base}/${encodeURIComponent(vendor)}/`, allowPrivate: true})
      assert.equal(result.pms, vendor)
      assert.equal(result.evidence[0].page, `${base}/${encodeURIComponent(vendor)}/residents`)
      assert.equal(result.pagesChecked[0], `${base}/${encodeURIComponent(vendor)}/`)
      assert.ok(result.pagesChecked.includes(`${base}/${encodeURIComponent(vendor)}/residents`))
    })
  }

  it('knows every vendor in domain.md', () => {
    assert.deepEqual(PMS_VENDORS.map((s) => s.vendor).sort(), Object.keys(PORTALS).sort())
  })

  it('says unknown (null) when the site and its portal page link to no vendor, never a guess', async () => {
    const result = await detectPms('acme.example', {baseUrl: `${base}/nowhere/`, allowPrivate: true})
    assert.equal(result.pms, null)
    assert.deepEqual(result.evidence, [])
    assert.deepEqual(result.pagesChecked, [`${base}/nowhere/`, `${base}/nowhere/residents`], 'it looked at the home page and followed the portal link')
  })

  it('turns HTML into readable text, follows redirects, and cuts at the size limit', async () => {
    const page = await fetchPage(`${base}/redirect`, {allowPrivate: true})
    assert.equal(page.url, `${base}/Buildium/`)
    assert.match(page.text, /Buildium Homes PM/)
    assert.match(page.text, /Family-owned property management since 1998\./)
    assert.doesNotMatch(page.text, /var x = 1|Menu|<a /)
    const big = await fetchPage(`${base}/big`, {allowPrivate: true, maxBytes: 10_000})
    assert.equal(big.truncated, true)
    assert.equal(big.text.length, 10_000)
  })

  it('keeps the text of a page of 10,000 nested elements (html-to-text overflowed its stack on it)', async () => {
    const page = await fetchPage(`${base}/deep`, {allowPrivate: true})
    assert.match(page.text, /Deep Homes PM/)
    assert.match(page.text, /Managing rentals since 2001\./)
    assert.match(page.text, /Nested office hours/)
    assert.match(page.text, /Call us today\./)
  })

  it("reports each piece of evidence with its link, host, anchor text and whether it is a portal or the vendor's own site", async () => {
    const result = await detectPms('acme.example', {baseUrl: `${base}/evidence`, allowPrivate: true})
    assert.equal(result.pms, 'Buildium')
    assert.deepEqual(
      result.evidence.map(({vendor, kind, url, host, text}) => ({vendor, kind, url, host, text})),
      [
        {vendor: 'Buildium', kind: 'marketing', url: 'https://www.buildium.com/', host: 'www.buildium.com', text: 'Buildium'},
        {
          vendor: 'Buildium',
          kind: 'portal',
          url: 'https://acme.managebuilding.com/Resident/portal/login',
          host: 'acme.managebuilding.com',
          text: 'Pay rent & log in',
        },
        {vendor: 'Buildium', kind: 'portal', url: 'https://acme.managebuilding.com/Resident/apps/payments', host: 'acme.managebuilding.com', text: ''},
      ],
    )
    assert.ok(result.evidence.every((e) => e.page === `${base}/evidence`))
  })

  it('gives up after its time limit, as a transient error', async () => {
    await assert.rejects(
      fetchPage(`${base}/slow`, {allowPrivate: true, timeoutMs: 200}),
      (e: Error) => e.name === 'TransientError' && /timed out after 200 ms/.test(e.message),
    )
  })

  it('refuses loopback, private and metadata addresses by default (before connecting)', async () => {
    for (const target of [`${base}/Buildium/`, 'http://10.0.0.1/', 'http://[::1]/', 'http://192.168.1.1/', 'http://localhost/']) {
      await assert.rejects(
        fetchPage(target, {allowPrivate: false}),
        (e: Error) => e.name === 'PermanentError' && /refusing to fetch .*RVX_ALLOW_PRIVATE_FETCH=1/.test(e.message),
        target,
      )
    }

    // Metadata is refused with RVX_ALLOW_PRIVATE_FETCH=1 too, so the message does not suggest it.
    await assert.rejects(
      fetchPage('http://169.254.169.254/latest/meta-data/', {allowPrivate: false}),
      (e: Error) => e.name === 'PermanentError' && /refusing to fetch .*cloud metadata.*never fetched$/.test(e.message),
    )

    await assert.rejects(fetchPage('file:///etc/passwd', {allowPrivate: true}), /only http and https/)
  })

  it('classifies addresses', () => {
    for (const a of [
      '127.0.0.1',
      '10.1.2.3',
      '172.16.0.1',
      '192.168.0.10',
      '169.254.169.254',
      '100.64.0.1',
      '0.0.0.0',
      '::1',
      'fd00::1',
      'fe80::1',
      '::ffff:127.0.0.1',
    ])
      assert.equal(isPrivateAddress(a), true, a)
    for (const a of ['93.184.216.34', '8.8.8.8', '2606:4700::1111', '172.32.0.1']) assert.equal(isPrivateAddress(a), false, a)
  })
})

describe('detect_pms and fetch_page on a 1 MB hostile page', function () {
  this.timeout(90_000)
  let server: http.Server
  let served = 0

  // The shapes that froze the old scan or a tree builder: a 400 KB run of [\w-] (the vendor patterns backtracked
  // quadratically on it), 80,000 unclosed tags and 80,000 stray end tags (a search of the open-element stack per
  // tag), then a real portal link.
  const page = `<html><body><p>${'a-'.repeat(200_000)}</p>${'<b>'.repeat(80_000)}${'</x>'.repeat(80_000)}<a href="https://acme.managebuilding.com/Resident">Resident portal</a></body></html>`

  before(async () => {
    assert.ok(page.length > 900_000 && page.length < 1_000_000, 'just under the 1 MB page limit, so the link is read')
    server = http.createServer((_req, res) => {
      res.writeHead(200, {'content-type': 'text/html'})
      res.end(page, () => served++)
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  })

  after(() => {
    server.closeAllConnections()
    server.close()
  })

  it('is read while the process keeps answering (its event loop never freezes), and the portal is still found', async () => {
    // In a child process: a frozen event loop there cannot freeze this test runner, and this side can tell.
    const child = spawnScript('test/helpers/detect-pms-child.ts', {RVX_TEST_PMS_URL: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`})
    const pongs = () =>
      child
        .stdout()
        .split('\n')
        .filter((l) => l === 'pong').length
    try {
      // Once after detect_pms got the page, once after fetch_page got it: each time the process must answer.
      for (const n of [1, 2]) {
        await waitFor(`the page to be served (${n})`, async () => served >= n, 30_000, 20)
        child.child.kill('SIGUSR2')
        await waitFor(`the process to answer a ping from its event loop after reading the page (${n})`, async () => pongs() >= n, 20_000, 20)
      }

      const pms = JSON.parse(await waitFor('detect_pms to finish', async () => /^pms (.*)$/m.exec(child.stdout())?.[1], 20_000, 50))
      assert.equal(pms.pms, 'Buildium')
      assert.deepEqual(
        pms.evidence.map((e: {kind: string; host: string; text: string}) => [e.kind, e.host, e.text]),
        [['portal', 'acme.managebuilding.com', 'Resident portal']],
      )
      const text = JSON.parse(await waitFor('fetch_page to finish', async () => /^text (.*)$/m.exec(child.stdout())?.[1], 20_000, 50))
      assert.match(text, /Resident portal$/)
    } finally {
      child.child.kill('SIGKILL')
      await child.exited
    }
  })
})
