import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {sql} from 'kysely'

import {EmbeddedServer} from '../../src/db/embedded.js'
import {type CliOptions, type CliResult, hasStackTrace, lines, rvx} from '../helpers/cli.js'
import {useFreshDatabase} from '../helpers/db.js'
import {stageChoices} from '../../src/pipeline/stages/index.js'

/**
 * The command line under bad input (issue 11, items 10-18), through the real
 * binary: each bad input gets exit 2 (or the documented code), exactly one
 * line on stderr that names the problem, no stack trace, and nothing written.
 */
describe('e2e: bad input on the command line', function () {
  this.timeout(120_000)
  const t = useFreshDatabase()
  let scratch: string

  before(() => {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-bad-input-'))
  })

  after(async () => {
    // Nothing here should start an embedded server; if a regression did, it must not outlive the test.
    await new EmbeddedServer({home: path.join(scratch, 'db-home'), env: process.env}).stop().catch(() => {})
    fs.rmSync(scratch, {recursive: true, force: true})
  })

  const env = (extra: NodeJS.ProcessEnv = {}) => ({DATABASE_URL: t.url, OPENAI_API_KEY: '', ...extra})
  const runCount = async () => (await sql<{n: number}>`select count(*)::int as n from runs`.execute(t.db)).rows[0].n

  /** Runs rvx and checks the shape every bad input must have; returns the one error line. */
  async function refused(args: string[], expected: {code?: number; pattern: RegExp}, options: CliOptions = {}): Promise<{line: string; result: CliResult}> {
    const result = await rvx(args, {...options, env: env(options.env)})
    const what = `rvx ${args.join(' ')}`
    assert.equal(result.code, expected.code ?? 2, `${what}: exit code\n${result.stderr}`)
    assert.equal(hasStackTrace(result.stderr), false, `${what}: stack trace\n${result.stderr}`)
    assert.deepEqual(lines(result.stderr).length, 1, `${what}: one line on stderr\n${result.stderr}`)
    const line = lines(result.stderr)[0]
    assert.match(line, expected.pattern, what)
    return {line, result}
  }

  describe('10: criteria text that jsonb or a terminal cannot take', () => {
    for (const [what, criteria, pattern] of [
      [
        'a NUL',
        '{"city":"Aus\\u0000tin"}',
        /^Error: criteria key "city": contains U\+0000, a control, direction or invisible character, at position 4: remove it$/,
      ],
      ['a right-to-left override', '{"pms":"Build\\u202Eium"}', /^Error: criteria key "pms": contains U\+202E/],
      ['a lone surrogate', '{"exclude_domains":["a\\ud800.example"]}', /^Error: criteria key "exclude_domains.0": contains U\+D800/],
    ] as const) {
      it(`orchestrate refuses ${what} in a criteria value with exit 2, writing nothing`, async () => {
        const before = await runCount()
        await refused(['orchestrate', '--provider', 'simulated', '--criteria', criteria, '--quantity', '1', '--detach'], {pattern})
        assert.equal(await runCount(), before, 'no run row')
      })
    }

    it('runs resume --criteria refuses a NUL with exit 2 and leaves the run as it was', async () => {
      const created = await rvx(['orchestrate', '--provider', 'simulated', '--criteria', '{"state":"TX"}', '--quantity', '1', '--detach', '--json'], {
        env: env(),
      })
      assert.equal(created.code, 0, created.stderr)
      const {runId} = JSON.parse(created.stdout)
      await sql`update runs set status = 'needs_decision' where id = ${runId}`.execute(t.db)
      await refused(['runs', 'resume', String(runId), '--criteria', '{"city":"Aus\\u0000tin"}', '--detach'], {
        pattern: /^Error: criteria key "city": contains U\+0000/,
      })
      const {rows} = await sql<{status: string; criteria: unknown}>`select status, criteria from runs where id = ${runId}`.execute(t.db)
      assert.deepEqual(rows[0], {status: 'needs_decision', criteria: {state: 'TX'}})
      await rvx(['runs', 'cancel', String(runId)], {env: env()})
    })
  })

  describe('11: oclif parse errors keep the line that says what is wrong', () => {
    for (const [args, pattern] of [
      [['orchestrate', '--criteria', '{}'], /^Error: --quantity is required\. See rvx orchestrate --help\.$/],
      [['orchestrate', '--provider', 'simulated', '--criteria', '{}', '--quantity', '1.5'], /--quantity must be a whole number from 1 to 10000 \(got 1\.5\)/],
      [
        ['orchestrate', '--provider', 'simulated', '--criteria', '{}', '--quantity', '1', '--concurrency', '0'],
        /--concurrency must be a whole number from 1 to 256 \(got 0\)/,
      ],
      [['runs', 'list', '--limit', '-5'], /--limit must be a whole number from 1 to 1000 \(got -5\)/],
      [['worker', 'all', '--max-tasks', '0'], /--max-tasks must be a whole number from 1 to \d+ \(got 0\)/],
      [['monitor', '--metrics-port', '70000'], /--metrics-port must be a whole number from 0 to 65535 \(got 70000\)/],
      [['worker'], new RegExp(`missing argument TYPE: Stage\\(s\\) to work on: ${stageChoices().replace(/[()]/g, '\\$&')}, or all`)],
      [['runs', 'show'], /missing argument ID: Run ID/],
    ] as const) {
      it(`rvx ${args.join(' ')}`, async () => {
        const before = await runCount()
        const {line} = await refused([...args], {pattern})
        assert.doesNotMatch(line, /The following error occurred|^Error: Parsing --[\w-]+\.( See|$)/)
        assert.equal(await runCount(), before, 'no run row')
      })
    }

    it('names the environment variable when the bad value came from one (RVX_METRICS_PORT=70000)', async () => {
      await refused(['monitor'], {pattern: /^Error: RVX_METRICS_PORT must be a whole number from 0 to 65535 \(got 70000\)/}, {env: {RVX_METRICS_PORT: '70000'}})
    })
  })

  describe('12/13: --output-dir is checked before anything is created or paid for', () => {
    const orchestrate = (dir: string) => ['orchestrate', '--provider', 'simulated', '--criteria', '{"state":"TX"}', '--quantity', '1', '--output-dir', dir]

    it('an existing file: exit 2, one line, no run, the file untouched', async () => {
      const file = path.join(scratch, 'a-file')
      fs.writeFileSync(file, 'keep me')
      const before = await runCount()
      await refused(orchestrate(file), {pattern: new RegExp(`^Error: --output-dir ${file} cannot hold the export: ${file} is a file; pick another directory$`)})
      assert.equal(await runCount(), before, 'no run row')
      assert.equal(fs.readFileSync(file, 'utf8'), 'keep me')
    })

    for (const dir of ['/proc', '/proc/rvx/exports', '/sys/rvx']) {
      it(`orchestrate --output-dir ${dir}: exit 2 at once (no hang), no run`, async () => {
        const before = await runCount()
        await refused(
          orchestrate(dir),
          {pattern: /cannot hold the export: \/(proc|sys) is on (proc|sysfs), a kernel pseudo filesystem; pick another directory$/},
          {timeoutMs: 30_000},
        )
        assert.equal(await runCount(), before, 'no run row')
      })
    }

    it('an unwritable directory: exit 2, nothing created', async function () {
      const locked = path.join(scratch, 'locked')
      fs.mkdirSync(locked, {mode: 0o555})
      fs.chmodSync(locked, 0o555)
      fs.chmodSync(scratch, 0o755)
      // root may write anywhere: try it as an unprivileged user then.
      const as = process.getuid?.() === 0 ? {uid: 65_534, gid: 65_534, env: {HOME: path.join(scratch, 'no-home')}} : {}
      const before = await runCount()
      await refused(orchestrate(path.join(locked, 'exports')), {pattern: new RegExp(`cannot hold the export: ${locked} is not writable \\(EACCES\\)`)}, as)
      assert.equal(await runCount(), before, 'no run row')
      assert.deepEqual(fs.readdirSync(locked), [])
    })

    it('runs resume and runs export refuse /proc too, and the run stays as it was', async () => {
      const created = await rvx(['orchestrate', '--provider', 'simulated', '--criteria', '{"state":"CA"}', '--quantity', '1', '--detach', '--json'], {
        env: env(),
      })
      assert.equal(created.code, 0, created.stderr)
      const {runId} = JSON.parse(created.stdout)
      await sql`update runs set status = 'needs_decision' where id = ${runId}`.execute(t.db)
      await refused(
        ['runs', 'resume', String(runId), '--output-dir', '/proc/x'],
        {pattern: /^Error: --output-dir \/proc\/x cannot hold the export/},
        {timeoutMs: 30_000},
      )
      await refused(
        ['runs', 'export', String(runId), '--output-dir', '/proc/x'],
        {pattern: /^Error: --output-dir \/proc\/x cannot hold the export/},
        {timeoutMs: 30_000},
      )
      const {rows} = await sql<{status: string}>`select status from runs where id = ${runId}`.execute(t.db)
      assert.equal(rows[0].status, 'needs_decision')
      await rvx(['runs', 'cancel', String(runId)], {env: env()})
    })

    it('RVX_HOME under /proc: exit 3 with one line, no hang', async () => {
      const r = await rvx(['runs', 'list'], {env: {RVX_HOME: '/proc/rvx-home'}, timeoutMs: 30_000})
      assert.equal(r.code, 3, r.stderr)
      assert.equal(lines(r.stderr).length, 1, r.stderr)
      assert.match(
        r.stderr,
        /^Error: the rvx data directory \/proc\/rvx-home\/pg is not writable \(\/proc is on proc, a kernel pseudo filesystem\): set RVX_HOME/,
      )
      assert.equal(hasStackTrace(r.stderr), false)
    })

    it('an export that still fails after the run is paid for says that rvx runs export ID writes the files', async () => {
      const out = path.join(scratch, 'exports-later')
      fs.mkdirSync(out)
      // The run's own folder is taken by a file: the check of --output-dir passes, the export cannot.
      const {rows} = await sql<{next: number}>`select coalesce(last_value, 0)::int + 1 as next from pg_sequences where sequencename = 'runs_id_seq'`.execute(
        t.db,
      )
      const runId = rows[0].next
      fs.writeFileSync(path.join(out, `run-${runId}`), '')
      const r = await rvx([...orchestrate(out), '--json'], {env: env()})
      assert.equal(r.code, 1, r.stderr)
      const {error} = JSON.parse(r.stdout)
      assert.equal(error.code, 'export_failed')
      assert.equal(
        error.message,
        `run ${runId} is completed but its export to ${out} failed (${path.join(out, `run-${runId}`)} is a file): rvx runs export ${runId} --output-dir DIR writes the files`,
      )
      const recovered = await rvx(['runs', 'export', String(runId), '--output-dir', path.join(scratch, 'new', 'nested'), '--json'], {env: env()})
      assert.equal(recovered.code, 0, recovered.stderr)
      assert.equal(JSON.parse(recovered.stdout).companies, 1)
      assert.ok(fs.existsSync(path.join(scratch, 'new', 'nested', `run-${runId}`, 'companies.csv')))
    })
  })

  describe('15: runs resume --quantity below what the run has selected', () => {
    it('refuses with one line that says how many are selected; the run stays as it was and nothing is exported', async () => {
      const created = await rvx(['orchestrate', '--provider', 'simulated', '--criteria', '{"state":"NV"}', '--quantity', '5', '--detach', '--json'], {
        env: env(),
      })
      assert.equal(created.code, 0, created.stderr)
      const {runId} = JSON.parse(created.stdout)
      await sql`update runs set status = 'needs_decision' where id = ${runId}`.execute(t.db)
      for (let i = 0; i < 5; i++) {
        await t.db
          .insertInto('companies')
          .values({
            run_id: runId,
            domain: `s${i}.example`,
            name: `S${i}`,
            status: 'selected',
            icp_score: 90,
            sources: '[]',
            reasons: '[]',
            discovered_by: 'test',
          })
          .execute()
      }

      const out = path.join(scratch, 'resume-out')
      await refused(['runs', 'resume', String(runId), '--quantity', '2', '--output-dir', out], {
        pattern: new RegExp(
          `^Error: --quantity 2 is below the 5 companies run ${runId} has already selected: ask for 5 or more, or take the run as it is with rvx runs accept ${runId}$`,
        ),
      })
      const {rows} = await sql<{status: string; quantity: number}>`select status, quantity from runs where id = ${runId}`.execute(t.db)
      assert.deepEqual(rows[0], {status: 'needs_decision', quantity: 5})
      assert.equal(fs.existsSync(out), false, 'no export')
      await rvx(['runs', 'cancel', String(runId)], {env: env()})
    })
  })

  describe('16: workers status --watch --interval below a floor', () => {
    for (const interval of ['0', '100ms']) {
      it(`--interval ${interval}: exit 2 at once`, async () => {
        await refused(
          ['workers', 'status', '--watch', '--interval', interval],
          {pattern: new RegExp(`^Error: --interval must be at least 500ms \\(got ${interval}\\)$`)},
          {timeoutMs: 30_000},
        )
      })
    }
  })

  describe('17: a bad --metrics-host is blamed on the metrics listener, not the database', () => {
    it('a name that does not resolve: exit 2, one line naming --metrics-host', async () => {
      const {line} = await refused(['monitor', '--once', '--metrics-port', '0', '--metrics-host', 'nonexistent.invalid'], {
        pattern: /^Error: --metrics-host nonexistent\.invalid does not resolve \(ENOTFOUND\): listen on an address of this machine/,
      })
      assert.doesNotMatch(line, /PostgreSQL|DATABASE_URL/)
    })

    it('an address of another machine: exit 2', async () => {
      await refused(['monitor', '--once', '--metrics-port', '0', '--metrics-host', '192.0.2.1'], {
        pattern: /^Error: --metrics-host 192\.0\.2\.1 is not an address of this machine/,
      })
    })

    it('--metrics-host without a port is not silently ignored', async () => {
      await refused(['monitor', '--once', '--metrics-host', '0.0.0.0'], {pattern: /^Error: --metrics-host needs --metrics-port/})
    })
  })

  describe('18: durations with no sane meaning are usage errors', () => {
    it('workers prune --older-than 999999999d: exit 2 with the maximum', async () => {
      await refused(['workers', 'prune', '--older-than', '999999999d'], {pattern: /^Error: --older-than must be at most 3650d \(got 999999999d\)$/})
    })

    it('orchestrate --timeout 0: exit 2 that says what the value must be, no run', async () => {
      const before = await runCount()
      await refused(['orchestrate', '--provider', 'simulated', '--criteria', '{}', '--quantity', '1', '--timeout', '0'], {
        pattern: /^Error: --timeout must be at least 1s \(got 0\)$/,
      })
      assert.equal(await runCount(), before, 'no run row')
    })

    it('monitor --stuck-after 0: exit 2', async () => {
      await refused(['monitor', '--once', '--stuck-after', '0'], {pattern: /^Error: --stuck-after must be at least 1s \(got 0\)$/})
    })
  })

  describe('18: IDs, worker --run, db url --database-url', () => {
    for (const id of ['99999999999999999999', '0x2', '1e3', '2.0', '-1', '0']) {
      it(`runs show ${id}: exit 2, an ID is a positive decimal whole number`, async () => {
        await refused(['runs', 'show', id], {
          pattern: new RegExp(`^Error: "${id.replace('.', '\\.')}" is not a run ID: use the number rvx runs list shows \\(from 1 to 9007199254740991\\)$`),
        })
      })
    }

    it('worker --run 0x2: exit 2 naming --run', async () => {
      await refused(['worker', 'all', '--run', '0x2', '--exit-when-idle'], {pattern: /^Error: --run "0x2" is not a run ID/})
    })

    it('worker --run with no such run: one line, not a silent idle exit; no worker registered', async () => {
      const workers = async () => (await sql<{n: number}>`select count(*)::int as n from workers`.execute(t.db)).rows[0].n
      const before = await workers()
      await refused(['worker', 'all', '--run', '999999', '--exit-when-idle'], {
        code: 1,
        pattern: /^Error: run 999999 does not exist: rvx runs list shows the runs there are$/,
      })
      assert.equal(await workers(), before, 'no worker registered')
    })

    it('worker --run with a finished run says so before it idles', async () => {
      const created = await rvx(['orchestrate', '--provider', 'simulated', '--criteria', '{"state":"OR"}', '--quantity', '1', '--detach', '--json'], {
        env: env(),
      })
      const {runId} = JSON.parse(created.stdout)
      assert.equal((await rvx(['runs', 'cancel', String(runId)], {env: env()})).code, 0)
      const r = await rvx(['worker', 'all', '--run', String(runId), '--exit-when-idle'], {env: env()})
      assert.equal(r.code, 0, r.stderr)
      const warned = lines(r.stderr)
        .map((l) => JSON.parse(l))
        .find((l) => l.level === 40)
      assert.equal(warned?.msg, `run ${runId} is canceled: this worker will find no tasks of it`)
    })

    it('db url --database-url X is refused, not ignored; DATABASE_URL in the environment does not break rvx db', async () => {
      const home = path.join(scratch, 'db-home')
      await refused(
        ['db', 'url', '--database-url', 'postgres://u:p@db.example:5432/x'],
        {
          pattern: /^Error: --database-url does not apply here: rvx db url works on the embedded server under RVX_HOME, not on another PostgreSQL$/,
        },
        {env: {RVX_HOME: home}},
      )
      const status = await rvx(['db', 'status', '--json'], {env: {RVX_HOME: home, DATABASE_URL: 'postgres://u:p@db.example:5432/x'}})
      assert.equal(status.code, 0, status.stderr)
      assert.equal(JSON.parse(status.stdout).running, false)
      const help = await rvx(['db', 'url', '--help'], {env: {RVX_HOME: home}})
      assert.doesNotMatch(help.stdout, /--database-url/)
    })
  })

  describe('18: what runs show and orchestrate --detach say', () => {
    it('runs show text says qualified and selected as --json counts them, and canceled tasks as canceled', async () => {
      const created = await rvx(['orchestrate', '--provider', 'simulated', '--criteria', '{"state":"UT"}', '--quantity', '2', '--detach', '--json'], {
        env: env(),
      })
      const {runId} = JSON.parse(created.stdout)
      const statuses = ['selected', 'selected', 'qualified', 'disqualified', 'disqualified', 'disqualified', 'candidate'] as const
      for (const [i, status] of statuses.entries()) {
        await t.db
          .insertInto('companies')
          .values({run_id: runId, domain: `u${i}.example`, name: `U${i}`, status, icp_score: 70, sources: '[]', reasons: '[]', discovered_by: 'test'})
          .execute()
      }

      assert.equal((await rvx(['runs', 'cancel', String(runId)], {env: env()})).code, 0)
      const json = JSON.parse((await rvx(['runs', 'show', String(runId), '--json'], {env: env()})).stdout)
      assert.deepEqual(json.companies, {candidate: 1, qualified: 1, disqualified: 3, selected: 2, total: 7, delivered: 2})
      assert.deepEqual(json.tasks['lead-list'], {queued: 0, running: 0, completed: 0, failed: 0, quarantined: 0, canceled: 1})
      const text = await rvx(['runs', 'show', String(runId)], {env: env()})
      assert.equal(text.code, 0, text.stderr)
      const row = (name: string) =>
        lines(text.stdout)
          .find((l) => l.startsWith(name))
          ?.replaceAll(/\s+/g, ' ')
      assert.equal(row('companies'), 'companies 7 found: 2 selected, 1 qualified (not selected), 3 disqualified, 1 not yet researched')
      assert.equal(row('discovery tasks'), 'discovery tasks 0 completed, 0 queued, 0 running, 0 failed, 0 quarantined, 1 canceled')
    })

    it('help shows the allowed range of numeric flags', async () => {
      const help = async (...args: string[]) => (await rvx([...args, '--help'], {env: env()})).stdout.replaceAll(/\s+/g, ' ')
      const orchestrate = await help('orchestrate')
      for (const range of ['deliver (1-10000)', '4 to 64 (1-256)', 'per company (1-10)', '1s-24d']) assert.ok(orchestrate.includes(range), range)
      assert.ok((await help('runs', 'list')).includes('(1-1000)'))
      assert.ok((await help('workers', 'status')).includes('(500ms-24d)'))
      assert.ok((await help('workers', 'prune')).includes('at most 3650d'))
      const monitor = await help('monitor')
      for (const range of ['; 0-65535)', '(100ms-24d)', '(1s-24d)', 'more than 5s']) assert.ok(monitor.includes(range), range)
    })

    it('orchestrate --detach says how to get the export when the run is done', async () => {
      const r = await rvx(['orchestrate', '--provider', 'simulated', '--criteria', '{"state":"ID"}', '--quantity', '1', '--detach'], {env: env()})
      assert.equal(r.code, 0, r.stderr)
      const runId = Number(/^Run (\d+) created/.exec(r.stderr)?.[1])
      assert.match(r.stderr, new RegExp(`when it is done, rvx runs export ${runId} writes its CSVs`))
      await rvx(['runs', 'cancel', String(runId)], {env: env()})
    })
  })

  describe('14: bad choices and unknown commands are usage errors (exit 2)', () => {
    for (const [args, pattern, extraEnv] of [
      [
        ['orchestrate', '--provider', 'simulated', '--criteria', '{}', '--quantity', '1', '--format', 'xml'],
        /--format must be one of csv, json \(got xml\)/,
        {},
      ],
      [['orchestrate', '--provider', 'bogus', '--criteria', '{}', '--quantity', '1'], /--provider must be one of openai, simulated \(got bogus\)/, {}],
      [['runs', 'list', '--log-level', 'loud'], /--log-level must be one of trace, debug, info, warn, error, silent \(got loud\)/, {}],
      [['runs', 'list'], /^Error: RVX_LOG_LEVEL must be one of trace, debug, info, warn, error, silent \(got loud\)/, {RVX_LOG_LEVEL: 'loud'}],
      [['runs', 'export', '1', '--format', 'xml'], /--format must be one of csv, json \(got xml\)/, {}],
      [['nosuchcmd'], /^Error: rvx has no command "nosuchcmd": rvx --help lists the commands$/, {}],
      [['runs', 'nosuch'], /^Error: rvx runs has no command "nosuch": rvx runs --help lists its commands$/, {}],
      [['runs', 'lst'], /^Error: rvx runs has no command "lst": did you mean rvx runs list\? rvx runs --help lists its commands$/, {}],
      [['wrker', 'all'], /^Error: rvx has no command "wrker all": did you mean rvx worker\? rvx --help lists the commands$/, {}],
      [['workers', 'stats'], /^Error: rvx workers has no command "stats": did you mean rvx workers status\? rvx workers --help lists its commands$/, {}],
    ] as const) {
      it(`rvx ${args.join(' ')}${Object.keys(extraEnv).length > 0 ? ` with ${JSON.stringify(extraEnv)}` : ''}`, async () => {
        const before = await runCount()
        await refused([...args], {pattern}, {env: {...extraEnv}})
        assert.equal(await runCount(), before, 'no run row')
      })
    }

    it('with --json, an unknown command prints {"error": ...} on stdout and exits 2', async () => {
      const r = await rvx(['nosuchcmd', '--json'], {env: env()})
      assert.equal(r.code, 2, r.stderr)
      assert.deepEqual(JSON.parse(r.stdout), {
        error: {code: 'command_not_found', exitCode: 2, message: 'rvx has no command "nosuchcmd": rvx --help lists the commands'},
      })
      assert.equal(r.stderr, '')

      const typo = await rvx(['runs', 'lst', '--json'], {env: env()})
      assert.equal(typo.code, 2, typo.stderr)
      assert.deepEqual(JSON.parse(typo.stdout), {
        error: {
          code: 'command_not_found',
          exitCode: 2,
          message: 'rvx runs has no command "lst": did you mean rvx runs list? rvx runs --help lists its commands',
        },
      })
    })

    it('with --json, a bad choice prints {"error": ...} with exit code 2', async () => {
      const r = await rvx(['runs', 'list', '--limit', '5', '--json'], {env: env({RVX_LOG_LEVEL: 'loud'})})
      assert.equal(r.code, 2, r.stderr)
      assert.equal(JSON.parse(r.stdout).error.exitCode, 2)
    })
  })

  describe('issue 23, item 8: one line naming the input, the flag or the variable the value came from', () => {
    const simulated = ['orchestrate', '--provider', 'simulated', '--criteria', '{"state":"TX"}', '--quantity', '1', '--detach']

    it('--quantity \'\': says what the value must be, not "Expected an integer but received."', async () => {
      await refused(['orchestrate', '--provider', 'simulated', '--criteria', '{}', '--quantity', ''], {
        pattern: /^Error: --quantity must be a whole number from 1 to 10000 \(got nothing\)\. See rvx orchestrate --help\.$/,
      })
    })

    it('RVX_SIM_FAULTS and RVX_SIM_LATENCY are named when their value is bad; the flags when theirs is', async () => {
      await refused(simulated, {pattern: /^Error: RVX_SIM_FAULTS names an unknown fault "bogus"/}, {env: {RVX_SIM_FAULTS: 'bogus=1'}})
      await refused(simulated, {pattern: /^Error: RVX_SIM_LATENCY "soon" is not a duration range/}, {env: {RVX_SIM_LATENCY: 'soon'}})
      await refused(
        [...simulated, '--sim-faults', 'bogus=1'],
        {pattern: /^Error: --sim-faults names an unknown fault "bogus"/},
        {env: {RVX_SIM_FAULTS: 'crash=0'}},
      )
    })

    for (const [name, value, pattern] of [
      ['RVX_LLM_RPM', 'abc', /^Error: RVX_LLM_RPM must be a number above 0 \(per minute; got "abc"\)/],
      ['RVX_LLM_RPM', '-5', /^Error: RVX_LLM_RPM must be a number above 0 \(per minute; got "-5"\)/],
      ['RVX_LLM_RPM', '0', /^Error: RVX_LLM_RPM must be a number above 0 \(per minute; got "0"\)/],
      ['RVX_LLM_TPM', '1e999', /^Error: RVX_LLM_TPM must be a number above 0/],
      ['RVX_SIM_SUPPLY', 'abc', /^Error: RVX_SIM_SUPPLY must be a whole number of companies from 0 to 1000000 \(got "abc"\)/],
      ['RVX_LLM_TIMEOUT_MS', '-1', /^Error: RVX_LLM_TIMEOUT_MS must be a whole number of milliseconds from 1000 to 3600000 \(got "-1"\)/],
      ['RVX_DNS_SERVER', 'garbage:99999', /^Error: RVX_DNS_SERVER must be the IP address of a DNS server with an optional port.*\(got "garbage:99999"\)$/],
      ['RVX_DNS_SERVER', '127.0.0.1:99999', /^Error: RVX_DNS_SERVER must be the IP address/],
    ] as const) {
      it(`${name}=${value}: orchestrate refuses it (exit 2, no run)`, async () => {
        const before = await runCount()
        await refused(simulated, {pattern}, {env: {[name]: value}})
        assert.equal(await runCount(), before, 'no run row')
      })
    }

    it('a worker refuses RVX_LLM_RPM=abc at start, and rvx inspect RVX_DNS_SERVER=garbage:99999 (before: exit 0, every site "did not answer")', async () => {
      await refused(['worker', 'all', '--exit-when-idle'], {pattern: /^Error: RVX_LLM_RPM must be a number above 0/}, {env: {RVX_LLM_RPM: 'abc'}})
      await refused(['inspect', 'example.com'], {pattern: /^Error: RVX_DNS_SERVER must be the IP address/}, {env: {RVX_DNS_SERVER: 'garbage:99999'}})
    })

    it('a worker and orchestrate take good values of the same variables', async () => {
      const r = await rvx([...simulated, '--json'], {
        env: env({RVX_LLM_RPM: '500', RVX_LLM_TPM: '200000', RVX_SIM_SUPPLY: '50', RVX_LLM_TIMEOUT_MS: '30000', RVX_DNS_SERVER: '127.0.0.1:5353'}),
      })
      assert.equal(r.code, 0, r.stderr)
      await rvx(['runs', 'cancel', String(JSON.parse(r.stdout).runId)], {env: env()})
    })

    it('--max-usd below $0.0001 is refused with the minimum', async () => {
      await refused([...simulated, '--max-usd', '0.0000001'], {
        pattern: /^Error: --max-usd must be an amount in US dollars from 0\.0001 to 1000000, e\.g\. 5 or 12\.50 \(got "0\.0000001"\)/,
      })
    })

    it('the missing-SMTP error shows rvx\'s example URL whole, not "[redacted]"', async () => {
      const {line} = await refused(
        [...simulated, '--notify-email', 'sales@example.com'],
        {pattern: /^Error: --notify-email needs an SMTP server: set SMTP_URL/},
        {env: {SMTP_URL: ''}},
      )
      assert.match(line, /smtp:\/\/smtp\.example\.com:587/)
      assert.doesNotMatch(line, /redacted/)
    })
  })
})

describe('e2e: stored text reaches the terminal escaped', function () {
  this.timeout(120_000)
  const t = useFreshDatabase()
  const env = () => ({DATABASE_URL: t.url})

  it('runs list and runs show print control and bidi override characters as escapes, not raw', async () => {
    // Stored by an older rvx or another writer: the criteria schema refuses these at the door now.
    const run = await t.db
      .insertInto('runs')
      .values({
        criteria: JSON.stringify({city: 'Austin\u202Egnp.exe', natural_request: 'x\u001B[2Jy'}),
        quantity: 1,
        contacts_min: 1,
        contacts_max: 3,
        provider: 'simulated',
        options: '{}',
        notes: 'first\rsecond\u2067third\u0085',
        discovery_rounds: 1,
      })
      .returning('id')
      .executeTakeFirstOrThrow()
    // eslint-disable-next-line no-control-regex -- looking for raw control characters is the point
    const raw = /[\u0000-\u0009\u000B-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]/
    const list = await rvx(['runs', 'list'], {env: env()})
    assert.equal(list.code, 0, list.stderr)
    assert.doesNotMatch(list.stdout, raw)
    assert.ok(list.stdout.includes('Austin\\u202Egnp.exe'), list.stdout)
    const show = await rvx(['runs', 'show', String(run.id)], {env: env()})
    assert.equal(show.code, 0, show.stderr)
    assert.doesNotMatch(show.stdout, raw)
    assert.ok(show.stdout.includes('first\\u000Dsecond\\u2067third\\u0085'), show.stdout)
  })
})
