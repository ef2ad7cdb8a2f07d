import assert from 'node:assert/strict'

import {printable, renderPairs, renderTable, tableMode} from '../../src/cli/output.js'

describe('renderTable', () => {
  const rows = [
    {n: 'alpha', v: 1},
    {n: 'b', v: null},
  ]
  const cols = [
    {header: 'name', get: (r: (typeof rows)[0]) => r.n},
    {header: 'value', get: (r: (typeof rows)[0]) => r.v},
  ]

  it('prints borderless columns under an upper-case header, numbers right-aligned, no trailing blanks', () => {
    assert.equal(renderTable(rows, cols, {color: false}), 'NAME   VALUE\nalpha      1\nb          -')
  })

  it('fits a width: wide text is cut with … first, then the columns marked drop go (highest rank first), never a wrapped row', () => {
    type Row = {id: number; status: string; provider: string; pool: string; criteria: string}
    const row: Row = {
      id: 7,
      status: 'completed',
      provider: 'simulated',
      pool: 'default',
      criteria: 'pms: AppFolio; state: NY; natural_request: family-owned firms managing homes',
    }
    const columns = [
      {header: 'id', get: (r: Row) => r.id},
      {header: 'status', get: (r: Row) => r.status},
      {header: 'provider', get: (r: Row) => r.provider, drop: 1},
      {header: 'pool', get: (r: Row) => r.pool, drop: 2},
      {header: 'criteria', get: (r: Row) => r.criteria, wide: true},
    ]
    const full = renderTable([row], columns, {color: false})
    assert.ok(full.includes(row.criteria), 'without a width nothing is cut')

    const at60 = renderTable([row], columns, {width: 60, color: false}).split('\n')
    assert.ok(
      at60.every((l) => l.length <= 60),
      at60.join('\n'),
    )
    assert.equal(at60[1], ' 7  completed  simulated  default  pms: AppFolio; state: NY…')
    assert.match(at60[0], /PROVIDER/)

    // Criteria cut to 20 columns and still too wide: pool goes first, then provider.
    const at50 = renderTable([row], columns, {width: 50, color: false}).split('\n')
    assert.deepEqual(at50[0].split(/\s+/), ['ID', 'STATUS', 'PROVIDER', 'CRITERIA'])
    assert.equal(at50[1], ' 7  completed  simulated  pms: AppFolio; state: N…')
    const at40 = renderTable([row], columns, {width: 40, color: false}).split('\n')
    assert.deepEqual(at40[0].split(/\s+/), ['ID', 'STATUS', 'CRITERIA'])
    assert.ok([...at50, ...at40].every((l) => l.length <= 50) && at40.every((l) => l.length <= 40))
    assert.equal(at40.length, 2, 'one line per row')
  })

  it('colours statuses (green, yellow, red) and bolds the header only when colour is on', () => {
    const statuses = [{s: 'completed'}, {s: 'needs_decision'}, {s: 'dead'}, {s: 'running'}]
    const columns = [{header: 'status', get: (r: {s: string}) => r.s, status: true}]
    const coloured = renderTable(statuses, columns, {color: true}).split('\n')
    assert.equal(coloured[0], '\u001B[1mSTATUS\u001B[22m')
    assert.ok(coloured[1].startsWith('\u001B[32mcompleted'))
    assert.ok(coloured[2].startsWith('\u001B[33mneeds_decision'))
    assert.ok(coloured[3].startsWith('\u001B[31mdead'))
    assert.equal(coloured[4], 'running')
    assert.ok(!renderTable(statuses, columns, {color: false}).includes('\u001B['))
  })
})

describe('renderPairs', () => {
  it('puts values beside their keys and wraps a long value under itself to fit the width', () => {
    const value = 'one two three four five six seven eight nine ten eleven twelve'
    assert.equal(
      renderPairs(
        [
          ['status', 'completed'],
          ['counts', value],
        ],
        {color: false},
      ),
      `status  completed\ncounts  ${value}`,
    )
    const fitted = renderPairs(
      [
        ['status', 'completed'],
        ['counts', value],
      ],
      {width: 30, color: false},
    ).split('\n')
    assert.ok(fitted.length > 2 && fitted.every((l) => l.length <= 30), fitted.join('\n'))
    assert.equal(
      fitted
        .slice(1)
        .map((l) => l.slice(8))
        .join(' '),
      value,
      'nothing is lost',
    )
  })
})

describe('tableMode', () => {
  it('piped: plain, and as wide as the rows unless COLUMNS gives a width', () => {
    const piped = {isTTY: false} as NodeJS.WriteStream
    assert.deepEqual(tableMode({}, piped), {width: undefined, color: false})
    assert.deepEqual(tableMode({COLUMNS: '80'}, piped), {width: 80, color: false})
    assert.deepEqual(tableMode({COLUMNS: 'wide'}, piped), {width: undefined, color: false})
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
    const out = renderTable([{v: 'tab\there'}], [{header: 'v', get: (r: {v: string}) => r.v}], {color: false})
    assert.equal(out, 'V\ntab\\u0009here')
  })
})
