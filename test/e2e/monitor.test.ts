import assert from 'node:assert/strict'
import {parse} from 'csv-parse/sync'
import {sql} from 'kysely'

import {parseCriteria, validateSize} from '../../src/pipeline/criteria.js'
import {createRun} from '../../src/pipeline/runs.js'
import {LOCK_CLASS_MONITOR} from '../../src/runtime/config.js'
import {claimTasks, enqueue, failTask, retryTask} from '../../src/runtime/index.js'
import {metricSum, parseMetrics, startSmtp, startWebhook, type SmtpCapture, type WebhookCapture} from '../helpers/capture-servers.js'
import {hasStackTrace, lines, rvx} from '../helpers/cli.js'
import {useFreshDatabase} from '../helpers/db.js'
import {type Spawned, spawnCli, waitFor} from '../helpers/processes.js'
import {lintExposition, promtoolCheck, promtoolPath} from '../helpers/prometheus.js'
import {registeredWorker} from '../helpers/runtime.js'
import {STAGES} from '../../src/pipeline/stages/index.js'

/** The values of the series of `name` whose labels are exactly `labels`. */
function series(samples: ReturnType<typeof parseMetrics>, name: string, labels: Record<string, string>): number[] {
  return samples
    .filter((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === JSON.stringify(Object.entries(labels).sort()))
    .map((s) => s.value)
}

const CLAIM = {workerId: 'probe-worker', limit: 1, leaseMs: 30_000, pool: 'default', capabilities: [], memoryAvailableGb: 64, gpuVramAvailableGb: 0}

/** A task that failed for good, through the runtime's own calls. */
async function failedTask(db: Parameters<typeof enqueue>[0], error: string): Promise<number> {
  const [task] = await enqueue(db, {kind: 'probe', payload: {}, maxAttempts: 1})
  const [claimed] = await claimTasks(db, {...CLAIM, kinds: ['probe']})
  assert.equal(claimed.id, task.id)
  assert.equal(
    await failTask(db as never, {taskId: claimed.id, epoch: claimed.epoch, workerId: CLAIM.workerId}, error, {permanent: true, retryInMs: 0}),
    'failed',
  )
  return task.id
}

describe('e2e: rvx monitor', function () {
  this.timeout(120_000)

  describe('alerts to a webhook', () => {
    const t = useFreshDatabase()
    let hook: WebhookCapture
    before(async () => {
      hook = await startWebhook()
    })
    beforeEach(() => hook.reset())
    after(() => hook.close())
    const once = () => rvx(['monitor', '--once', '--alert-webhook', hook.url], {env: {DATABASE_URL: t.url}})

    it('sends each condition once, retries a failing endpoint, and alerts again only when a condition comes back', async () => {
      const taskId = await failedTask(t.db, 'upstream said 400: bad request')
      const run = await createRun(t.db, {
        criteria: parseCriteria('{"state":"TX"}'),
        size: validateSize({quantity: 10, contactsMin: 1, contactsMax: 3}),
        provider: 'simulated',
      })
      await sql`update runs set status = 'needs_decision', notes = 'only 3 of 10 qualified' where id = ${run.id}`.execute(t.db)
      hook.failNext(1, 503)

      const first = await once()
      assert.equal(first.code, 0, first.stderr)
      assert.equal(hook.requests.length, 2, 'one refused POST, then the retry')
      assert.deepEqual(
        hook.requests.map((r) => r.status),
        [503, 200],
      )
      assert.deepEqual(hook.requests[0].body, hook.requests[1].body, 'the retry sends the same message')
      const sent = hook.requests[1].body
      assert.deepEqual(sent.alerts.map((a: {kind: string}) => a.kind).sort(), ['run_needs_decision', 'task_failed'])
      assert.match(sent.text, new RegExp(`task ${taskId} \\(probe\\) failed after 1 attempt: upstream said 400`))
      assert.match(sent.text, new RegExp(`run ${run.id} needs a decision: only 3 of 10 qualified`))
      assert.ok(!first.stderr.includes('secret-token'), 'the webhook path (its secret) is never logged')

      assert.equal((await once()).code, 0)
      assert.equal(hook.requests.length, 2, 'nothing new: nothing sent')

      // The condition clears (a person retries the task)...
      assert.ok(await retryTask(t.db, taskId))
      assert.equal((await once()).code, 0)
      assert.equal(hook.requests.length, 2)
      const open = await sql<{n: number}>`select count(*)::int as n from alerts where key = ${`task:${taskId}:failed`} and resolved_at is null`.execute(t.db)
      assert.equal(open.rows[0].n, 0, 'the alert is resolved once the task is no longer failed')

      // ...and comes back: news again.
      const [again] = await claimTasks(t.db, {...CLAIM, kinds: ['probe']})
      await failTask(t.db, {taskId: again.id, epoch: again.epoch, workerId: CLAIM.workerId}, 'still broken', {permanent: true, retryInMs: 0})
      assert.equal((await once()).code, 0)
      assert.equal(hook.requests.length, 3)
      assert.deepEqual(
        hook.requests[2].body.alerts.map((a: {kind: string; details: {taskId: number}}) => [a.kind, a.details.taskId]),
        [['task_failed', taskId]],
      )
    })

    it('a webhook that keeps refusing leaves the alert pending with its error, to be retried later', async () => {
      const taskId = await failedTask(t.db, 'boom')
      hook.failNext(10, 400)
      const result = await once()
      assert.equal(result.code, 0, 'the monitor does not die because a channel is down')
      assert.equal(hook.requests.at(-1)!.status, 400)
      const row = await sql<{
        delivered_at: Date | null
        last_error: string
        attempts: number
      }>`select delivered_at, last_error, attempts from alerts where key = ${`task:${taskId}:failed`}`.execute(t.db)
      assert.equal(row.rows[0].delivered_at, null)
      assert.equal(row.rows[0].attempts, 1)
      assert.match(row.rows[0].last_error, /HTTP 400/)
      assert.ok(!row.rows[0].last_error.includes('secret-token'))
    })

    it('alerts on a run that makes no progress for --stuck-after (delivered), and re-plans a run with nothing in flight', async () => {
      const stuck = await createRun(t.db, {
        criteria: parseCriteria('{"state":"FL"}'),
        size: validateSize({quantity: 5, contactsMin: 1, contactsMax: 3}),
        provider: 'simulated',
      })
      // A run whose only task was quarantined: nothing queued or running, nobody would look at it again.
      const orphan = await createRun(t.db, {
        criteria: parseCriteria('{"state":"GA"}'),
        size: validateSize({quantity: 5, contactsMin: 1, contactsMax: 3}),
        provider: 'simulated',
      })
      await sql`update tasks set status = 'quarantined', finished_at = now() where scope = ${`run:${orphan.id}`}`.execute(t.db)
      await new Promise((r) => setTimeout(r, 1500))

      const r = await rvx(['monitor', '--once', '--stuck-after', '1s', '--alert-webhook', hook.url], {env: {DATABASE_URL: t.url}})
      assert.equal(r.code, 0, r.stderr)
      // Re-planned: the quarantined discovery left the run short, so a second discovery round is queued and it runs on.
      assert.match(r.stderr, new RegExp(`run ${orphan.id} had nothing in flight; re-planned: running`))
      const replanned = (
        await sql<{status: string; stage: string; discovery_rounds: number}>`select status, stage, discovery_rounds from runs where id = ${orphan.id}`.execute(
          t.db,
        )
      ).rows[0]
      assert.deepEqual(replanned, {status: 'running', stage: 'discovery', discovery_rounds: 2})
      const {rows: queued} = await sql<{
        kind: string
        payload: {round: number}
      }>`select kind, payload from tasks where scope = ${`run:${orphan.id}`} and status = 'queued'`.execute(t.db)
      assert.deepEqual(
        queued.map((q) => [q.kind, q.payload.round]),
        [['lead-list', 2]],
      )

      // The stuck run's alert was delivered (a POST the endpoint accepted), and recorded as delivered.
      const delivered = hook.requests
        .filter((q) => q.status === 200)
        .flatMap((q) => q.body.alerts as Array<{kind: string; subject: string; details: {runId?: number}}>)
      const alert = delivered.find((a) => a.kind === 'run_stuck' && a.details.runId === stuck.id)
      assert.ok(alert, JSON.stringify(hook.requests))
      assert.match(alert.subject, /has made no progress for \d+s \(stage discovery, 1 queued, 0 running; no live workers: start some with rvx worker all\)/)
      const row = await sql<{delivered_at: Date | null}>`select delivered_at from alerts where key = ${`run:${stuck.id}:stuck`}`.execute(t.db)
      assert.ok(row.rows[0].delivered_at, 'recorded as delivered')
      assert.ok(!delivered.some((a) => a.kind === 'run_stuck' && a.details.runId === orphan.id), 'the re-planned run is not stuck')
    })

    it('rejects bad flags with one line and exit 2', async () => {
      for (const args of [
        ['--alert-webhook', 'not a url'],
        ['--interval', 'soon'],
        ['--alert-email', 'ops@example.com'],
        ['--dead-after', '2s'],
      ]) {
        const r = await rvx(['monitor', '--once', ...args], {env: {DATABASE_URL: t.url, SMTP_URL: ''}})
        assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`)
        assert.equal(lines(r.stderr).length, 1, r.stderr)
        assert.ok(!hasStackTrace(r.stderr))
      }
    })
  })

  describe('alerts: a worker dies, a task is quarantined', () => {
    const t = useFreshDatabase()
    let hook: WebhookCapture
    const spawned: Spawned[] = []
    before(async () => {
      hook = await startWebhook()
    })
    after(async () => {
      for (const p of spawned) p.child.kill('SIGKILL')
      await hook.close()
    })

    it('sends worker_dead for each crashed worker and task_quarantined for the task that crashed them three times, once each', async () => {
      const env = {DATABASE_URL: t.url}
      const monitor = spawnCli(['monitor', '--interval', '500ms', '--alert-webhook', hook.url], env)
      spawned.push(monitor)
      await waitFor('the monitor to be active', async () => monitor.stderr().includes('"active":true'))
      // Every model call of this run kills its worker process (the simulated OOM killer).
      const created = await rvx(
        ['orchestrate', '--provider', 'simulated', '--criteria', '{"state":"TX"}', '--quantity', '3', '--detach', '--json', '--sim-faults', 'crash=1'],
        {env},
      )
      assert.equal(created.code, 0, created.stderr)
      const {runId} = JSON.parse(created.stdout)
      const [{id: taskId}] = (await sql<{id: number}>`select id from tasks where scope = ${`run:${runId}`}`.execute(t.db)).rows

      // Three workers: one takes the discovery task and dies; the monitor's sweep puts it back; the next one takes it...
      const workers = ['crasher-1', 'crasher-2', 'crasher-3'].map((id) => spawnCli(['worker', 'all', '--id', id, '--concurrency', '1'], env))
      spawned.push(...workers)
      const exits = await Promise.all(workers.map((w) => w.exited))
      assert.deepEqual(
        exits.map((e) => e.signal),
        ['SIGKILL', 'SIGKILL', 'SIGKILL'],
        'each died on the task',
      )
      const task = await waitFor(
        'the task to be quarantined',
        async () => {
          const row = await t.db.selectFrom('tasks').select(['status', 'crash_count']).where('id', '=', taskId).executeTakeFirstOrThrow()
          return row.status === 'quarantined' && row
        },
        45_000,
      )
      assert.equal(task.crash_count, 3)

      type Sent = {kind: string; severity: string; subject: string; details: {workerId?: string; taskId?: number; crashes?: number}}
      const delivered = () => hook.requests.filter((q) => q.status === 200).flatMap((q) => q.body.alerts as Sent[])
      await waitFor(
        'the alerts',
        async () => delivered().filter((a) => a.kind === 'worker_dead').length === 3 && delivered().some((a) => a.kind === 'task_quarantined'),
        45_000,
      )
      const dead = delivered().filter((a) => a.kind === 'worker_dead')
      assert.deepEqual(dead.map((a) => a.details.workerId).sort(), ['crasher-1', 'crasher-2', 'crasher-3'])
      for (const a of dead)
        assert.match(
          a.subject,
          new RegExp(`^worker ${a.details.workerId} \\(${STAGES.map((s) => s.name).join(', ')}\\) on .+ died; its tasks were put back for other workers$`),
        )
      const [quarantined] = delivered().filter((a) => a.kind === 'task_quarantined')
      assert.equal(quarantined.severity, 'critical')
      assert.deepEqual([quarantined.details.taskId, quarantined.details.crashes], [taskId, 3])
      assert.match(quarantined.subject, new RegExp(`^task ${taskId} \\(discovery in run ${runId}\\) quarantined after 3 crashes; rvx runs resume retries it$`))

      // Once each: a few more intervals (four of its 500 ms; the fleet line is logged only when it changes) send none of them again.
      const sentBefore = hook.requests.length
      await new Promise((resolve) => setTimeout(resolve, 2000))
      const again = hook.requests
        .slice(sentBefore)
        .flatMap((q) => q.body.alerts as Sent[])
        .filter((a) => a.kind === 'worker_dead' || a.kind === 'task_quarantined')
      assert.deepEqual(again, [])
    })
  })

  describe('mail: alerts and run notices through SMTP', () => {
    const t = useFreshDatabase()
    let smtp: SmtpCapture
    before(async () => {
      smtp = await startSmtp()
    })
    after(() => smtp.close())
    const env = () => ({DATABASE_URL: t.url, SMTP_URL: smtp.url})

    it('orchestrate --notify-email mails both CSVs when the run completes, once', async () => {
      const r = await rvx(
        [
          'orchestrate',
          '--provider',
          'simulated',
          '--criteria',
          '{"pms":"Buildium","state":"TX"}',
          '--quantity',
          '5',
          '--notify-email',
          'sales@example.com',
          '--output-dir',
          `${process.env.RVX_TEST_HOME}/exports`,
          '--json',
        ],
        {env: env()},
      )
      assert.equal(r.code, 0, r.stderr)
      const {runId} = JSON.parse(r.stdout)
      const [mail] = await waitFor('the completion mail', async () => smtp.to('sales@example.com').length > 0 && smtp.to('sales@example.com'))
      assert.match(mail.subject!, new RegExp(`rvx run ${runId} completed: 5 companies, \\d+ contacts`))
      assert.deepEqual(
        mail.attachments.map((a) => a.filename),
        [`run-${runId}-companies.csv`, `run-${runId}-contacts.csv`],
      )
      const companies = parse(mail.attachments[0].content.toString(), {columns: true}) as Array<{domain: string}>
      assert.equal(companies.length, 5)
      const contacts = parse(mail.attachments[1].content.toString(), {columns: true}) as Array<{company_domain: string}>
      assert.ok(contacts.length >= 5 && contacts.every((c) => companies.some((co) => co.domain === c.company_domain)))

      // A monitor coming along later knows it was sent.
      assert.equal((await rvx(['monitor', '--once'], {env: env()})).code, 0)
      assert.equal(smtp.to('sales@example.com').length, 1)
    })

    it('a detached run that stalls: the monitor mails the options once, alerts ops, and mails the CSVs after accept', async () => {
      const created = await rvx(
        [
          'orchestrate',
          '--provider',
          'simulated',
          '--criteria',
          '{"pms":"Buildium","state":"TX"}',
          '--quantity',
          '200',
          '--detach',
          '--notify-email',
          'sales@example.com',
          '--json',
        ],
        {env: env()},
      )
      assert.equal(created.code, 0, created.stderr)
      const {runId} = JSON.parse(created.stdout)
      const worker = await rvx(['worker', 'all', '--run', String(runId), '--exit-when-idle'], {env: env()})
      assert.equal(worker.code, 0, worker.stderr)
      const before = smtp.to('sales@example.com').length

      const monitor = await rvx(['monitor', '--once', '--alert-email', 'ops@example.com'], {env: env()})
      assert.equal(monitor.code, 0, monitor.stderr)
      assert.ok(!monitor.stderr.includes('p@ss'), 'the SMTP password is never logged')
      const notices = await waitFor('the decision mail', async () => smtp.to('sales@example.com').length > before && smtp.to('sales@example.com').slice(before))
      assert.equal(notices.length, 1)
      assert.equal(notices[0].subject, `rvx run ${runId} needs your decision`)
      assert.match(notices[0].text!, new RegExp(`rvx runs accept ${runId}`))
      assert.match(notices[0].text!, new RegExp(`rvx runs resume ${runId} --quantity N`))
      const ops = smtp.to('ops@example.com')
      assert.equal(ops.length, 1)
      assert.match(ops[0].subject!, new RegExp(`run ${runId} needs a decision`))

      assert.equal((await rvx(['monitor', '--once', '--alert-email', 'ops@example.com'], {env: env()})).code, 0)
      assert.equal(smtp.to('sales@example.com').length, before + 1, 'sent once')
      assert.equal(smtp.to('ops@example.com').length, 1, 'alerted once')

      assert.equal((await rvx(['runs', 'accept', String(runId)], {env: env()})).code, 0)
      assert.equal((await rvx(['monitor', '--once'], {env: env()})).code, 0)
      const done = smtp.to('sales@example.com').at(-1)!
      assert.match(done.subject!, new RegExp(`rvx run ${runId} completed`))
      assert.equal(done.attachments.length, 2)
    })

    it('--notify-email without SMTP_URL, or with a bad address, is a one-line usage error before any run is created', async () => {
      const runs = async () => (await sql<{n: number}>`select count(*)::int as n from runs`.execute(t.db)).rows[0].n
      const count = await runs()
      for (const [address, smtpUrl, message] of [
        ['sales@example.com', '', /SMTP_URL/],
        ['not-an-address', smtp.url, /not an email address/],
      ] as const) {
        const r = await rvx(['orchestrate', '--provider', 'simulated', '--criteria', '{"state":"TX"}', '--quantity', '1', '--notify-email', address], {
          env: {DATABASE_URL: t.url, SMTP_URL: smtpUrl},
        })
        assert.equal(r.code, 2, r.stderr)
        assert.equal(lines(r.stderr).length, 1, r.stderr)
        assert.match(r.stderr, message)
      }

      assert.equal(await runs(), count)
    })
  })

  describe('metrics and standby', () => {
    const t = useFreshDatabase()
    const spawned: Spawned[] = []
    afterEach(() => {
      for (const p of spawned.splice(0)) p.child.kill('SIGKILL')
    })
    /** Two monitors at a 500 ms interval: the first active, the second standing by. */
    const activeAndStandby = async (): Promise<[Spawned, Spawned]> => {
      const first = spawnCli(['monitor', '--interval', '500ms'], {DATABASE_URL: t.url})
      spawned.push(first)
      await waitFor('the first monitor to be active', async () => first.stderr().includes('"active":true'))
      const second = spawnCli(['monitor', '--interval', '500ms'], {DATABASE_URL: t.url})
      spawned.push(second)
      await waitFor('the second to stand by', async () => second.stderr().includes('"active":false'))
      return [first, second]
    }

    it('serves Prometheus metrics: fleet, queue, durations, tokens', async () => {
      const monitor = spawnCli(['monitor', '--interval', '300ms', '--metrics-port', '0'], {DATABASE_URL: t.url})
      spawned.push(monitor)
      const url = await waitFor('the metrics url', async () => /metrics on (http:[^\s"]+)/.exec(monitor.stderr())?.[1])
      // Counters count from the monitor's first interval on.
      await waitFor('the first interval', async () => monitor.stderr().includes('fleet:'))
      const run = await rvx(
        ['orchestrate', '--provider', 'simulated', '--criteria', '{"state":"TX"}', '--quantity', '5', '--output-dir', `${process.env.RVX_TEST_HOME}/exports`],
        {env: {DATABASE_URL: t.url}},
      )
      assert.equal(run.code, 0, run.stderr)
      // Gauges are read at the start of an interval, counters at its end: wait for an interval that began after the run ended.
      const samples = await waitFor('the finished run in the metrics', async () => {
        const s = parseMetrics(await (await fetch(url)).text())
        return (
          metricSum(s, 'rvx_task_events_total', {kind: 'contact', event: 'completed'}) >= 5 &&
          metricSum(s, 'rvx_runs', {status: 'completed'}) === 1 &&
          metricSum(s, 'rvx_workers', {type: 'company', status: 'stopped'}) >= 1 &&
          s
        )
      })
      assert.equal(metricSum(samples, 'rvx_monitor_active'), 1)
      assert.ok(metricSum(samples, 'rvx_task_events_total', {kind: 'company', event: 'completed'}) >= 5)
      assert.equal(
        metricSum(samples, 'rvx_task_duration_seconds_count', {kind: 'lead-list'}),
        metricSum(samples, 'rvx_task_events_total', {kind: 'lead-list', event: 'completed'}),
      )
      assert.ok(metricSum(samples, 'rvx_llm_tokens_total', {provider: 'simulated', direction: 'output'}) > 0)
      assert.ok(metricSum(samples, 'rvx_llm_calls_total', {provider: 'simulated'}) > 0)
      assert.equal(metricSum(samples, 'rvx_workers', {type: 'company', status: 'idle'}), 0)
      assert.equal(metricSum(samples, 'rvx_tasks', {status: 'running'}), 0)
      assert.equal(metricSum(samples, 'rvx_runs', {status: 'completed'}), 1)
      // After the run: no run is running, and that reads 0 rather than nothing; the simulated calls' cost (sim-1 is priced like a small real model) is one series.
      assert.deepEqual(series(samples, 'rvx_runs', {status: 'running'}), [0])
      const cost = series(samples, 'rvx_llm_cost_usd_total', {provider: 'simulated', model: 'sim-1'})
      assert.equal(cost.length, 1)
      assert.ok(cost[0] > 0, `sim-1 cost ${cost[0]}`)
      // What research found is cached (the next run of these criteria reuses it); the simulated world has no quota to wait for.
      assert.ok(metricSum(samples, 'rvx_research_cache_entries', {kind: 'research'}) >= 5)
      assert.deepEqual(series(samples, 'rvx_llm_quota_wait_seconds_total', {provider: 'simulated', model: 'sim-1'}), [0])
      assert.ok(samples.some((s) => s.name === 'rvx_monitor_process_resident_memory_bytes'))
      assert.equal((await fetch(url.replace('/metrics', '/nope'))).status, 404)
      monitor.child.kill('SIGTERM')
      assert.equal((await monitor.exited).code, 143)
    })

    it('lints clean (promtool check metrics, and the exposition rules), every series there from the start; a worker running tasks counts as busy at once', async () => {
      // A worker between two heartbeats: its row says idle, while it runs a task.
      const worker = await registeredWorker(t.db, t.url, 'w-metrics', ['probe'])
      try {
        await enqueue(t.db, {kind: 'probe'})
        assert.equal((await claimTasks(t.db, {...CLAIM, workerId: 'w-metrics', kinds: ['probe']})).length, 1)
        const monitor = spawnCli(['monitor', '--interval', '300ms', '--metrics-port', '0'], {DATABASE_URL: t.url})
        spawned.push(monitor)
        const url = await waitFor('the metrics url', async () => /metrics on (http:[^\s"]+)/.exec(monitor.stderr())?.[1])
        const text = await waitFor('the first interval in the metrics', async () => {
          const body = await (await fetch(url)).text()
          return metricSum(parseMetrics(body), 'rvx_workers', {type: 'probe'}) > 0 && body
        })

        assert.deepEqual(lintExposition(text), [])
        const promtool = promtoolPath()
        if (promtool) {
          const checked = promtoolCheck(promtool, text)
          assert.equal(checked.status, 0, `promtool check metrics: ${checked.output}`)
        }

        const samples = parseMetrics(text)
        assert.deepEqual(series(samples, 'rvx_workers', {type: 'probe', status: 'busy'}), [1])
        assert.deepEqual(series(samples, 'rvx_workers', {type: 'probe', status: 'idle'}), [0])
        for (const status of ['running', 'needs_decision', 'completed', 'failed', 'canceled'])
          assert.equal(series(samples, 'rvx_runs', {status}).length, 1, status)
        // Counters start at 0 for what is known up front: the stages' kinds, the providers' models, the alert kinds.
        for (const [provider, model] of [
          ['simulated', 'sim-1'],
          ['openai', 'gpt-4.1-mini'],
        ]) {
          assert.deepEqual(series(samples, 'rvx_llm_cost_usd_total', {provider, model}), [0])
          assert.deepEqual(series(samples, 'rvx_llm_calls_total', {provider, model, outcome: 'ok'}), [0])
          assert.deepEqual(series(samples, 'rvx_llm_tokens_total', {provider, model, direction: 'input'}), [0])
          assert.deepEqual(series(samples, 'rvx_llm_quota_wait_seconds_total', {provider, model}), [0])
        }

        for (const kind of ['research', 'contacts']) assert.equal(series(samples, 'rvx_research_cache_hits', {kind}).length, 1, kind)

        for (const kind of ['lead-list', 'company', 'contact']) {
          assert.deepEqual(series(samples, 'rvx_task_events_total', {kind, event: 'completed'}), [0])
          assert.deepEqual(series(samples, 'rvx_task_recoveries_total', {kind, reason: 'worker_died'}), [0])
          assert.deepEqual(series(samples, 'rvx_task_duration_seconds_count', {kind}), [0])
        }

        assert.deepEqual(series(samples, 'rvx_alerts_total', {kind: 'worker_dead'}), [0])
        assert.ok(!samples.some((s) => s.name.endsWith('_total') && /active_(handles|requests|resources)/.test(s.name)), 'no gauge named *_total')
      } finally {
        await worker.close()
      }
    })

    it('a standby monitor takes over when the active one dies', async () => {
      const [first, second] = await activeAndStandby()
      await new Promise((r) => setTimeout(r, 1000))
      assert.ok(!second.stderr().includes('"active":true'), 'only one is active while both live')
      assert.ok(!second.stderr().includes('fleet:'), 'a standby does not log fleet summaries')

      first.child.kill('SIGKILL')
      // Ten of its 500 ms intervals at most; it takes over at the first one after the lock is free.
      await waitFor('the standby to take over', async () => second.stderr().includes('"active":true'), 5000, 50)
      await waitFor('its first fleet summary', async () => second.stderr().includes('fleet:'))
      const holder = await sql<{application_name: string}>`
        select a.application_name from pg_locks l join pg_stat_activity a on a.pid = l.pid
        where l.locktype = 'advisory' and l.granted and l.classid::int = ${LOCK_CLASS_MONITOR} and l.objid = 0`.execute(t.db)
      assert.deepEqual(
        holder.rows.map((r) => r.application_name.endsWith(`-${second.child.pid}`)),
        [true],
        'the lock is now held by the standby, and only by it',
      )
      second.child.kill('SIGINT')
      assert.equal((await second.exited).code, 130)
    })

    it('a standby ends the session of a hung active monitor (SIGSTOP) and takes over; the woken one stands by', async () => {
      const [first, second] = await activeAndStandby()

      first.child.kill('SIGSTOP')
      // Hung = no stamp for three of its intervals and at least 15 s.
      await waitFor('the standby to take over from the hung one', async () => second.stderr().includes('"active":true'), 30_000, 100)
      assert.match(second.stderr(), /stopped answering; ended its session and took over/)
      const before = first.stderr().length
      first.child.kill('SIGCONT')
      await waitFor('the woken monitor to stand by', async () => first.stderr().slice(before).includes('"active":false'), 15_000)
      await new Promise((r) => setTimeout(r, 1500))
      assert.ok(!first.stderr().slice(before).includes('"active":true'), 'it does not take the lock back')
    })
  })
})
