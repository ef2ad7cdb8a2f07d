import assert from 'node:assert/strict'

import {parseCriteria} from '../../src/pipeline/criteria.js'
import {UsageError} from '../../src/shared/errors.js'

describe('pipeline: criteria text', () => {
  const refusal = (json: string) => {
    try {
      parseCriteria(json)
    } catch (error) {
      assert.ok(error instanceof UsageError, String(error))
      return error.message
    }

    assert.fail(`accepted ${json}`)
  }

  it('refuses NUL, other control characters, direction overrides and lone surrogates, naming the key and the character', () => {
    assert.equal(
      refusal('{"city":"Aus\\u0000tin"}'),
      'criteria key "city": contains U+0000, a control, direction or invisible character, at position 4: remove it',
    )
    assert.match(refusal('{"pms":"Build\\u202Eium"}'), /^criteria key "pms": contains U\+202E/)
    assert.match(refusal('{"natural_request":"red\\u001B[31m"}'), /^criteria key "natural_request": contains U\+001B/)
    assert.match(refusal('{"exclude_domains":["ok.example","a\\ud800.example"]}'), /^criteria key "exclude_domains.1": contains U\+D800/)
  })

  it('keeps line breaks in free text and any other script', () => {
    assert.deepEqual(parseCriteria('{"natural_request":"line one\\nline two\\tend","city":"Zürich 東京 😀"}'), {
      natural_request: 'line one\nline two\tend',
      city: 'Zürich 東京 😀',
    })
  })
})
