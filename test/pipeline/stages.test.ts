import assert from 'node:assert/strict'

import {kindsFor, STAGE_KINDS, STAGES} from '../../src/pipeline/stages/index.js'
import {UsageError} from '../../src/shared/errors.js'

describe('pipeline: the stage table', () => {
  it('names each stage twice (pipeline word and task kind), in pipeline order', () => {
    assert.deepEqual(
      STAGES.map((s) => [s.name, s.kind]),
      [
        ['discovery', 'lead-list'],
        ['research', 'company'],
        ['contacts', 'contact'],
        ['enrich', 'enrich'],
      ],
    )
    assert.deepEqual(STAGE_KINDS, ['lead-list', 'company', 'contact', 'enrich'])
  })

  it('worker types: either name selects a stage, all selects every one, in pipeline order, once', () => {
    assert.deepEqual(kindsFor(['contacts', 'lead-list']), ['lead-list', 'contact'])
    assert.deepEqual(kindsFor(['research', 'company']), ['company'])
    // All: the opt-in stages too (a worker of every stage does the work of runs that asked for them).
    assert.deepEqual(kindsFor(['all']), ['lead-list', 'company', 'contact', 'enrich'])
  })

  it('an unknown or missing worker type is a usage error that lists the choices', () => {
    assert.throws(
      () => kindsFor(['bogus']),
      (e: unknown) => e instanceof UsageError && /"bogus" is not a stage: use discovery \(lead-list\)/.test(e.message),
    )
    assert.throws(
      () => kindsFor([]),
      (e: unknown) => e instanceof UsageError && /name the stage\(s\) to work on/.test(e.message),
    )
  })
})
