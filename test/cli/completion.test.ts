import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {rvx} from '../helpers/cli.js'

/** Shell completion through @oclif/plugin-autocomplete, tried in a real bash. */
describe('rvx autocomplete', function () {
  this.timeout(60_000)
  let cache: string

  before(() => {
    cache = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-completion-'))
  })
  after(() => fs.rmSync(cache, {recursive: true, force: true}))

  it('bash completes commands of a topic and the flags of a command, new ones included', async () => {
    const env = {XDG_CACHE_HOME: cache}
    const instructions = await rvx(['autocomplete', 'bash'], {env})
    assert.equal(instructions.code, 0, instructions.stderr)
    assert.match(instructions.stdout, /rvx autocomplete script bash/)
    const setup = await rvx(['autocomplete', 'script', 'bash'], {env})
    assert.equal(setup.code, 0, setup.stderr)

    // What bash asks the completion function for "rvx runs l<TAB>" and "rvx runs list --st<TAB>".
    const complete = (...words: string[]) =>
      execFileSync(
        'bash',
        ['-c', `${setup.stdout.trim()}\nCOMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _rvx_autocomplete; printf '%s\\n' "\${COMPREPLY[@]}"`, 'bash', ...words],
        {encoding: 'utf8'},
      )
        .split('\n')
        .filter(Boolean)
    assert.deepEqual(complete('rvx', 'runs', 'l'), ['list'])
    assert.deepEqual(complete('rvx', 'runs', 'list', '--st'), ['--status'])
    assert.ok(complete('rvx', 'wor').includes('workers'), 'topics too')
  })
})
