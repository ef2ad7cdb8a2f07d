import assert from 'node:assert/strict'
import {sql} from 'kysely'

import {claimTasks, enqueue} from '../../src/runtime/index.js'
import {rvx, spawnRvx} from '../helpers/cli.js'
import {useFreshDatabase} from '../helpers/db.js'
import {waitFor} from '../helpers/processes.js'
import {registeredWorker} from '../helpers/runtime.js'
import {STAGE_KINDS} from '../../src/pipeline/stages/index.js'

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
    assert.equal(before.type, STAGE_KINDS.join(','))
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

  it("counts each type's own tasks: a worker of every stage adds its completions and failures to the kind of each task, not to every type", async () => {
    await sql`truncate tasks, task_events, workers`.execute(t.db)
    const created = await rvx(['orchestrate', '--provider', 'simulated', '--criteria', '{"state":"TX"}', '--quantity', '3', '--detach', '--json'], {env: env()})
    assert.equal(created.code, 0, created.stderr)
    const {runId} = JSON.parse(created.stdout)
    // Malformed model output fails attempts (retried later): failures to count too (about 17 calls: at 0.35 some surely fail).
    const worker = await rvx(['worker', 'all', '--id', 'w-all', '--run', String(runId), '--exit-when-idle', '--sim-faults', 'malformed=0.35'], {
      env: env(),
      timeoutMs: 120_000,
    })
    assert.equal(worker.code, 0, worker.stderr)

    const {rows: truth} = await sql<{kind: string; done: number; failed: number}>`
      select t.kind, count(*) filter (where e.event = 'completed')::int as done, count(*) filter (where e.event in ('failed', 'retry_scheduled'))::int as failed
      from task_events e join tasks t on t.id = e.task_id where e.worker_id = 'w-all' group by t.kind order by t.kind`.execute(t.db)
    assert.deepEqual(
      truth.map((r) => r.kind),
      ['company', 'contact', 'lead-list'],
    )
    assert.ok(
      truth.some((r) => r.failed > 0),
      'some attempts failed: ' + JSON.stringify(truth),
    )

    const status = JSON.parse((await rvx(['workers', 'status', '--json', '--all'], {env: env()})).stdout)
    // Every kind the worker took is listed, those it had no task of (enrich: the run did not ask for it) at zero.
    const byKind = [...STAGE_KINDS].sort().map((kind) => truth.find((r) => r.kind === kind) ?? {kind, done: 0, failed: 0})
    assert.deepEqual(
      status.fleet.map((f: {type: string; tasksDone: number; tasksFailed: number}) => ({kind: f.type, done: f.tasksDone, failed: f.tasksFailed})),
      byKind,
    )
    const [w] = status.workers
    assert.equal(
      w.tasksDone,
      truth.reduce((n, r) => n + r.done, 0),
      'the worker itself counts all of them',
    )
    const {rows: psql} = await sql<{type: string; tasks_done: number}>`select type, tasks_done::int from rvx_worker_stats() order by type`.execute(t.db)
    assert.deepEqual(
      psql.map((r) => [r.type, r.tasks_done]),
      byKind.map((r) => [r.kind, r.done]),
    )
  })

  it('shows a worker that runs tasks as busy at once, not when its next heartbeat says so, and only in the rows of the kinds it runs', async () => {
    await sql`truncate tasks, task_events, workers`.execute(t.db)
    const worker = await registeredWorker(t.db, t.url, 'w-between-beats', ['probe', 'other'])
    try {
      await enqueue(t.db, [{kind: 'probe'}, {kind: 'probe'}])
      const claim = {
        workerId: 'w-between-beats',
        kinds: ['probe'],
        limit: 2,
        leaseMs: 60_000,
        pool: 'default',
        capabilities: [],
        memoryAvailableGb: 64,
        gpuVramAvailableGb: 0,
      }
      assert.equal((await claimTasks(t.db, claim)).length, 2)
      const row = await t.db.selectFrom('workers').select('status').where('id', '=', 'w-between-beats').executeTakeFirstOrThrow()
      assert.equal(row.status, 'idle', 'its row still says what it was at its last heartbeat')

      const status = JSON.parse((await rvx(['workers', 'status', '--json'], {env: env()})).stdout)
      // Busy for the kind it is running, idle for its other one: a row counts the tasks of its own stage.
      assert.deepEqual(
        status.fleet.map((f: {type: string; idle: number; busy: number}) => [f.type, f.idle, f.busy]),
        [
          ['other', 1, 0],
          ['probe', 0, 1],
        ],
      )
      assert.deepEqual(
        status.workers.map((w: {id: string; status: string; currentTasks: unknown[]}) => [w.id, w.status, w.currentTasks.length]),
        [['w-between-beats', 'busy', 2]],
      )
    } finally {
      await worker.close()
    }
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
