import assert from 'node:assert/strict'
import fs from 'node:fs'
import {parse} from 'csv-parse/sync'
import {sql} from 'kysely'

import {metricSum, parseMetrics} from '../helpers/capture-servers.js'
import {rvx} from '../helpers/cli.js'
import {useFreshDatabase} from '../helpers/db.js'
import {type Spawned, spawnCli, waitFor} from '../helpers/processes.js'

const TYPES = ['lead-list', 'company', 'contact'] as const
const KILL_EVERY_MS = 3000
const KILL_FOR_MS = 30_000
const FROZEN = 'chaos-frozen'

/**
 * The fleet under fire: a monitor, two worker processes per stage with
 * simulated latency and faults, one detached run of 30 companies, and a
 * random worker SIGKILLed (and replaced) every 3 s for 30 s. Meanwhile a
 * seventh worker is frozen (SIGSTOP) in the middle of its tasks until it is
 * presumed dead, then woken (SIGCONT) while the run goes on: its late results
 * must be rejected. Nothing may be lost, duplicated or applied late.
 */
describe('e2e: chaos (SIGKILL workers during a run)', function () {
  this.timeout(180_000)
  const t = useFreshDatabase()
  const env = () => ({DATABASE_URL: t.url})
  const fleet = new Map<string, {type: string; proc: Spawned}>()
  const others: Spawned[] = []
  after(() => {
    for (const {proc} of fleet.values()) proc.child.kill('SIGKILL')
    for (const p of others) p.child.kill('SIGKILL')
  })

  let serial = 0
  const startWorker = (type: string) => {
    const id = `chaos-${type}-${++serial}`
    fleet.set(id, {type, proc: spawnCli(['worker', type, '--id', id, '--concurrency', '3'], env())})
    return id
  }

  it("completes with exactly 30 selected companies, no duplicates, every killed task recovered, a frozen worker's late results fenced out", async () => {
    const monitor = spawnCli(['monitor', '--interval', '1s', '--metrics-port', '0'], env())
    others.push(monitor)
    const metricsUrl = await waitFor('the monitor', async () => /metrics on (http:[^\s"]+)/.exec(monitor.stderr())?.[1])
    await waitFor('its first interval', async () => monitor.stderr().includes('fleet:'))
    for (const type of TYPES) for (let i = 0; i < 2; i++) startWorker(type)
    // The one to freeze: never killed, no injected faults, so each of its tasks is asleep in a model call most of the time.
    const frozen = spawnCli(['worker', 'all', '--id', FROZEN, '--concurrency', '3', '--sim-latency', '2s-3s', '--sim-faults', 'transient=0'], env())
    others.push(frozen)
    await waitFor(
      'seven idle workers',
      async () => (await sql<{n: number}>`select count(*)::int as n from workers where status = 'idle'`.execute(t.db)).rows[0].n === 7,
      60_000,
    ).catch(async (error) => {
      throw new Error(`${error.message}: ${JSON.stringify((await sql`select id, status from workers`.execute(t.db)).rows)} ${frozen.stderr().slice(-2000)}`)
    })

    const created = await rvx(
      [
        'orchestrate',
        '--provider',
        'simulated',
        '--criteria',
        '{"pms":"Buildium","state":"TX"}',
        '--quantity',
        '30',
        '--detach',
        '--json',
        '--sim-latency',
        '400ms-1600ms',
        '--sim-faults',
        'transient=0.05,rate_limit=0.03,malformed=0.02',
      ],
      {env: env()},
    )
    assert.equal(created.code, 0, created.stderr)
    const runId: number = JSON.parse(created.stdout).runId

    // Freeze the seventh worker while it is inside contact searches (claimed 0.6-1.5 s ago: past the reads before the model
    // call, inside the model call's 2-3 s, so it ends while the worker is frozen; still running). Contact searches, because
    // nothing but the death sweep takes them back: research it held could be canceled at the target while it is frozen
    // (a canceled task is revoked, not presumed dead), and the one discovery task would hold up the whole run. Wake it
    // once it has been presumed dead (15 s without a heartbeat: its session is alive, so only the timeout can tell); the
    // run cannot complete before that, since it waits for those searches.
    let runAtWake = ''
    const freezer = (async () => {
      await waitFor(
        'the seventh worker to be in the middle of tasks',
        async () => {
          const {rows} = await sql<{
            n: number
          }>`select count(*)::int as n from tasks where lease_owner = ${FROZEN} and kind = 'contact' and status = 'running' and started_at between now() - interval '1500 milliseconds' and now() - interval '600 milliseconds'`.execute(
            t.db,
          )
          return rows[0].n > 0
        },
        60_000,
        50,
      )
      frozen.child.kill('SIGSTOP')
      await waitFor(
        'the frozen worker to be presumed dead',
        async () => (await sql<{status: string}>`select status from workers where id = ${FROZEN}`.execute(t.db)).rows[0].status === 'dead',
        40_000,
        250,
      )
      runAtWake = (await sql<{status: string}>`select status from runs where id = ${runId}`.execute(t.db)).rows[0].status
      frozen.child.kill('SIGCONT')
    })()

    // Every ~3 s for 30 s: SIGKILL a worker (one holding tasks when there is one) and start a replacement.
    const killed: string[] = []
    const chaosEnds = Date.now() + KILL_FOR_MS
    while (Date.now() < chaosEnds) {
      await new Promise((r) => setTimeout(r, KILL_EVERY_MS))
      // A worker holding tasks when there is one, else any registered one (a replacement still starting up has
      // no row yet: killing it would test nothing, and it could never be marked dead).
      const {rows} = await sql<{id: string; holding: boolean}>`
        select w.id, exists (select 1 from tasks t where t.status = 'running' and t.lease_owner = w.id) as holding
        from workers w where w.id = any(${[...fleet.keys()]}::text[]) and w.status in ('idle', 'busy')`.execute(t.db)
      const holding = rows.filter((r) => r.holding)
      const candidates = (holding.length > 0 ? holding : rows).map((r) => r.id)
      if (candidates.length === 0) continue
      const victim = candidates[Math.floor(Math.random() * candidates.length)]
      const {type, proc} = fleet.get(victim)!
      proc.child.kill('SIGKILL')
      assert.equal((await proc.exited).signal, 'SIGKILL')
      fleet.delete(victim)
      killed.push(victim)
      startWorker(type)
    }

    await freezer
    assert.equal(runAtWake, 'running', 'the frozen worker woke up mid-run')

    const status = await waitFor(
      'the run to end',
      async () => {
        const {rows} = await sql<{status: string}>`select status from runs where id = ${runId}`.execute(t.db)
        return rows[0].status !== 'running' && rows[0].status
      },
      90_000,
      250,
    )
    assert.equal(status, 'completed')
    assert.ok(killed.length > 0)

    // Exactly 30 selected; no duplicate companies or contacts.
    const companies = await sql<{selected: number; domains: number; rows: number}>`
      select count(*) filter (where status = 'selected')::int as selected, count(distinct domain)::int as domains, count(*)::int as rows
      from companies where run_id = ${runId}`.execute(t.db)
    assert.equal(companies.rows[0].selected, 30)
    assert.equal(companies.rows[0].domains, companies.rows[0].rows)
    const dupContacts = await sql<{n: number}>`
      select count(*)::int as n from (
        select company_id, lower(full_name) from contacts where run_id = ${runId} group by 1, 2 having count(*) > 1
        union all
        select company_id, lower(email) from contacts where run_id = ${runId} and email is not null group by 1, 2 having count(*) > 1) d`.execute(t.db)
    assert.equal(dupContacts.rows[0].n, 0)
    const unserved = await sql<{n: number}>`
      select count(*)::int as n from companies c
      where c.run_id = ${runId} and c.status = 'selected' and not exists (select 1 from contacts k where k.company_id = c.id)`.execute(t.db)
    assert.equal(unserved.rows[0].n, 0, 'every selected company has its decision makers')

    // Every task terminal.
    const open = await sql<{n: number}>`select count(*)::int as n from tasks where scope = ${`run:${runId}`} and status in ('queued', 'running')`.execute(t.db)
    assert.equal(open.rows[0].n, 0)

    // Every lease a killed worker held when it died was taken back (by the sweep, or lease expiry at worst).
    const held = await sql<{task_id: number; lease_epoch: number; worker_id: string; recovered: boolean}>`
      select c.task_id, c.lease_epoch, c.worker_id,
        exists (select 1 from task_events r where r.task_id = c.task_id and r.lease_epoch = c.lease_epoch
                  and r.event in ('requeued_after_death', 'requeued_lease_expired')) as recovered
      from task_events c
      where c.event = 'claimed' and c.worker_id = any(${killed}::text[])
        and not exists (select 1 from task_events d where d.task_id = c.task_id and d.lease_epoch = c.lease_epoch
                          and d.event in ('completed', 'failed', 'retry_scheduled', 'snoozed', 'released', 'canceled', 'fenced_out'))`.execute(t.db)
    assert.ok(held.rows.length > 0, 'the kills hit workers holding tasks')
    assert.deepEqual(
      held.rows.filter((h) => !h.recovered),
      [],
      'every task a killed worker held was recovered',
    )
    await waitFor(
      'every killed worker to be marked dead (the last kill may be seconds old)',
      async () =>
        (await sql<{n: number}>`select count(*)::int as n from workers where id = any(${killed}::text[]) and status = 'dead'`.execute(t.db)).rows[0].n ===
        killed.length,
      20_000,
      250,
    )

    // No stale completion applied: one completion per completed task, under the task's final lease.
    const completions = await sql<{id: number; completions: number; epoch_ok: boolean}>`
      select t.id, count(e.*)::int as completions, bool_and(e.lease_epoch = t.lease_epoch) as epoch_ok
      from tasks t join task_events e on e.task_id = t.id and e.event = 'completed'
      where t.scope = ${`run:${runId}`}
      group by t.id`.execute(t.db)
    assert.ok(completions.rows.length > 0)
    assert.deepEqual(
      completions.rows.filter((c) => c.completions !== 1 || !c.epoch_ok),
      [],
    )
    const completedTasks = await sql<{n: number}>`select count(*)::int as n from tasks where scope = ${`run:${runId}`} and status = 'completed'`.execute(t.db)
    assert.equal(completions.rows.length, completedTasks.rows[0].n)

    // The frozen worker's leases were taken back when it was presumed dead, and what it delivered after waking was
    // rejected (fenced_out, at its stale epochs), never completed or applied: the completion and the stage's writes
    // (companies, contacts) commit in one transaction, behind the fence.
    const {rows: revoked} = await sql<{task_id: number; lease_epoch: number; completed: number; fenced: number}>`
      select c.task_id, c.lease_epoch,
        (select count(*)::int from task_events d where d.task_id = c.task_id and d.lease_epoch = c.lease_epoch and d.event = 'completed') as completed,
        (select count(*)::int from task_events f where f.task_id = c.task_id and f.lease_epoch = c.lease_epoch and f.event = 'fenced_out' and f.worker_id = ${FROZEN}) as fenced
      from task_events c
      where c.event = 'claimed' and c.worker_id = ${FROZEN}
        and exists (select 1 from task_events r where r.task_id = c.task_id and r.lease_epoch = c.lease_epoch and r.event = 'requeued_after_death' and r.worker_id = ${FROZEN})`.execute(
      t.db,
    )
    assert.ok(revoked.length > 0, 'the frozen worker held tasks when it was presumed dead')
    assert.deepEqual(
      revoked.filter((r) => r.completed > 0),
      [],
      'no stale completion',
    )
    // On waking, each such task either finished its model call first and offered its result, which the fence rejected,
    // or was stopped by the first heartbeat, which learned its lease was gone: either way nothing of it was applied.
    const stopped = (id: number) => frozen.stderr().includes(`"task":${id},"msg":"lease lost; handler aborted"`)
    assert.deepEqual(
      revoked.filter((r) => r.fenced === 0 && !stopped(r.task_id)),
      [],
      `its late results reached the fence and were rejected, or its handlers were stopped: ${JSON.stringify(revoked)}; the frozen worker's log: ${frozen.stderr().slice(-4000)}`,
    )
    const {rows: fencedElsewhere} = await sql<{n: number}>`
      select count(*)::int as n from task_events f join tasks t on t.id = f.task_id
      where f.event = 'fenced_out' and f.worker_id = ${FROZEN} and f.lease_epoch = t.lease_epoch and t.status = 'completed'`.execute(t.db)
    assert.equal(fencedElsewhere[0].n, 0, 'a rejected result is never the one a task completed with')
    assert.equal(frozen.child.exitCode, null, 'the woken worker carries on')

    // The monitor counted the same recoveries the events record.
    const recoveries = await sql<{n: number}>`select count(*)::int as n from task_events where event = 'requeued_after_death'`.execute(t.db)
    await waitFor(
      'the monitor to count every recovery',
      async () =>
        metricSum(parseMetrics(await (await fetch(metricsUrl)).text()), 'rvx_task_recoveries_total', {reason: 'worker_died'}) === recoveries.rows[0].n,
      10_000,
      250,
    )

    // And the export says the same.
    const out = `${process.env.RVX_TEST_HOME}/chaos-exports`
    const exported = await rvx(['runs', 'export', String(runId), '--output-dir', out, '--json'], {env: env()})
    assert.equal(exported.code, 0, exported.stderr)
    const files = JSON.parse(exported.stdout).files
    const csv = parse(fs.readFileSync(files.companies, 'utf8'), {columns: true}) as Array<{domain: string}>
    assert.equal(csv.length, 30)
    const domains = new Set(csv.map((c) => c.domain))
    assert.equal(domains.size, 30)
    const people = parse(fs.readFileSync(files.contacts, 'utf8'), {columns: true}) as Array<{company_domain: string; full_name: string; email: string}>
    assert.ok(
      people.every((p) => domains.has(p.company_domain)),
      'every contact belongs to an exported company',
    )
    assert.equal(new Set(people.map((p) => `${p.company_domain}|${p.full_name.toLowerCase()}`)).size, people.length, 'no contact twice')
    const emails = people.map((p) => p.email.toLowerCase()).filter(Boolean)
    assert.equal(new Set(emails).size, emails.length, 'no email twice')
    const perCompany = new Map<string, number>()
    for (const p of people) perCompany.set(p.company_domain, (perCompany.get(p.company_domain) ?? 0) + 1)
    assert.equal(perCompany.size, 30)
    assert.ok(
      [...perCompany.values()].every((n) => n >= 1 && n <= 3),
      'one to three decision makers each',
    )
    const stored = await sql<{
      n: number
    }>`select count(*)::int as n from contacts k join companies c on c.id = k.company_id where c.run_id = ${runId} and c.status = 'selected'`.execute(t.db)
    assert.equal(people.length, stored.rows[0].n)
  })
})
