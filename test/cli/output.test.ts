import assert from 'node:assert/strict'

import {printable, renderTable} from '../../src/cli/output.js'

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

describe('printable', () => {
  it('escapes controls, bidi overrides and isolates, separators and lone surrogates; keeps other text', () => {
    assert.equal(printable('a\u0000b\u001B[31mc\u007Fd\u009Be'), 'a\\u0000b\\u001B[31mc\\u007Fd\\u009Be')
    assert.equal(printable('x\u202Ey\u2066z\u200Fw\u2028v'), 'x\\u202Ey\\u2066z\\u200Fw\\u2028v')
    assert.equal(printable('lone \uD800 and \uDC00'), 'lone \\uD800 and \\uDC00')
    assert.equal(printable('Zürich 😀 東京 \u05D0'), 'Zürich 😀 東京 \u05D0')
  })

  it('applies to every table cell', () => {
    const out = renderTable([{v: 'tab\there'}], [{header: 'v', get: (r: {v: string}) => r.v}], {tty: false, color: false})
    assert.equal(out, 'V\ntab\\u0009here')
  })
})
