import assert from 'node:assert/strict'
import {Hono} from 'hono'

import {COOKIE, guard, isLoopbackHost, sameSecret, sessionValue} from '../../src/web/auth.js'

/**
 * The dashboard's guard on its own (no database, no server): which hosts
 * count as loopback, what a request must carry with a token, and what the
 * refusals say. The dashboard tests check the same through real HTTP.
 */
describe('web: the dashboard guard', () => {
  const TOKEN = 'a'.repeat(8) + 'b'.repeat(8) + 'c'.repeat(8)

  function app(token: string | undefined): Hono {
    return new Hono().use('*', guard(token)).get('*', (c) => c.text('ok'))
  }

  it('loopback hosts: 127.0.0.0/8, ::1 (bracketed or not, also IPv4-mapped), localhost and *.localhost; nothing else', () => {
    for (const host of ['localhost', 'LOCALHOST', 'app.localhost', '127.0.0.1', '127.9.9.9', '::1', '[::1]', '::ffff:127.0.0.1']) {
      assert.equal(isLoopbackHost(host), true, host)
    }

    for (const host of ['localhost.evil.example', 'evil.example', '10.0.0.1', '0.0.0.0', '::', '[::2]', '', 'localhost.']) {
      assert.equal(isLoopbackHost(host), false, host)
    }
  })

  it('without a token: a request naming a loopback host (any port) is served; any other Host header gets 403 that names it', async () => {
    const open = app(undefined)
    for (const host of ['127.0.0.1:8080', 'localhost', '[::1]:8080', '[::1]']) {
      assert.equal((await open.request('http://x/runs', {headers: {host}})).status, 200, host)
    }

    for (const host of ['evil.example', 'evil.example:8080', 'evil:localhost', 'localhost:80evil', 'x[::1]', '[::1]:80x', '127.0.0.1.nip.io']) {
      const res = await open.request('http://x/runs', {headers: {host}})
      assert.equal(res.status, 403, host)
      assert.match(await res.text(), /answers to localhost only \(it has no token\), not to /)
    }

    const named = await open.request('http://x/runs', {headers: {host: 'evil.example:8080'}})
    assert.match(await named.text(), /not to evil\.example\n$/)
    const none = await open.request('http://x/runs')
    assert.equal(none.status, 403, 'no Host header is no loopback name')
    assert.match(await none.text(), /not to no host\n$/)
  })

  it('with a token: Bearer (any case, surrounding space) or the session cookie; a link trades the token for the cookie', async () => {
    const guarded = app(TOKEN)
    const refused = await guarded.request('http://x/runs')
    assert.equal(refused.status, 401)
    assert.equal(refused.headers.get('www-authenticate'), 'Bearer realm="rvx dashboard"')
    assert.match(await refused.text(), /a token is required: open the link with \?token=YOUR_TOKEN once, or send Authorization: Bearer YOUR_TOKEN/)

    for (const authorization of [`Bearer ${TOKEN}`, `bearer ${TOKEN}`, `Bearer   ${TOKEN}`]) {
      assert.equal((await guarded.request('http://x/runs', {headers: {authorization}})).status, 200, authorization)
    }

    for (const authorization of [`Bearer ${TOKEN}x`, `xBearer ${TOKEN}`, `Basic ${TOKEN}`, TOKEN, `Bearer ${TOKEN.slice(1)}`]) {
      assert.equal((await guarded.request('http://x/runs', {headers: {authorization}})).status, 401, authorization)
    }

    const link = await guarded.request(`http://x/runs?status=failed&token=${TOKEN}`)
    assert.equal(link.status, 303)
    assert.equal(link.headers.get('location'), '/runs?status=failed', 'the token leaves the address')
    const cookie = link.headers.get('set-cookie') ?? ''
    assert.match(cookie, new RegExp(`^${COOKIE}=${sessionValue(TOKEN)}; Path=/; HttpOnly; SameSite=Lax$`))
    assert.ok(!cookie.includes(TOKEN), 'the cookie is not the token')
    assert.equal((await guarded.request('http://x/runs', {headers: {cookie: `${COOKIE}=${sessionValue(TOKEN)}`}})).status, 200)
    assert.equal((await guarded.request('http://x/runs', {headers: {cookie: `${COOKIE}=${TOKEN}`}})).status, 401)
    assert.equal((await guarded.request(`http://x/runs?token=${TOKEN}x`)).status, 401, 'a wrong link sets nothing')
  })

  it('the session value is a 256-bit base64url HMAC of the token: fixed per token, different between tokens', () => {
    assert.match(sessionValue(TOKEN), /^[A-Za-z0-9_-]{43}$/)
    assert.equal(sessionValue(TOKEN), sessionValue(TOKEN))
    assert.notEqual(sessionValue(TOKEN), sessionValue(`${TOKEN}x`))
    assert.equal(sameSecret('abc', 'abc'), true)
    assert.equal(sameSecret('abc', 'abd'), false)
    assert.equal(sameSecret('abc', 'abcd'), false)
  })
})
