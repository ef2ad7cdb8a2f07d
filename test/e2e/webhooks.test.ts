import assert from 'node:assert/strict'
import {sql} from 'kysely'

import {parseCriteria, validateSize} from '../../src/pipeline/criteria.js'
import {acceptRun, createRun} from '../../src/pipeline/runs.js'
import {rvx} from '../helpers/cli.js'
import {useFreshDatabase} from '../helpers/db.js'
import {type Spawned, spawnCli, waitFor} from '../helpers/processes.js'
import {Receiver} from '../helpers/webhook-receiver.js'

describe('e2e: signed webhooks through the outbox', function () {
  this.timeout(120_000)
  const t = useFreshDatabase()
  const allow = {RVX_ALLOW_PRIVATE_WEBHOOKS: '1'}
  const env = (extra: NodeJS.ProcessEnv = {}) => ({DATABASE_URL: t.url, ...extra})
  let receiver: Receiver
  let hookId: number
  const monitors: Spawned[] = []

  before(async () => {
    receiver = await new Receiver().start()
  })

  after(async () => {
    for (const m of monitors) m.child.kill('SIGKILL')
    await receiver.close()
  })

  /** A run that selects `leads` companies one by one (a lead.selected each), then ends through `end`. */
  async function runWithEvents(state: string, leads: number, end: (runId: number) => Promise<unknown>): Promise<number> {
    const run = await createRun(t.db, {
      criteria: parseCriteria(`{"state":"${state}"}`),
      size: validateSize({quantity: leads, contactsMin: 1, contactsMax: 3}),
      provider: 'simulated',
    })
    for (let i = 0; i < leads; i++) {
      const {rows} = await sql<{id: number}>`
        insert into companies (run_id, domain, name, discovered_by, status, icp_score) values (${run.id}, ${`lead-${state}-${i}.example`}, ${`Lead ${i}`}, 'test', 'qualified', ${90 - i})
        returning id`.execute(t.db)
      await sql`update companies set status = 'selected' where id = ${rows[0].id}`.execute(t.db)
    }

    await end(run.id)
    return run.id
  }

  it('a private receiver needs RVX_ALLOW_PRIVATE_WEBHOOKS=1; the secret is shown once; webhooks test sends a signed event', async () => {
    const refused = await rvx(['webhooks', 'add', receiver.url, '--events', 'run.completed'], {env: env()})
    assert.equal(refused.code, 2)
    assert.match(
      refused.stderr,
      /^Error: url reaches 127\.0\.0\.1, a loopback address: webhooks go to public addresses \(RVX_ALLOW_PRIVATE_WEBHOOKS=1 allows private ones\)/,
    )
    const unknown = await rvx(['webhooks', 'add', receiver.url, '--events', 'run.done'], {env: env(allow)})
    assert.equal(unknown.code, 2)
    assert.match(unknown.stderr, /--events names "run.done", not an event: use run.completed, run.needs_decision, run.failed, lead.selected/)

    const added = await rvx(['webhooks', 'add', receiver.url, '--events', 'run.completed,run.needs_decision,run.failed,lead.selected', '--json'], {
      env: env(allow),
    })
    assert.equal(added.code, 0, added.stderr)
    const {id, secret} = JSON.parse(added.stdout)
    assert.match(secret, /^whsec_/)
    ;[hookId, receiver.secret] = [id, secret]
    const listed = await rvx(['webhooks', 'list', '--json'], {env: env()})
    assert.ok(!listed.stdout.includes(secret), 'the secret is never shown again')

    const tested = await rvx(['webhooks', 'test', String(id), '--json'], {env: env(allow)})
    assert.equal(tested.code, 0, tested.stderr)
    assert.deepEqual(
      receiver.taken().map((r) => r.type),
      ['webhook.test'],
    )
    assert.deepEqual(receiver.bad, [])
  })

  it('the active monitor delivers in order per run through refusals, and after a failover each event arrives once', async () => {
    const start = () => {
      const m = spawnCli(['monitor', '--interval', '200ms'], env(allow))
      monitors.push(m)
      return m
    }

    const [a, b] = [start(), start()]
    await waitFor('one monitor active', async () => [a, b].find((m) => m.stderr().includes('active: this monitor')), 30_000)
    receiver.refuseNext(2)

    const first = await runWithEvents('TX', 3, async (id) => {
      await sql`update runs set status = 'needs_decision', notes = 'short' where id = ${id}`.execute(t.db)
      await acceptRun(t.db, id)
    })
    const expectFirst = ['lead.selected', 'lead.selected', 'lead.selected', 'run.needs_decision', 'run.completed']
    await waitFor('run 1 delivered', async () => receiver.taken().filter((r) => r.runId === first).length >= 5, 30_000)
    const runOne = receiver.received.filter((r) => r.runId === first)
    assert.deepEqual(
      runOne.slice(0, 3).map((r) => r.answered),
      [500, 500, 200],
      'refused twice, then taken',
    )
    assert.deepEqual(
      receiver
        .taken()
        .filter((r) => r.runId === first)
        .map((r) => r.type),
      expectFirst,
      `in order: ${JSON.stringify(receiver.received.map((r) => [r.id, r.type, r.answered]))}`,
    )
    assert.deepEqual(
      receiver
        .taken()
        .filter((r) => r.type === 'lead.selected' && r.runId === first)
        .map((r) => r.body.data.company.domain),
      ['lead-TX-0.example', 'lead-TX-1.example', 'lead-TX-2.example'],
    )
    assert.equal(receiver.taken().at(-1)!.body.data.run.status, 'completed')
    assert.equal(receiver.taken().at(-1)!.body.data.selected, 3)

    // The active monitor dies; the standby takes over and delivers what happens next.
    const {rows} = await sql<{name: string}>`select value ->> 'name' as name from rvx_meta where key = 'monitor.leader'`.execute(t.db)
    const active = [a, b].find((m) => rows[0].name.endsWith(`-${m.child.pid}`))!
    const standby = active === a ? b : a
    active.child.kill('SIGKILL')
    await active.exited

    const second = await runWithEvents('FL', 2, (id) => sql`update runs set status = 'failed', notes = 'provider down' where id = ${id}`.execute(t.db))
    await waitFor('run 2 delivered by the standby', async () => receiver.taken().filter((r) => r.runId === second).length >= 3, 30_000)
    assert.ok(standby.stderr().includes('active: this monitor'), 'the standby took over')
    assert.deepEqual(
      receiver
        .taken()
        .filter((r) => r.runId === second)
        .map((r) => r.type),
      ['lead.selected', 'lead.selected', 'run.failed'],
    )

    // A moment more: nothing is sent twice.
    await new Promise((r) => setTimeout(r, 1500))
    const ids = receiver.taken().map((r) => r.id)
    assert.equal(new Set(ids).size, ids.length, 'each event taken once')
    assert.equal(ids.length, 1 + 5 + 3)
    assert.deepEqual(receiver.bad, [], 'every request verified')

    // The delivery log, and a redelivery (the same webhook-id, for a receiver that dedupes).
    const log = JSON.parse((await rvx(['webhooks', 'deliveries', String(hookId), '--json'], {env: env()})).stdout).deliveries
    assert.equal(log.length, 9)
    assert.ok(log.every((d: {status: string; lastStatus: number}) => d.status === 'delivered' && d.lastStatus === 200))
    const oldest = log.at(-1)
    const again = await rvx(['webhooks', 'redeliver', String(hookId), String(oldest.id)], {env: env()})
    assert.equal(again.code, 0, again.stderr)
    await waitFor('the redelivery', async () => receiver.taken().filter((r) => r.id === `msg_${oldest.id}`).length === 2, 15_000)
  })

  it('monitor --retention takes finished deliveries out of the log, and their events with them', async () => {
    for (const m of monitors) m.child.kill('SIGKILL')
    const {rows: old} = await sql<{id: number; event_id: number}>`
      update webhook_deliveries set delivered_at = now() - interval '30 days' where run_id = (select min(run_id) from webhook_deliveries)
      returning id, event_id`.execute(t.db)
    assert.equal(old.length, 5)
    const res = await rvx(['monitor', '--once', '--retention', '14d'], {env: env(allow)})
    assert.equal(res.code, 0, res.stderr)
    assert.match(res.stderr, /retention: removed 5 finished webhook deliveries/)
    const left = await sql<{n: number; events: number}>`
      select (select count(*)::int from webhook_deliveries) as n, (select count(*)::int from webhook_events where id = any(${old.map((r) => r.event_id)}::bigint[])) as events`.execute(
      t.db,
    )
    assert.deepEqual(left.rows[0], {n: 4, events: 0})
  })
})
