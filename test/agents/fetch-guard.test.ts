import assert from 'node:assert/strict'
import http from 'node:http'
import type {AddressInfo} from 'node:net'

import {fetchPage, type FetchOptions} from '../../src/agents/tools/fetch-page.js'
import {checkAddress, privateFetchAllowed, refusal} from '../../src/agents/tools/ssrf.js'
import {type Canary, startCanary} from '../helpers/capture-servers.js'
import {FakeDns} from '../helpers/dns-server.js'

/** Every form of "this machine" or "not the public internet" that once got past the guard, or might. */
function probes(port: number): Array<[string, string]> {
  return [
    ['IPv4-mapped IPv6, dotted (the URL parser turns it into ::ffff:7f00:1)', `http://[::ffff:127.0.0.1]:${port}/`],
    ['IPv4-mapped IPv6, written out in full', `http://[0:0:0:0:0:ffff:127.0.0.1]:${port}/`],
    ['IPv4-mapped IPv6, hex', `http://[::ffff:7f00:1]:${port}/`],
    ['IPv4-mapped private address', `http://[::ffff:10.0.0.1]:${port}/`],
    ['IPv4-translated IPv6', `http://[::ffff:0:7f00:1]:${port}/`],
    ['IPv4-compatible IPv6 (::/96)', `http://[::127.0.0.1]:${port}/`],
    ['NAT64 64:ff9b::/96 carrying 127.0.0.1', `http://[64:ff9b::127.0.0.1]:${port}/`],
    ['NAT64 local-use 64:ff9b:1::/48', `http://[64:ff9b:1::7f00:1]:${port}/`],
    ['6to4 carrying 127.0.0.1', `http://[2002:7f00:1::1]:${port}/`],
    ['6to4 carrying 192.168.1.1', `http://[2002:c0a8:101::1]:${port}/`],
    ['site-local fec0::/10', `http://[fec0::1]:${port}/`],
    ['discard-only 100::/64', `http://[100::1]:${port}/`],
    ['documentation 2001:db8::/32', `http://[2001:db8::1]:${port}/`],
    ['Teredo 2001::/32', `http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]:${port}/`],
    ['unique-local fc00::/7', `http://[fd12:3456::1]:${port}/`],
    ['IPv6 loopback', `http://[::1]:${port}/`],
    ['IPv6 unspecified', `http://[::]:${port}/`],
    ['IPv4 loopback', `http://127.0.0.1:${port}/`],
    ['IPv4 loopback, decimal', `http://2130706433:${port}/`],
    ['IPv4 loopback, hex', `http://0x7f.1:${port}/`],
    ['IPv4 loopback, octal', `http://0177.0.0.1:${port}/`],
    ['IPv4 unspecified', `http://0.0.0.0:${port}/`],
    ['a private IPv4 address', `http://10.1.2.3:${port}/`],
    ['carrier-grade NAT', `http://100.64.0.1:${port}/`],
    ['localhost (system resolver)', `http://localhost:${port}/`],
  ]
}

/** Cloud metadata in every dress: refused even with RVX_ALLOW_PRIVATE_FETCH=1. */
function metadataProbes(port: number): Array<[string, string]> {
  return [
    ['169.254.169.254', `http://169.254.169.254:${port}/latest/meta-data/`],
    ['169.254.169.254, IPv4-mapped hex', `http://[::ffff:a9fe:a9fe]:${port}/`],
    ['169.254.169.254, IPv4-mapped dotted', `http://[::ffff:169.254.169.254]:${port}/`],
    ['169.254.169.254 through NAT64', `http://[64:ff9b::a9fe:a9fe]:${port}/`],
    ['169.254.169.254 through 6to4', `http://[2002:a9fe:a9fe::1]:${port}/`],
    ['169.254.169.254, decimal', `http://2852039166:${port}/`],
    ['ECS task metadata 169.254.170.2', `http://169.254.170.2:${port}/v2/credentials`],
    ['AWS IMDS over IPv6', `http://[fd00:ec2::254]:${port}/latest/meta-data/`],
    ['Alibaba Cloud metadata', `http://100.100.100.200:${port}/latest/meta-data/`],
  ]
}

const REFUSED = /^refusing to fetch .+: .+ \(set RVX_ALLOW_PRIVATE_FETCH=1 to allow private addresses\)$/
const METADATA = /^refusing to fetch .+: .*a cloud metadata or link-local address, never fetched$/

describe('fetch guard: one address check for every connection (canary on 127.0.0.1)', function () {
  let canary: Canary
  let redirector: http.Server
  let redirectorOrigin: string
  let redirectorHits: string[]
  const dns = new FakeDns()

  before(async () => {
    canary = await startCanary()
    await dns.start()
    redirectorHits = []
    redirector = http.createServer((req, res) => {
      redirectorHits.push(req.url!)
      const to = new URL(req.url!, 'http://x').searchParams.get('to')
      res.writeHead(302, {location: to ?? '/'}).end()
    })
    await new Promise<void>((resolve) => redirector.listen(0, '127.0.0.1', resolve))
    redirectorOrigin = `http://127.0.0.1:${(redirector.address() as AddressInfo).port}`
  })

  after(async () => {
    await canary.close()
    await dns.stop()
    redirector.closeAllConnections()
    redirector.close()
  })

  beforeEach(() => {
    dns.reset()
    redirectorHits.length = 0
    canary.connections = 0
    canary.requests.length = 0
  })

  afterEach(function () {
    // Whatever the test, nothing may have reached the canary (except the one test that opens the guard on purpose).
    if (this.currentTest?.title.startsWith('with RVX_ALLOW_PRIVATE_FETCH=1, still reaches')) return
    assert.equal(canary.connections, 0, `the canary was reached: ${canary.requests.join(', ')}`)
  })

  // Bounded: on a broken guard a probe might try to connect somewhere unroutable.
  const guarded: FetchOptions = {allowPrivate: false, timeoutMs: 3000}

  for (const [form, url] of probes(0)) {
    it(`refuses ${form} before connecting`, async () => {
      const target = url.replace(':0/', `:${canary.port}/`)
      await assert.rejects(fetchPage(target, guarded), (e: Error) => e.name === 'PermanentError' && REFUSED.test(e.message), target)
    })
  }

  it('refuses every form as a redirect target too: the first hop is fetched, the second never', async () => {
    for (const [form, url] of probes(canary.port)) {
      const start = `${redirectorOrigin}/hop?to=${encodeURIComponent(url)}`
      const before = redirectorHits.length
      await assert.rejects(fetchPage(start, {...guarded, allowOrigins: [redirectorOrigin]}), (e: Error) => REFUSED.test(e.message), form)
      assert.equal(redirectorHits.length, before + 1, `the first hop was fetched (${form})`)
    }
  })

  for (const [form, url] of metadataProbes(0)) {
    it(`refuses cloud metadata (${form}) even with RVX_ALLOW_PRIVATE_FETCH=1, and says it is never fetched`, async () => {
      const target = url.replace(':0/', `:${canary.port}/`)
      await assert.rejects(fetchPage(target, {...guarded, allowPrivate: true}), (e: Error) => e.name === 'PermanentError' && METADATA.test(e.message), target)
    })
  }

  it('refuses cloud metadata as a redirect target and behind a name, with RVX_ALLOW_PRIVATE_FETCH=1', async () => {
    dns.set('metadata.test', 'A', ['169.254.169.254'])
    dns.set('metadata6.test', 'AAAA', ['fd00:ec2::254'])
    for (const url of [...metadataProbes(canary.port).map(([, u]) => u), `http://metadata.test:${canary.port}/`, `http://metadata6.test:${canary.port}/`]) {
      await assert.rejects(
        fetchPage(`${redirectorOrigin}/hop?to=${encodeURIComponent(url)}`, {...guarded, allowPrivate: true, dnsServer: dns.address}),
        (e: Error) => METADATA.test(e.message),
        url,
      )
    }

    assert.equal(dns.count('metadata.test', 'A'), 1)
  })

  it('with RVX_ALLOW_PRIVATE_FETCH=1, still reaches a private address (the switch works)', async () => {
    const page = await fetchPage(`http://127.0.0.1:${canary.port}/`, {...guarded, allowPrivate: true})
    assert.match(page.text, /canary: internal page/)
    assert.equal(canary.connections, 1)
  })

  it('refuses a name whose answers include a private address, whatever else it answers, before connecting', async () => {
    dns.set('loopback.test', 'A', ['127.0.0.1'])
    dns.set('mapped.test', 'AAAA', ['::ffff:127.0.0.1'])
    dns.set('nat64.test', 'AAAA', ['64:ff9b::7f00:1'])
    dns.set('mixed.test', 'A', ['93.184.216.34', '127.0.0.1'])
    dns.set('mixed6.test', 'A', ['93.184.216.34'])
    dns.set('mixed6.test', 'AAAA', ['::1'])
    for (const name of ['loopback.test', 'mapped.test', 'nat64.test', 'mixed.test', 'mixed6.test']) {
      const url = `http://${name}:${canary.port}/`
      await assert.rejects(
        fetchPage(url, {...guarded, dnsServer: dns.address}),
        (e: Error) => REFUSED.test(e.message) && e.message.includes(`${name} resolves to `),
        name,
      )
      await assert.rejects(
        fetchPage(`${redirectorOrigin}/hop?to=${encodeURIComponent(url)}`, {...guarded, dnsServer: dns.address, allowOrigins: [redirectorOrigin]}),
        (e: Error) => REFUSED.test(e.message),
        `${name} as a redirect target`,
      )
    }
  })

  it('DNS rebinding: a name that answers a public address first and 127.0.0.1 after never reaches the canary', async () => {
    // 93.184.216.34 is public, so the guard lets the first connection go there; binding the socket to
    // 127.0.0.1 makes that connect fail on this machine instead of leaving it.
    dns.set('rebind.test', 'A', ['93.184.216.34'], ['127.0.0.1'])
    dns.set('rebind.test', 'AAAA', [])
    const options: FetchOptions = {...guarded, dnsServer: dns.address, localAddress: '127.0.0.1'}
    const url = `http://rebind.test:${canary.port}/`

    const first = await fetchPage(url, options).catch((e: Error) => e)
    assert.ok(first instanceof Error && !REFUSED.test(first.message), `the public answer passed the check: ${(first as Error).message}`)
    assert.match(first.message, /93\.184\.216\.34/, 'the socket dialled the address that was checked')
    assert.equal(dns.count('rebind.test', 'A'), 1, 'resolved once for the connection: no second lookup to rebind')

    await assert.rejects(
      fetchPage(url, options),
      (e: Error) => REFUSED.test(e.message) && /rebind\.test resolves to 127\.0\.0\.1, a loopback address/.test(e.message),
    )
    await assert.rejects(fetchPage(`${redirectorOrigin}/hop?to=${encodeURIComponent(url)}`, {...options, allowOrigins: [redirectorOrigin]}), (e: Error) =>
      REFUSED.test(e.message),
    )
  })

  it('says when a name does not resolve, as a permanent error', async () => {
    await assert.rejects(
      fetchPage(`http://nowhere.test:${canary.port}/`, {...guarded, dnsServer: dns.address}),
      (e: Error) => e.name === 'PermanentError' && e.message === 'cannot resolve nowhere.test',
    )
  })
})

describe('fetch guard: address classification', () => {
  it('allows globally routable unicast only, looking inside the forms that carry IPv4', () => {
    for (const a of [
      '93.184.216.34',
      '8.8.8.8',
      '172.32.0.1',
      '2606:4700::1111',
      '2001:4860:4860::8888',
      '::ffff:8.8.8.8',
      '64:ff9b::808:808',
      '2002:808:808::1',
    ]) {
      assert.equal(checkAddress(a).allowed, true, a)
    }

    for (const a of [
      '::ffff:7f00:1',
      '::ffff:127.0.0.1',
      '::7f00:1',
      '::ffff:0:7f00:1',
      '64:ff9b::a00:1',
      '64:ff9b:1:7f00:0:100::',
      '2002:a00:1::',
      'fec0::1',
      '100::1',
      '2001:db8::1',
      '3fff::1',
      '4000::1',
      '192.0.2.1',
      '198.18.0.1',
      '240.0.0.1',
      '255.255.255.255',
      '224.0.0.1',
    ]) {
      assert.equal(checkAddress(a).allowed, false, a)
    }
  })

  it('names what an embedded address is', () => {
    assert.equal(checkAddress('::ffff:7f00:1').reason, '::ffff:7f00:1 (carrying 127.0.0.1), a loopback address')
    assert.equal(checkAddress('2002:c0a8:101::1').reason, '2002:c0a8:101::1 (carrying 192.168.1.1), a private address')
    assert.equal(checkAddress('::ffff:a9fe:a9fe', true).metadata, true)
    assert.equal(checkAddress('192.168.1.1', true).allowed, true)
  })

  // Survivors of mutation testing (docs/mutation-testing.md): each embedding is looked into for metadata addresses
  // even where private ones are allowed, and each refusal says what the address is.
  it('with private fetches allowed, every embedding of a metadata address is still refused as one', () => {
    for (const a of [
      '::ffff:169.254.169.254', // IPv4-mapped
      '::ffff:0:a9fe:a9fe', // IPv4-translated (RFC 6145)
      '::a9fe:a9fe', // IPv4-compatible
      '64:ff9b::a9fe:a9fe', // NAT64, well-known prefix
      '64:ff9b:1:a9fe:a9:fe00::', // NAT64 local use, after a /48
      '64:ff9b:1::a9fe:a9fe', // NAT64 local use, in the last 32 bits
      '2002:a9fe:a9fe::', // 6to4
      '2001:0:a9fe:a9fe::', // Teredo server
      '2001:0:102:304::5601:5601', // Teredo client (stored inverted)
    ]) {
      const verdict = checkAddress(a, true)
      assert.deepEqual({allowed: verdict.allowed, metadata: verdict.metadata}, {allowed: false, metadata: true}, `${a}: ${verdict.reason}`)
      assert.equal(verdict.reason, `${a} (carrying 169.254.169.254), a cloud metadata or link-local address, never fetched`)
    }

    // What they carry otherwise is private, and allowed then.
    for (const a of ['::ffff:0:a00:1', '64:ff9b:1::a00:1', '2001:0:a00:1::', '2001:0:102:304::f5ff:fffe']) assert.equal(checkAddress(a, true).allowed, true, a)
  })

  it('says why each address is refused', () => {
    for (const [a, reason] of [
      ['not-an-ip', 'not-an-ip, not an IP address'],
      ['100.64.0.1', '100.64.0.1, a carrier-grade NAT address'],
      ['198.18.0.1', '198.18.0.1, a reserved or documentation address'],
      ['::1', '::1, a loopback address'],
      ['::', '::, an unspecified address'],
      ['::2', '::2, an IPv4-compatible address (deprecated, never public)'],
      ['::7f00:1', '::7f00:1, an IPv4-compatible address (deprecated, never public)'],
      ['4000::1', '4000::1, an unassigned address'],
      ['fd12::1', 'fd12::1, a unique-local address'],
      ['2001:0:a00:1::', '2001:0:a00:1::, a Teredo address'],
      ['64:ff9b:1::a00:1', '64:ff9b:1::a00:1, a local-use NAT64 address'],
      ['::ffff:0:a00:1', '::ffff:0:a00:1, an IPv4-translated address'],
      ['64:ff9b::a00:1', '64:ff9b::a00:1 (carrying 10.0.0.1), a private address'],
      ['::ffff:100.64.0.1', '::ffff:100.64.0.1 (carrying 100.64.0.1), a carrier-grade NAT address'],
      ['::ffff:192.52.193.1', '::ffff:192.52.193.1 (carrying 192.52.193.1), a amt address'],
      ['224.0.0.1', '224.0.0.1, a multicast address'],
      ['255.255.255.255', '255.255.255.255, a broadcast address'],
      ['100::1', '100::1, a discard-only address'],
      ['fec0::1', 'fec0::1, a site-local address'],
      ['192.31.196.1', '192.31.196.1, a as112 address'],
      ['2001:2::1', '2001:2::1, a benchmarking address'],
    ]) {
      assert.equal(checkAddress(a).reason, reason, a)
      assert.equal(checkAddress(a).allowed, false, a)
    }

    // Global unicast that merely looks like an embedding in its middle is not one.
    assert.equal(checkAddress('2606:4700:a9fe:a9fe::1').allowed, true)
  })

  it('a refusal as an error: the hint to allow private addresses, never for a metadata address', () => {
    const privateOne = refusal(checkAddress('10.0.0.1'))
    assert.equal(privateOne.message, '10.0.0.1, a private address (set RVX_ALLOW_PRIVATE_FETCH=1 to allow private addresses)')
    assert.equal(privateOne.metadata, false)
    const metadata = refusal(checkAddress('169.254.169.254'), 'metadata.example resolves to ')
    assert.equal(metadata.message, 'metadata.example resolves to 169.254.169.254, a cloud metadata or link-local address, never fetched')
    assert.equal(metadata.metadata, true)
    assert.equal(privateFetchAllowed({RVX_ALLOW_PRIVATE_FETCH: '1'}), true)
    assert.equal(privateFetchAllowed({RVX_ALLOW_PRIVATE_FETCH: 'yes'}), false)
    assert.equal(privateFetchAllowed({}), false)
  })
})
