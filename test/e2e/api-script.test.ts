import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {promisify} from 'node:util'

import {rvx} from '../helpers/cli.js'
import {useFreshDatabase} from '../helpers/db.js'
import {type Spawned, spawnCli, waitFor} from '../helpers/processes.js'
import {Receiver} from '../helpers/webhook-receiver.js'

const run = promisify(execFile)

describe('e2e: a script with only curl and a write token', function () {
  this.timeout(120_000)
  const t = useFreshDatabase()
  const env = () => ({DATABASE_URL: t.url, OPENAI_API_KEY: '', RVX_ALLOW_PRIVATE_WEBHOOKS: '1'})
  const fleet: Spawned[] = []
  let receiver: Receiver
  let out: string

  before(async () => {
    receiver = await new Receiver().start()
    out = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-curl-'))
  })

  after(async () => {
    for (const p of fleet) p.child.kill('SIGKILL')
    await receiver.close()
    fs.rmSync(out, {recursive: true, force: true})
  })

  it('creates a run, is told by a signed webhook when it completes, and downloads its CSV', async () => {
    const created = await rvx(['tokens', 'create', '--scope', 'write', '--name', 'crm', '--json'], {env: env()})
    assert.equal(created.code, 0, created.stderr)
    const token = JSON.parse(created.stdout).token
    const serve = spawnCli(['serve', '--port', '0'], env())
    fleet.push(serve, spawnCli(['monitor', '--interval', '250ms'], env()), spawnCli(['worker', 'all', '--concurrency', '4'], env()))
    const base = await waitFor('rvx serve', async () => /API on (http:\/\/127\.0\.0\.1:\d+\/api\/v1\/)/.exec(serve.stderr())?.[1], 30_000)
    const curl = async (args: string[]) => (await run('curl', ['-sS', '--fail-with-body', '-H', `Authorization: Bearer ${token}`, ...args])).stdout

    const hook = JSON.parse(
      await curl(['-H', 'Content-Type: application/json', '-d', JSON.stringify({url: receiver.url, events: ['run.completed']}), `${base}webhooks`]),
    )
    receiver.secret = hook.secret
    const made = JSON.parse(
      await curl([
        '-H',
        'Content-Type: application/json',
        '-H',
        'Idempotency-Key: 6f1c2a4e-first',
        '-d',
        '{"provider":"simulated","criteria":{"pms":"Buildium","state":"TX"},"quantity":3}',
        `${base}runs`,
      ]),
    )
    assert.equal(made.status, 'running')

    const told = await waitFor('the run.completed webhook', async () => receiver.taken().find((r) => r.type === 'run.completed' && r.runId === made.id), 60_000)
    assert.equal(told.body.data.run.status, 'completed')
    assert.equal(told.body.data.selected, 3)
    assert.deepEqual(receiver.bad, [], 'signed, and verified by the receiver')

    const csv = await curl([`${base}runs/${made.id}/export.csv?table=companies`])
    const exported = await rvx(['runs', 'export', String(made.id), '--output-dir', out, '--json'], {env: env()})
    assert.equal(csv, fs.readFileSync(JSON.parse(exported.stdout).files.companies, 'utf8'))
    assert.equal(csv.trim().split('\n').length, 1 + 3, 'a header and three companies')
  })
})
