import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {promisify} from 'node:util'

import {DEFAULT_CONFIG} from '../../src/runtime/config.js'
import {BIN, ROOT} from '../helpers/cli.js'

const UNITS = ['rvx-worker.service', 'rvx-monitor.service']

/** The [Service] settings of a unit file, each key's values in order. */
function settings(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>()
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim())
    if (m) out.set(m[1], [...(out.get(m[1]) ?? []), m[2]])
  }

  return out
}

describe('systemd units under deploy/', () => {
  for (const unit of UNITS) {
    it(`${unit} stops with SIGTERM within a timeout above the drain grace, as a dedicated user, with its secrets in an EnvironmentFile`, () => {
      const s = settings(fs.readFileSync(path.join(ROOT, 'deploy', unit), 'utf8'))
      assert.deepEqual(s.get('Type'), ['simple'])
      assert.deepEqual(s.get('KillSignal'), ['SIGTERM'])
      assert.ok(Number(s.get('TimeoutStopSec')![0]) * 1000 > DEFAULT_CONFIG.graceMs, 'TimeoutStopSec leaves room for the drain grace')
      // rvx exits 143 after SIGTERM: without this every stop would read as a failure.
      assert.ok(s.get('SuccessExitStatus')![0].split(/\s+/).includes('143'))
      assert.deepEqual(s.get('Restart'), ['on-failure'])
      assert.deepEqual(s.get('User'), ['rvx'])
      assert.deepEqual(s.get('EnvironmentFile'), ['/etc/rvx/rvx.env'])
      assert.match(s.get('ExecStart')![0], /--health-port \d+/)
      assert.ok(!s.has('Environment') || !s.get('Environment')!.some((e) => /DATABASE_URL|API_KEY/.test(e)), 'no secret in the unit itself')
    })
  }

  it('both pass systemd-analyze verify (with ExecStart pointing at this checkout)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-units-'))
    try {
      const files = UNITS.map((unit) => {
        const file = path.join(dir, unit)
        fs.writeFileSync(file, fs.readFileSync(path.join(ROOT, 'deploy', unit), 'utf8').replaceAll('/usr/local/bin/rvx', BIN))
        return file
      })
      const {stdout, stderr} = await promisify(execFile)('systemd-analyze', ['verify', ...files])
      assert.equal(stdout + stderr, '')
    } finally {
      fs.rmSync(dir, {recursive: true, force: true})
    }
  })
})
