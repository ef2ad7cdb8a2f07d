import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {parse} from 'csv-parse/sync'
import {sql} from 'kysely'

import {DEFAULT_SIMULATION, SimulatedProvider} from '../../src/agents/simulated.js'
import {COMPANY_COLUMNS, CONTACT_COLUMNS} from '../../src/pipeline/export.js'
import {cancelRun} from '../../src/pipeline/runs.js'
import {hasStackTrace, lines, rvx, spawnRvx} from '../helpers/cli.js'
import {spawnCli, waitFor} from '../helpers/processes.js'
import {answer, FakeOpenAI, toolCall} from '../helpers/fake-openai.js'
import {homePage, WebWorld} from '../helpers/web-world.js'
import {useFreshDatabase} from '../helpers/db.js'
import {freeCall} from '../helpers/call-context.js'
import {askDiscovery} from '../../src/pipeline/stages/discovery.js'

describe('e2e: rvx orchestrate --provider simulated (spawned processes)', function () {
  this.timeout(180_000)
  const t = useFreshDatabase()
  let out: string

  before(() => {
    out = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-e2e-'))
  })

  after(() => fs.rmSync(out, {recursive: true, force: true}))

  const env = () => ({DATABASE_URL: t.url, OPENAI_API_KEY: ''})

  function readCsv(file: string): Array<Record<string, string>> {
    return parse(fs.readFileSync(file, 'utf8'), {columns: true, skip_empty_lines: true})
  }

  it('quantity 20 completes with exactly 20 companies, 1-3 contacts each, no duplicates, parseable CSVs', async () => {
    const res = await rvx(
      ['orchestrate', '--provider', 'simulated', '--criteria', '{"pms":"Buildium","state":"TX"}', '--quantity', '20', '--output-dir', out, '--json'],
      {env: env()},
    )
    assert.equal(res.code, 0, res.stderr)
    const result = JSON.parse(res.stdout)
    assert.equal(result.status, 'completed')
    assert.equal(result.progress.companies.selected, 20)

    const companies = readCsv(result.export.files.companies)
    assert.equal(companies.length, 20)
    assert.deepEqual(Object.keys(companies[0]), [...COMPANY_COLUMNS])
    assert.equal(new Set(companies.map((c) => c.domain)).size, 20, 'no duplicate companies')
    assert.ok(companies.every((c) => c.domain.endsWith('.example') && c.pms === 'Buildium' && c.state === 'TX' && c.icp_fit === 'yes'))

    const contacts = readCsv(result.export.files.contacts)
    assert.deepEqual(Object.keys(contacts[0]), [...CONTACT_COLUMNS])
    const perCompany = new Map<string, number>()
    for (const c of contacts) perCompany.set(c.company_domain, (perCompany.get(c.company_domain) ?? 0) + 1)
    assert.equal(perCompany.size, 20)
    assert.ok(
      [...perCompany.values()].every((n) => n >= 1 && n <= 3),
      'contacts within min..max',
    )
    assert.equal(new Set(contacts.map((c) => `${c.company_domain}|${c.full_name.toLowerCase()}`)).size, contacts.length, 'no duplicate contacts')

    const {rows} = await sql<{n: number}>`select count(*)::int as n from companies where run_id = ${result.runId} and status = 'selected'`.execute(t.db)
    assert.equal(rows[0].n, 20)
    // No paid work left behind: every task of the run is finished.
    const open = await sql<{
      n: number
    }>`select count(*)::int as n from tasks where scope = ${'run:' + result.runId} and status in ('queued', 'running')`.execute(t.db)
    assert.equal(open.rows[0].n, 0)

    // Export is idempotent: same files, same bytes.
    const before = fs.readFileSync(result.export.files.companies, 'utf8')
    const again = await rvx(['runs', 'export', String(result.runId), '--output-dir', out, '--json'], {env: env()})
    assert.equal(again.code, 0, again.stderr)
    assert.deepEqual(JSON.parse(again.stdout).files, result.export.files)
    assert.equal(fs.readFileSync(result.export.files.companies, 'utf8'), before)
  })

  it('still completes with transient errors, rate limits and malformed output injected', async () => {
    const res = await rvx(
      [
        'orchestrate',
        '--provider',
        'simulated',
        '--criteria',
        '{"state":"FL"}',
        '--quantity',
        '10',
        '--sim-faults',
        'transient=0.15,rate_limit=0.1,malformed=0.05',
        '--sim-seed',
        '7',
        '--output-dir',
        out,
        '--json',
      ],
      {env: env()},
    )
    assert.equal(res.code, 0, res.stderr + res.stdout.slice(0, 3000))
    const result = JSON.parse(res.stdout)
    assert.equal(result.status, 'completed')
    assert.equal(readCsv(result.export.files.companies).length, 10)
    const {rows} = await sql<{outcome: string}>`select distinct outcome from llm_calls where run_id = ${result.runId}`.execute(t.db)
    const outcomes = rows.map((r) => r.outcome).sort()
    assert.ok(outcomes.includes('ok') && outcomes.length > 1, `faults were injected and recorded: ${outcomes}`)
  })

  it('a quantity beyond the simulated supply exits 4 with a partial export, and can be accepted', async () => {
    const res = await rvx(
      ['orchestrate', '--provider', 'simulated', '--criteria', '{"pms":"AppFolio","state":"NC"}', '--quantity', '500', '--output-dir', out, '--json'],
      {env: env()},
    )
    assert.equal(res.code, 4, res.stderr)
    const result = JSON.parse(res.stdout)
    assert.equal(result.status, 'needs_decision')
    const companies = readCsv(result.export.files.companies)
    assert.ok(companies.length > 0 && companies.length < 500, `partial: ${companies.length}`)
    assert.match(result.progress.notes, /rvx runs accept/)

    const show = JSON.parse((await rvx(['runs', 'show', String(result.runId), '--json'], {env: env()})).stdout)
    assert.equal(show.status, 'needs_decision')
    const accepted = await rvx(['runs', 'accept', String(result.runId), '--json'], {env: env()})
    assert.equal(accepted.code, 0, accepted.stderr)
    assert.equal(JSON.parse(accepted.stdout).status, 'completed')
  })

  it('--detach --json prints the run id; runs show and runs list report it; cancel drops its queued task', async () => {
    const res = await rvx(['orchestrate', '--provider', 'simulated', '--criteria', '{"state":"CA"}', '--quantity', '5', '--detach', '--json'], {env: env()})
    assert.equal(res.code, 0, res.stderr)
    const {runId} = JSON.parse(res.stdout)
    assert.ok(Number.isInteger(runId))
    const show = JSON.parse((await rvx(['runs', 'show', String(runId), '--json'], {env: env()})).stdout)
    assert.equal(show.status, 'running')
    assert.equal(show.tasks['lead-list'].queued, 1)
    const list = JSON.parse((await rvx(['runs', 'list', '--json'], {env: env()})).stdout)
    assert.ok(list.runs.some((r: {id: number}) => r.id === runId))
    const canceled = await rvx(['runs', 'cancel', String(runId), '--json'], {env: env()})
    assert.equal(JSON.parse(canceled.stdout).status, 'canceled')
    const {rows} = await sql<{status: string}>`select status from tasks where scope = ${'run:' + runId}`.execute(t.db)
    assert.deepEqual(
      rows.map((r) => r.status),
      ['canceled'],
    )
  })

  it('runs cancel stops running work: in-flight results are refused and never applied (a cancel, not a fence), no model call starts after it, the run ends canceled', async () => {
    const created = await rvx(
      ['orchestrate', '--provider', 'simulated', '--criteria', '{"pms":"Yardi","state":"FL"}', '--quantity', '5', '--detach', '--json'],
      {env: env()},
    )
    assert.equal(created.code, 0, created.stderr)
    const {runId} = JSON.parse(created.stdout)
    const scope = `run:${runId}`
    // Slow model calls, so research tasks are still in flight when the cancel lands.
    const worker = spawnCli(['worker', 'all', '--run', String(runId), '--id', 'w-cancel', '--concurrency', '4', '--sim-latency', '3s-4s'], env())
    await waitFor('research to be under way', async () => {
      const {rows} = await sql<{n: number}>`select count(*)::int as n from tasks where scope = ${scope} and kind = 'company' and status = 'running'`.execute(
        t.db,
      )
      return rows[0].n >= 2
    })
    const canceled = await rvx(['runs', 'cancel', String(runId), '--json'], {env: env()})
    assert.equal(canceled.code, 0, canceled.stderr)
    assert.equal(JSON.parse(canceled.stdout).status, 'canceled')
    // The worker finishes what it had in flight (its late results meet the fence), then stops.
    worker.child.kill('SIGTERM')
    assert.equal((await worker.exited).code, 143, worker.stderr())

    // The cancel's moment on the database clock, and the tasks in flight then: claimed, not yet settled.
    const cancelAt = (
      await sql<{
        at: Date
      }>`select min(e.at) as at from task_events e join tasks t on t.id = e.task_id where t.scope = ${scope} and e.event = 'canceled'`.execute(t.db)
    ).rows[0].at
    const {rows: inflight} = await sql<{task_id: number; lease_epoch: number; kind: string; status: string; company_id: number}>`
      select c.task_id, c.lease_epoch, t.kind, t.status, (t.payload ->> 'companyId')::bigint as company_id
      from task_events c join tasks t on t.id = c.task_id
      where t.scope = ${scope} and c.event = 'claimed' and c.at <= ${cancelAt}
        and not exists (select 1 from task_events s where s.task_id = c.task_id and s.lease_epoch = c.lease_epoch
                          and s.event in ('completed', 'failed', 'retry_scheduled', 'snoozed', 'released') and s.at < ${cancelAt})`.execute(t.db)
    const stopped = inflight.filter((i) => i.status === 'canceled')
    assert.ok(stopped.length >= 1, `the cancel caught running tasks: ${JSON.stringify(inflight)}`)

    // Their results were rejected, never applied: no completion under their lease, their companies unresearched.
    const ids = stopped.map((i) => i.task_id)
    const {rows: completedLate} = await sql<{
      n: number
    }>`select count(*)::int as n from task_events where task_id = any(${ids}::bigint[]) and event = 'completed'`.execute(t.db)
    assert.equal(completedLate[0].n, 0)
    const companies = stopped.filter((i) => i.kind === 'company').map((i) => i.company_id)
    const {rows: researched} = await sql<{
      n: number
    }>`select count(*)::int as n from companies where id = any(${companies}::bigint[]) and (status <> 'candidate' or researched_at is not null)`.execute(t.db)
    assert.equal(researched[0].n, 0, 'no research result of a canceled task was applied')
    const summary = lines(worker.stderr())
      .map((l) => JSON.parse(l))
      .find((l) => l.msg === 'worker stopped')
    // A cancel is not a fence: counted apart, no fenced_out event (rvx_fenced_out_total counts only leases lost to
    // another worker), and no warning in the worker's log.
    assert.deepEqual({canceled: summary.canceled, fencedOut: summary.fencedOut}, {canceled: stopped.length, fencedOut: 0})
    const {rows: fenced} = await sql<{n: number}>`
      select count(*)::int as n from task_events e where e.task_id = any(${ids}::bigint[]) and e.event = 'fenced_out'`.execute(t.db)
    assert.equal(fenced[0].n, 0)
    assert.deepEqual(
      lines(worker.stderr()).filter((l) => JSON.parse(l).level >= 40 && ids.map(Number).includes(JSON.parse(l).task)),
      [],
      'no warning about them',
    )

    // Nothing started after the cancel. The cancel commits the run as canceled and every queued task with it, so no
    // claim can follow; a handler reads the run's status before it calls the model; a completion landing after it
    // enqueues nothing (advance leaves a canceled run alone). What may still arrive is the calls that were already under
    // way: those of the tasks in flight at the cancel, recorded when they return (paid for, fenced out or not).
    const {rows: claimsAfter} = await sql<{
      n: number
    }>`select count(*)::int as n from task_events e join tasks t on t.id = e.task_id where t.scope = ${scope} and e.event = 'claimed' and e.at > ${cancelAt}`.execute(
      t.db,
    )
    assert.equal(claimsAfter[0].n, 0)
    const {rows: callsAfter} = await sql<{task_id: number}>`select task_id from llm_calls where run_id = ${runId} and created_at > ${cancelAt}`.execute(t.db)
    const inflightIds = new Set(inflight.map((i) => Number(i.task_id)))
    assert.deepEqual(
      callsAfter.filter((c) => !inflightIds.has(Number(c.task_id))),
      [],
      'no model call from work that started after the cancel',
    )

    const {rows: end} = await sql<{status: string}>`select status from runs where id = ${runId}`.execute(t.db)
    assert.equal(end[0].status, 'canceled')
    const {rows: open} = await sql<{n: number}>`select count(*)::int as n from tasks where scope = ${scope} and status in ('queued', 'running')`.execute(t.db)
    assert.equal(open[0].n, 0)
  })

  it('Ctrl-C drains and leaves the run resumable; runs resume finishes it', async () => {
    const last = (await sql<{id: number | null}>`select max(id)::int as id from runs`.execute(t.db)).rows[0].id ?? 0
    const child = spawnRvx(
      [
        'orchestrate',
        '--provider',
        'simulated',
        '--criteria',
        '{"state":"TX","units_min":50}',
        '--quantity',
        '8',
        '--sim-latency',
        '100ms-300ms',
        '--output-dir',
        out,
        '--json',
      ],
      {env: env()},
    )
    let stdout = ''
    child.stdout!.on('data', (d) => (stdout += d))
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
    const runId = await waitFor('the run to start researching', async () => {
      const {rows} = await sql<{
        id: number
      }>`select r.id from runs r where r.id > ${last} and exists (select 1 from companies c where c.run_id = r.id and c.status <> 'candidate') order by id desc limit 1`.execute(
        t.db,
      )
      return rows[0]?.id
    })
    child.kill('SIGINT')
    assert.equal(await exited, 130)
    assert.equal(JSON.parse(stdout).status, 'running')
    const {rows} = await sql<{n: number}>`select count(*)::int as n from tasks where scope = ${'run:' + runId} and status = 'running'`.execute(t.db)
    assert.equal(rows[0].n, 0, 'nothing left leased to the stopped workers')

    const resumed = await rvx(['runs', 'resume', String(runId), '--output-dir', out, '--json'], {env: env()})
    assert.equal(resumed.code, 0, resumed.stderr)
    const result = JSON.parse(resumed.stdout)
    assert.equal(result.status, 'completed')
    assert.equal(readCsv(result.export.files.companies).length, 8)
  })

  it('exclude_domains keeps those companies out of the run (any spelling); --format json exports JSON', async () => {
    // The simulated world is deterministic: these are the companies discovery would find first.
    const criteria = {pms: 'Buildium', state: 'TX', city: 'Plano'}
    const world = (await askDiscovery(new SimulatedProvider(DEFAULT_SIMULATION), {criteria, want: 20, exclude: []}, freeCall())).map((c) => c.domain)
    const excluded = [world[0], world[1]]
    const res = await rvx(
      [
        'orchestrate',
        '--provider',
        'simulated',
        '--criteria',
        JSON.stringify({...criteria, exclude_domains: [excluded[0].toUpperCase(), `https://www.${excluded[1]}/about`]}),
        '--quantity',
        '3',
        '--format',
        'json',
        // About exclude_domains: the earlier runs' deliveries (the same world) are not kept out.
        '--include-delivered',
        '--output-dir',
        out,
        '--json',
      ],
      {env: env()},
    )
    assert.equal(res.code, 0, res.stderr)
    const result = JSON.parse(res.stdout)
    const {rows} = await sql<{domain: string}>`select domain from companies where run_id = ${result.runId} and discovery_round = 1 order by id`.execute(t.db)
    // Two candidates per company wanted, the excluded ones skipped: the next six of the world.
    assert.deepEqual(
      rows.map((r) => r.domain),
      world.slice(2, 8),
    )

    assert.match(result.export.files.companies, /companies\.json$/)
    assert.match(result.export.files.contacts, /contacts\.json$/)
    const companies = JSON.parse(fs.readFileSync(result.export.files.companies, 'utf8')) as Array<Record<string, unknown>>
    const contacts = JSON.parse(fs.readFileSync(result.export.files.contacts, 'utf8')) as Array<Record<string, unknown>>
    assert.equal(companies.length, 3)
    // The CSV's columns, plus every verdict with its full evidence (URL and quote).
    assert.deepEqual(Object.keys(companies[0]), [...COMPANY_COLUMNS, 'verdicts'])
    assert.ok(
      companies.every((c) => (c.verdicts as Record<string, {evidence: Array<{url: string; quote: string}>}>).pms.evidence.every((e) => e.url && e.quote)),
    )
    assert.ok(companies.every((c) => !excluded.includes(c.domain as string) && c.pms === 'Buildium' && c.city === 'Plano'))
    assert.ok(contacts.length >= 3 && contacts.every((k) => companies.some((c) => c.domain === k.company_domain)))
    assert.deepEqual(Object.keys(contacts[0]), [...CONTACT_COLUMNS])
  })

  it('--timeout stops driving, exits 4 and leaves the run resumable with nothing leased', async () => {
    const res = await rvx(
      [
        'orchestrate',
        '--provider',
        'simulated',
        '--criteria',
        '{"state":"NC"}',
        '--quantity',
        '10',
        '--sim-latency',
        '2s-3s',
        '--timeout',
        '1s',
        '--output-dir',
        out,
        '--json',
      ],
      {env: env()},
    )
    assert.equal(res.code, 4, res.stderr)
    const result = JSON.parse(res.stdout)
    assert.equal(result.status, 'running')
    assert.equal(result.export, undefined, 'no export of a run that is not done')
    const {rows} = await sql<{status: string; selected: number; leased: number}>`
      select r.status, (select count(*)::int from companies c where c.run_id = r.id and c.status = 'selected') as selected,
             (select count(*)::int from tasks t where t.scope = 'run:' || r.id and t.status = 'running') as leased
      from runs r where r.id = ${result.runId}`.execute(t.db)
    assert.deepEqual(rows[0], {status: 'running', selected: 0, leased: 0})
    await cancelRun(t.db, result.runId)
  })

  it('reads --criteria from @file and from stdin (-)', async () => {
    const file = path.join(out, 'criteria.json')
    fs.writeFileSync(file, '{"state":"TX","city":"Austin"}')
    const fromFile = await rvx(['orchestrate', '--provider', 'simulated', '--criteria', `@${file}`, '--quantity', '1', '--detach', '--json'], {env: env()})
    assert.equal(fromFile.code, 0, fromFile.stderr)
    const fromStdin = await rvx(['orchestrate', '--provider', 'simulated', '--criteria', '-', '--quantity', '1', '--detach', '--json'], {
      env: env(),
      input: '{"pms":"Yardi"}',
    })
    assert.equal(fromStdin.code, 0, fromStdin.stderr)
    const ids = [JSON.parse(fromFile.stdout).runId, JSON.parse(fromStdin.stdout).runId]
    const {rows} = await sql<{criteria: unknown}>`select criteria from runs where id = any(${ids}::bigint[]) order by id`.execute(t.db)
    assert.deepEqual(
      rows.map((r) => r.criteria),
      [{state: 'TX', city: 'Austin'}, {pms: 'Yardi'}],
    )
    const missing = await rvx(['orchestrate', '--provider', 'simulated', '--criteria', '@/nonexistent/c.json', '--quantity', '1'], {env: env()})
    assert.equal(missing.code, 2)
    assert.match(missing.stderr, /cannot read criteria file \/nonexistent\/c\.json \(ENOENT\)/)
    await sql`update runs set status = 'canceled' where id = any(${ids}::bigint[])`.execute(t.db)
    await sql`update tasks set status = 'canceled' where scope = any(${ids.map((i) => 'run:' + i)}::text[])`.execute(t.db)
  })

  for (const [what, args, pattern] of [
    ['an unknown criteria key', ['--criteria', '{"pmz":"Buildium"}', '--quantity', '5', '--provider', 'simulated'], /unknown criteria key "pmz"/],
    ['a bad state', ['--criteria', '{"state":"Texas"}', '--quantity', '5', '--provider', 'simulated'], /criteria key "state": must be a 2-letter state code/],
    ['a wrong type', ['--criteria', '{"units_min":"fifty"}', '--quantity', '5', '--provider', 'simulated'], /criteria key "units_min"/],
    ['invalid JSON', ['--criteria', '{pms:', '--quantity', '5', '--provider', 'simulated'], /--criteria is not valid JSON/],
    ['quantity 0', ['--criteria', '{}', '--quantity', '0', '--provider', 'simulated'], /--quantity must be a whole number from 1 to 10000/],
    [
      'contacts-min above contacts-max',
      ['--criteria', '{}', '--quantity', '5', '--contacts-min', '4', '--contacts-max', '2', '--provider', 'simulated'],
      /--contacts-min \(4\) must not exceed --contacts-max \(2\)/,
    ],
    ['no provider and no key', ['--criteria', '{}', '--quantity', '5'], /set OPENAI_API_KEY.*--provider simulated/],
  ] as const) {
    it(`rejects ${what} with exit 2 and one line, writing nothing`, async () => {
      const before = await sql<{n: number}>`select count(*)::int as n from runs`.execute(t.db)
      const res = await rvx(['orchestrate', ...args], {env: env()})
      assert.equal(res.code, 2, res.stderr)
      assert.equal(lines(res.stderr).length, 1, res.stderr)
      assert.match(res.stderr, pattern)
      assert.equal(hasStackTrace(res.stderr), false)
      const after = await sql<{n: number}>`select count(*)::int as n from runs`.execute(t.db)
      assert.equal(after.rows[0].n, before.rows[0].n)
    })
  }
})

describe('e2e: rvx orchestrate with the openai provider against a fake OpenAI-compatible server', function () {
  this.timeout(120_000)
  const t = useFreshDatabase()
  const fake = new FakeOpenAI()
  const web = new WebWorld()
  let out: string

  before(async () => {
    await fake.start()
    await web.start()
    for (const i of [1, 2, 3, 4]) {
      web.site(`lonestar${i}.example`, {
        '/': homePage({
          name: `Lone Star PM ${i}`,
          portal: `https://lonestar${i}.managebuilding.com/Resident/portal/login`,
          footer: `${i} Congress Ave, Austin, TX 78701`,
        }),
      })
    }

    out = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-e2e-openai-'))
    fake.route = (body) => {
      const prompt: string = body.messages[1].content
      if (prompt.startsWith('Find') && prompt.includes('property-management companies')) {
        return answer({
          companies: [1, 2, 3, 4].map((i) => ({
            name: `Lone Star PM ${i}`,
            domain: `https://www.lonestar${i}.example/`,
            website: web.url(`lonestar${i}.example`),
            city: 'Austin',
            state: 'TX',
            sources: ['https://dir.example'],
          })),
        })
      }

      const i = Number(/Lone Star PM (\d)/.exec(prompt)![1])
      if (prompt.startsWith('Research')) {
        // Reads the home page, then answers; the even ones manage associations only.
        if (!body.messages.some((m: {role: string}) => m.role === 'tool')) return toolCall('fetch_page', {url: web.url(`lonestar${i}.example`)})
        return answer({
          portfolio: i % 2 === 0 ? 'hoa_only' : 'residential',
          units_estimate: 100 + i,
          employees_estimate: 10,
          confidence: 'high',
          reasons: [`checked ${i}`],
          sources: [web.url(`lonestar${i}.example`)],
          pms: 'Buildium',
        })
      }

      return answer({
        contacts: [{full_name: 'Dana Broker', title: 'Broker/Owner', tier: 1, email: `dana@lonestar${i}.example`, confidence: 'high', sources: []}],
      })
    }
  })

  after(async () => {
    await fake.stop()
    await web.stop()
    fs.rmSync(out, {recursive: true, force: true})
  })

  it('runs the whole pipeline through the real provider code and records usage', async () => {
    const res = await rvx(['orchestrate', '--criteria', '{"pms":"Buildium","state":"TX"}', '--quantity', '2', '--output-dir', out, '--json'], {
      env: {
        DATABASE_URL: t.url,
        OPENAI_API_KEY: 'sk-fake',
        OPENAI_BASE_URL: fake.url,
        OPENAI_MODEL: 'gpt-4.1-mini',
        RVX_DNS_SERVER: web.dns.address,
        RVX_ALLOW_PRIVATE_FETCH: '1',
      },
    })
    assert.equal(res.code, 0, res.stderr)
    const result = JSON.parse(res.stdout)
    assert.equal(result.status, 'completed')
    const companies = parse(fs.readFileSync(result.export.files.companies, 'utf8'), {columns: true}) as Array<Record<string, string>>
    assert.deepEqual(companies.map((c) => c.domain).sort(), ['lonestar1.example', 'lonestar3.example'], 'normalized domains, qualified ones only')
    assert.ok(companies.every((c) => c.discovered_by === 'openai' && c.pms_verdict === 'match' && c.state_verdict === 'match'))
    const {rows} = await sql<{
      calls: number
      tokens: number
    }>`select count(*)::int as calls, sum(input_tokens)::int as tokens from llm_calls where run_id = ${result.runId}`.execute(t.db)
    assert.ok(rows[0].calls >= 1 + 2 + 2, `every model call recorded (${rows[0].calls})`)
    assert.equal(result.progress.usage.calls, rows[0].calls)
    assert.ok(result.progress.usage.costUsd > 0)
  })
})
