import assert from 'node:assert/strict'

import {normalizeDomain, parseDomain, registrableDomain} from '../../src/pipeline/domains.js'
import {cleanText} from '../../src/shared/text.js'

describe('pipeline: domains through one parser', () => {
  it('the Unicode, fullwidth and xn-- forms of a domain, and its URLs, are one key', () => {
    for (const form of ['bücher.example', 'BÜCHER.example.', '\uFF42ücher.example', 'xn--bcher-kva.example', 'https://www.bücher.example:8443/kontakt?x=1'])
      assert.equal(normalizeDomain(form), 'xn--bcher-kva.example', form)
  })

  it('refuses what is not a domain, saying why', () => {
    const problem = (s: string) => {
      const parsed = parseDomain(s)
      return 'problem' in parsed ? parsed.problem : `accepted as ${parsed.domain}`
    }

    assert.match(problem('user@acme.example'), /user name/)
    assert.match(problem('not a domain!!'), /spaces/)
    assert.match(problem('<script>.example'), /not a domain name/)
    assert.match(problem('ftp://acme.example/'), /scheme ftp:/)
    assert.match(problem('10.0.0.1'), /IP address/)
    assert.match(problem('localhost'), /single label/)
    assert.match(problem('-acme.example'), /label/)
    assert.match(problem(`${'a'.repeat(10_000)}.example`), /10008 characters/)
    assert.match(problem(`${'a'.repeat(64)}.example`), /label/)
  })

  it('registrableDomain() is the part its owner registered, by the public-suffix list', () => {
    assert.equal(registrableDomain('shop.acme.co.uk'), 'acme.co.uk')
    assert.equal(registrableDomain('https://portal.acme-pm.com/login'), 'acme-pm.com')
    assert.equal(registrableDomain('co.uk'), null)
    assert.equal(registrableDomain('not a domain'), null)
  })
})

describe('shared: cleanText', () => {
  it('takes out NUL, escape sequences whole, direction overrides and zero-width spaces; cuts without splitting a pair', () => {
    assert.equal(cleanText('Acme\u0000 PM\u001b[2J\u001b]0;owned\u0007\u202E\u200B!', 100), 'Acme PM!')
    assert.equal(cleanText('a\r\nb\tc', 100), 'a b c')
    assert.equal(cleanText('a\r\nb', 100, {lineBreaks: true}), 'a\nb')
    assert.equal(cleanText('ab\u{1F600}', 3), 'ab')
  })
})
