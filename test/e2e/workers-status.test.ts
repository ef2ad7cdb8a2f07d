import assert from 'node:assert/strict'
import {sql} from 'kysely'

import {rvx, spawnRvx} from '../helpers/cli.js'
import {useFreshDatabase} from '../helpers/db.js'
import {waitFor} from '../helpers/processes.js'

describe('e2e: rvx workers status / prune', function () {
  this.timeout(120_000)
  const t = useFreshDatabase()
  const env = () => ({DATABASE_URL: t.url})

  it('shows a SIGKILLed worker as dead within the dead-after window, in --json', async () => {
    const child = spawnRvx(['worker', 'all', '--id', 'w-victim'], {env: env()})
    const exited = new Promise((resolve) => child.on('exit', resolve))
    await waitFor(
      'the worker to register',
      async () => (await sql<{n: number}>`select count(*)::int as n from workers where id = 'w-victim' and status = 'idle'`.execute(t.db)).rows[0].n === 1,
    )
    const live = JSON.parse((await rvx(['workers', 'status', '--json'], {env: env()})).stdout)
    const before = live.workers.find((w: {id: string}) => w.id === 'w-victim')
    assert.equal(before.status, 'idle')
    assert.equal(before.type, 'lead-list,company,contact')
    assert.ok(Date.parse(before.lastHeartbeatAt) > 0)
    assert.equal(typeof before.resourceMetrics.cpu_percent, 'number')
    assert.ok(live.fleet.some((f: {type: string; idle: number}) => f.type === 'company' && f.idle === 1))

    child.kill('SIGKILL')
    await exited
    const dead = await waitFor(
      'status to show it dead within the 15 s dead-after window',
      async () => {
        const s = JSON.parse((await rvx(['workers', 'status', '--json'], {env: env()})).stdout)
        return s.workers.find((w: {id: string; status: string}) => w.id === 'w-victim' && w.status === 'dead')
      },
      15_000,
      250,
    )
    assert.ok(dead)

    const pruned = JSON.parse((await rvx(['workers', 'prune', '--older-than', '0s', '--json'], {env: env()})).stdout)
    assert.deepEqual(pruned.removed, ['w-victim'])
  })

  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    it(`--watch --json prints one JSON object per interval (NDJSON) until ${signal}, then exits ${code}`, async () => {
      const child = spawnRvx(['workers', 'status', '--watch', '--json', '--interval', '500ms'], {env: env()})
      let out = ''
      let err = ''
      child.stdout!.on('data', (d) => (out += d))
      child.stderr!.on('data', (d) => (err += d))
      const exited = new Promise<{code: number | null; signal: NodeJS.Signals | null}>((resolve) => child.on('exit', (c, s) => resolve({code: c, signal: s})))
      await waitFor('three snapshots', async () => out.split('\n').filter(Boolean).length >= 3)
      child.kill(signal)
      assert.deepEqual(await exited, {code, signal: null}, err)
      const snapshots = out
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l))
      assert.ok(snapshots.every((s) => Array.isArray(s.workers) && Array.isArray(s.queue) && typeof s.at === 'string'))
      assert.equal(err, '', 'nothing on stderr: stopping is not an error')
    })
  }
})
