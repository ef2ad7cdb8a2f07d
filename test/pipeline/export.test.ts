import assert from 'node:assert/strict'

import {neutralizeFormula} from '../../src/pipeline/export.js'

describe('pipeline: CSV cells', () => {
  it('writes phone numbers as they are: digits, spaces, + - . ( ), and an optional extension', () => {
    for (const phone of ['+1-555-2847', '+1 (555) 284-7000', '+44 20 7946 0958 ext. 12', '+33.1.23.45.67.89', '+1 555 0100 EXT 7', '(555) 284-7000']) {
      assert.equal(neutralizeFormula(phone), phone)
    }
  })

  it('still neutralizes anything else that starts with = + - @, a tab or a carriage return', () => {
    for (const formula of [
      '=HYPERLINK("http://evil.example/x","Click")',
      '+SUM(1,2)',
      '-2+3',
      '-555-0100',
      '@cmd|calc',
      '\tTabbed PM',
      '\r+1-555-0100',
      '+1-555-0100 ext. 12 =1+1',
      '+1-555-0100+cmd|calc',
      '+1 (555) A1',
    ]) {
      assert.equal(neutralizeFormula(formula), `'${formula}`)
    }

    assert.equal(neutralizeFormula('Acme Property Management'), 'Acme Property Management')
  })
})
