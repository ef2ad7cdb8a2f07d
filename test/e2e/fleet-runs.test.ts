import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {parse} from 'csv-parse/sync'
import {sql} from 'kysely'

import {parseCriteria, validateSize} from '../../src/pipeline/criteria.js'
import {cancelRun, createRun} from '../../src/pipeline/runs.js'
import {rvx, spawnRvx} from '../helpers/cli.js'
import {useFreshDatabase} from '../helpers/db.js'
import {type Spawned, spawnCli, waitFor} from '../helpers/processes.js'

/**
 * A run done by the fleet (rvx worker processes, a monitor), followed and
 * steered from other terminals: runs watch to its end, the monitor's word
 * and export, runs pause and resume, and what Ctrl-C in orchestrate says.
 */
describe('e2e: following and steering a fleet run (spawned processes)', function () {
  this.timeout(180_000)
  const t = useFreshDatabase()
  const env = () => ({DATABASE_URL: t.url, OPENAI_API_KEY: ''})
  let dir: string
  const started: Spawned[] = []

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-fleet-'))
  })
  after(() => fs.rmSync(dir, {recursive: true, force: true}))
  afterEach(async () => {
    for (const s of started.splice(0)) {
      s.child.kill('SIGTERM')
      await s.exited
    }
  })

  /** A worker process of every stage, registered and idle. */
  async function worker(id: string, ...args: string[]): Promise<Spawned> {
    const w = spawnCli(['worker', 'all', '--id', id, ...args], env())
    started.push(w)
    await waitFor(
      `worker ${id} to register`,
      async () => (await t.db.selectFrom('workers').select('status').where('id', '=', id).executeTakeFirst())?.status === 'idle',
    )
    return w
  }

  const count = async (query: ReturnType<typeof sql<{n: number}>>) => (await query.execute(t.db)).rows[0].n

  it('orchestrate --detach counts the live workers; runs watch exits 0 naming the export the monitor wrote; the monitor logs the completion', async () => {
    const exports = path.join(dir, 'exports')
    fs.mkdirSync(exports)
    const monitor = spawnCli(['monitor', '--interval', '500ms', '--export-dir', exports], env())
    started.push(monitor)
    await worker('w-watch')

    const created = await rvx(['orchestrate', '--provider', 'simulated', '--criteria', '{"state":"NC"}', '--quantity', '6', '--detach'], {env: env()})
    assert.equal(created.code, 0, created.stderr)
    const runId = Number(/^Run (\d+) created; 1 worker is live\.$/m.exec(created.stderr)?.[1])
    assert.ok(runId > 0, created.stderr)
    assert.match(created.stderr, new RegExp(`rvx runs watch ${runId}`))

    const watched = await rvx(['runs', 'watch', String(runId), '--interval', '300ms'], {env: env(), timeoutMs: 150_000})
    assert.equal(watched.code, 0, watched.stderr)
    const out = watched.stdout.trim().split('\n')
    const end = new RegExp(`^run ${runId} completed: 6 companies, (\\d+) contacts, \\$\\d+\\.\\d+ \\(simulated\\), \\d+s$`).exec(out.at(-2)!)
    assert.ok(end, `the end in one line: ${out.at(-2)}`)
    const runDir = path.join(exports, `run-${runId}`)
    assert.equal(out.at(-1), `export: ${runDir}`)
    const contacts = parse(fs.readFileSync(path.join(runDir, 'contacts.csv'), 'utf8'), {columns: true})
    assert.equal(contacts.length, Number(end[1]), 'the contacts counted are the rows of contacts.csv')
    assert.equal(parse(fs.readFileSync(path.join(runDir, 'companies.csv'), 'utf8'), {columns: true}).length, 6)

    const logged = await waitFor('the monitor to log the completion', async () =>
      monitor
        .stderr()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as {msg: string; level: number})
        .find((l) => l.msg.startsWith(`run ${runId} completed:`)),
    )
    assert.equal(logged.msg, `${out.at(-2)}; export in ${runDir}`)
    assert.equal(logged.level, 30, 'news, at info')

    const show = await rvx(['runs', 'show', String(runId)], {env: env(), timeoutMs: 30_000})
    assert.match(show.stdout, /^finished +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(took \d+s\)$/m)
    assert.match(show.stdout, new RegExp(`^export +${runDir.replaceAll(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'))
  })

  it('runs pause stops every worker taking a running run (nothing paid after its tasks in flight); runs resume finishes it', async () => {
    // Two slots each: the run's work cannot all be claimed at once, so some of it waits when the pause comes.
    await worker('w-pause-1', '--concurrency', '2')
    await worker('w-pause-2', '--concurrency', '2')
    const created = await rvx(
      ['orchestrate', '--provider', 'simulated', '--sim-latency', '200ms-400ms', '--criteria', '{"state":"TX"}', '--quantity', '20', '--detach', '--json'],
      {env: env()},
    )
    const {runId} = JSON.parse(created.stdout)
    const scope = `run:${runId}`
    await waitFor(
      'research under way',
      async () => (await count(sql`select count(*)::int as n from companies where run_id = ${runId} and status <> 'candidate'`)) >= 4,
      90_000,
    )

    const paused = await rvx(['runs', 'pause', String(runId)], {env: env()})
    assert.equal(paused.code, 0, paused.stderr)
    assert.match(paused.stderr, new RegExp(`^Run ${runId} paused( \\(\\d+ tasks already running finish\\))?; rvx runs resume ${runId} goes on\\.$`, 'm'))
    await waitFor(
      'the tasks in flight to finish',
      async () => (await count(sql`select count(*)::int as n from tasks where scope = ${scope} and status = 'running'`)) === 0,
      90_000,
    )
    const calls = await count(sql`select count(*)::int as n from llm_calls where run_id = ${runId}`)
    const claims = await count(
      sql`select count(*)::int as n from task_events e join tasks t on t.id = e.task_id where t.scope = ${scope} and e.event = 'claimed'`,
    )
    // Two workers polling every second, with work queued: a pause that did not hold would show here.
    await new Promise((r) => setTimeout(r, 3000))
    assert.equal(await count(sql`select count(*)::int as n from llm_calls where run_id = ${runId}`), calls, 'no model call after the pause took hold')
    assert.equal(
      await count(sql`select count(*)::int as n from task_events e join tasks t on t.id = e.task_id where t.scope = ${scope} and e.event = 'claimed'`),
      claims,
      'no task claimed',
    )
    assert.ok((await count(sql`select count(*)::int as n from tasks where scope = ${scope} and status = 'queued'`)) > 0, 'work is waiting')
    const show = await rvx(['runs', 'show', String(runId)], {env: env()})
    assert.match(show.stdout, /^status +paused$/m)
    const list = await rvx(['runs', 'list'], {env: env()})
    assert.match(list.stdout, new RegExp(`^ *${runId} +paused `, 'm'))

    const resumed = await rvx(['runs', 'resume', String(runId), '--detach'], {env: env()})
    assert.equal(resumed.code, 0, resumed.stderr)
    assert.match(resumed.stderr, /pause lifted/)
    const watched = await rvx(['runs', 'watch', String(runId), '--interval', '300ms'], {env: env(), timeoutMs: 150_000})
    assert.equal(watched.code, 0, watched.stdout + watched.stderr)
    assert.match(watched.stdout, new RegExp(`^run ${runId} completed: 20 companies`, 'm'))
    assert.match(watched.stdout, new RegExp(`no export written yet: rvx runs export ${runId} writes its CSVs`), 'no monitor exports here')
  })

  it("runs watch gives orchestrate's exit codes: 4 for a run that needs a decision, 1 for a canceled one", async () => {
    const make = () =>
      createRun(t.db, {criteria: parseCriteria('{"state":"GA"}'), size: validateSize({quantity: 5, contactsMin: 1, contactsMax: 3}), provider: 'simulated'})
    const waiting = await make()
    await sql`update runs set status = 'needs_decision', notes = 'only 2 of 5 qualified' where id = ${waiting.id}`.execute(t.db)
    const decision = await rvx(['runs', 'watch', String(waiting.id)], {env: env()})
    assert.equal(decision.code, 4)
    assert.match(decision.stdout, new RegExp(`run ${waiting.id} needs a decision: 0 companies, 0 contacts, \\$0\\.0000 \\(simulated\\), \\d+s\\n`))
    assert.match(decision.stdout, /^notes +only 2 of 5 qualified$/m)
    const dropped = await make()
    await cancelRun(t.db, dropped.id)
    assert.equal((await rvx(['runs', 'watch', String(dropped.id)], {env: env()})).code, 1)
  })

  it('Ctrl-C in orchestrate says the run goes on in the live workers (and how to pause it); with --pause-on-exit it pauses the run', async () => {
    await worker('w-ctrl-c')
    for (const pauseOnExit of [false, true]) {
      const last = await count(sql`select coalesce(max(id), 0)::int as n from runs`)
      const child = spawnRvx(
        [
          'orchestrate',
          '--provider',
          'simulated',
          '--sim-latency',
          '200ms-400ms',
          '--criteria',
          '{"state":"FL"}',
          '--quantity',
          '20',
          ...(pauseOnExit ? ['--pause-on-exit'] : []),
        ],
        {env: env()},
      )
      let stderr = ''
      child.stderr!.on('data', (d) => (stderr += d))
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
      const runId = await waitFor('the run to start researching', async () => {
        const {rows} = await sql<{id: number}>`
          select r.id from runs r where r.id > ${last} and exists (select 1 from companies c where c.run_id = r.id and c.status <> 'candidate')`.execute(t.db)
        return rows[0]?.id
      })
      child.kill('SIGINT')
      assert.equal(await exited, 130)
      const {rows} = await sql<{paused: boolean}>`select paused_at is not null as paused from runs where id = ${runId}`.execute(t.db)
      if (pauseOnExit) {
        assert.match(stderr, new RegExp(`run ${runId} is paused fleet-wide \\(rvx runs resume ${runId} goes on\\)`))
        assert.equal(rows[0].paused, true)
        await cancelRun(t.db, runId)
      } else {
        assert.match(
          stderr,
          new RegExp(`run ${runId} goes on in 1 other live worker \\(rvx runs watch ${runId} follows it; rvx runs pause ${runId} stops it\\)`),
        )
        assert.equal(rows[0].paused, false)
        assert.doesNotMatch(stderr, /resume it with/)
        await cancelRun(t.db, runId)
      }
    }
  })
})
