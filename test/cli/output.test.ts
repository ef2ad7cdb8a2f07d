import assert from 'node:assert/strict'

import {renderTable} from '../../src/cli/output.js'

describe('renderTable', () => {
  const rows = [
    {n: 'alpha', v: 1},
    {n: 'b', v: null},
  ]
  const cols = [
    {header: 'name', get: (r: (typeof rows)[0]) => r.n},
    {header: 'value', get: (r: (typeof rows)[0]) => r.v},
  ]

  it('prints plain aligned columns off a terminal', () => {
    assert.equal(renderTable(rows, cols, {tty: false, color: false}), 'NAME   VALUE\nalpha  1\nb      -')
  })

  it('draws a box on a terminal, without colour codes when colour is off', () => {
    const out = renderTable(rows, cols, {tty: true, color: false})
    assert.match(out, /┌/)
    assert.ok(!out.includes('\u001B['), 'no colour escape codes')
  })
})
