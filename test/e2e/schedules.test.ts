import assert from 'node:assert/strict'
import {sql} from 'kysely'

import {Monitor} from '../../src/monitor/monitor.js'
import {addSchedule, fireDueSchedules} from '../../src/monitor/schedules.js'
import type {Logger} from '../../src/runtime/logger.js'
import {silentLogger} from '../../src/runtime/logger.js'
import {rvx} from '../helpers/cli.js'
import {useFreshDatabase} from '../helpers/db.js'
import {spawnCli, waitFor} from '../helpers/processes.js'

const MINUTE = 60_000

/** A logger that keeps its lines. */
function recording(): Logger & {lines: string[]} {
  const lines: string[] = []
  const keep = (_: object, msg?: string) => void lines.push(msg ?? '')
  return {lines, debug: keep, info: keep, warn: keep, error: keep}
}

describe('e2e: scheduled runs', function () {
  this.timeout(120_000)

  describe('slots, as two monitors see them on a clock the test moves', () => {
    const t = useFreshDatabase()
    // A Monday morning, in slots of a minute from here.
    const base = Date.parse('2031-03-03T10:00:00Z')
    let clock = base
    const log = recording()
    const monitors: Monitor[] = []

    before(() => {
      for (const name of ['monitor-a', 'monitor-b'])
        monitors.push(
          new Monitor({
            db: t.db,
            databaseUrl: t.url,
            name,
            intervalMs: 1000,
            deadAfterMs: 15_000,
            stuckAfterMs: 600_000,
            targets: {channels: []},
            log: name === 'monitor-a' ? log : silentLogger,
            now: () => new Date(clock),
          }),
        )
    })

    after(async () => {
      // Releases each one's leader session.
      for (const m of monitors) await m.run({once: true, signal: AbortSignal.abort()})
    })

    const tickAt = async (ms: number) => {
      clock = ms
      await Promise.all(monitors.map((m) => m.tick()))
    }

    const fires = async (scheduleId: number) =>
      (
        await sql<{slot: Date; run_id: number | null; skipped: string | null}>`
          select slot, run_id, skipped from schedule_fires where schedule_id = ${scheduleId} order by slot`.execute(t.db)
      ).rows
    const finish = (runId: number) => sql`update runs set status = 'completed', stage = 'done', finished_at = now() where id = ${runId}`.execute(t.db)

    let scheduleId: number

    it('an every-minute schedule fires once per minute with two monitors ticking', async () => {
      const s = await addSchedule(t.db, {cron: '* * * * *', provider: 'simulated', criteria: {state: 'TX'}, quantity: 2, name: 'every-minute'}, {})
      scheduleId = s.id
      await sql`update schedules set fires_after = ${new Date(base - 30_000)} where id = ${s.id}`.execute(t.db)

      for (let k = 0; k < 4; k++) {
        // Twice within each minute, both monitors each time.
        await tickAt(base + k * MINUTE + 5_000)
        await tickAt(base + k * MINUTE + 40_000)
        const last = (await fires(s.id)).at(-1)!
        assert.ok(last.run_id, `minute ${k} made a run`)
        // The run delivers two companies, so the next one must keep them out.
        await sql`insert into companies (run_id, domain, name, discovered_by, status) values
          (${last.run_id}, ${`m${k}-a.example`}, 'A', 'test', 'selected'), (${last.run_id}, ${`m${k}-b.example`}, 'B', 'test', 'selected')`.execute(t.db)
        await finish(last.run_id!)
      }

      const made = await fires(s.id)
      assert.deepEqual(
        made.map((f) => f.slot.getTime()),
        [0, 1, 2, 3].map((k) => base + k * MINUTE),
      )
      assert.ok(made.every((f) => f.run_id !== null && f.skipped === null))
      const {rows} = await sql<{id: number; delivered: number}>`
        select id, (options -> 'keptOut' ->> 'delivered')::int as delivered from runs order by id`.execute(t.db)
      assert.equal(rows.length, 4, 'one run per minute, not one per monitor or per tick')
      assert.deepEqual(
        rows.map((r) => r.delivered),
        [0, 2, 4, 6],
        'each run keeps out what the earlier ones delivered',
      )
    })

    it('a slot fires once even when two monitors race for it (the failover case)', async () => {
      await Promise.all([
        fireDueSchedules(t.db, new Date(base + 4 * MINUTE + 1000), silentLogger),
        fireDueSchedules(t.db, new Date(base + 4 * MINUTE + 2000), silentLogger),
      ])
      const slot = (await fires(scheduleId)).filter((f) => f.slot.getTime() === base + 4 * MINUTE)
      assert.equal(slot.length, 1)
      const {rows} = await sql<{n: number}>`select count(*)::int as n from runs`.execute(t.db)
      assert.equal(rows[0].n, 5)
      await finish(slot[0].run_id!)
    })

    it('after a gap of three minutes it catches up once, not once per missed slot', async () => {
      await tickAt(base + 8 * MINUTE + 20_000)
      const made = await fires(scheduleId)
      assert.deepEqual(
        made.slice(-2).map((f) => (f.slot.getTime() - base) / MINUTE),
        [4, 8],
        'slots 5, 6 and 7 never fire',
      )
      assert.ok(made.at(-1)!.run_id)
    })

    it('skips a slot while the previous run is still going, and says so', async () => {
      const running = (await fires(scheduleId)).at(-1)!.run_id!
      await tickAt(base + 9 * MINUTE + 5_000)
      const skipped = (await fires(scheduleId)).at(-1)!
      assert.equal(skipped.slot.getTime(), base + 9 * MINUTE)
      assert.equal(skipped.run_id, null)
      assert.equal(skipped.skipped, `run ${running} is still running`)
      assert.ok(log.lines.some((l) => l.includes(`skipped ${new Date(base + 9 * MINUTE).toISOString()}: run ${running} is still running`)))

      await finish(running)
      await tickAt(base + 10 * MINUTE + 5_000)
      assert.ok((await fires(scheduleId)).at(-1)!.run_id, 'the next slot fires once it has finished')
    })
  })

  describe('rvx schedules and rvx monitor (processes)', () => {
    const t = useFreshDatabase()
    const env = () => ({DATABASE_URL: t.url, OPENAI_API_KEY: ''})

    it('add, list, pause, resume, remove; bad input named by its flag', async () => {
      const bad = await rvx(['schedules', 'add', '--cron', '0 8 * MON', '--criteria', '{"state":"TX"}', '--quantity', '5', '--provider', 'simulated'], {
        env: env(),
      })
      assert.equal(bad.code, 2)
      assert.equal(bad.stderr.trim(), 'Error: --cron "0 8 * MON" must have five fields (minute hour day month weekday), e.g. "0 8 * * MON"')
      const zone = await rvx(
        ['schedules', 'add', '--cron', '0 8 * * MON', '--tz', 'Mars/Olympus', '--criteria', '{"state":"TX"}', '--quantity', '5', '--provider', 'simulated'],
        {
          env: env(),
        },
      )
      assert.equal(zone.code, 2)
      assert.match(zone.stderr, /--tz "Mars\/Olympus" is not a time zone/)
      const criteria = await rvx(
        ['schedules', 'add', '--cron', '0 8 * * MON', '--criteria', '{"state":"Texas"}', '--quantity', '5', '--provider', 'simulated'],
        {env: env()},
      )
      assert.equal(criteria.stderr.trim(), 'Error: criteria key "state": must be a 2-letter state code, e.g. TX')

      const added = await rvx(
        [
          'schedules',
          'add',
          '--cron',
          '0 8 * * MON',
          '--tz',
          'America/Chicago',
          '--criteria',
          '{"pms":"Buildium","state":"TX"}',
          '--quantity',
          '25',
          '--provider',
          'simulated',
          '--max-usd',
          '5',
          '--name',
          'weekly-tx',
          '--json',
        ],
        {env: env()},
      )
      assert.equal(added.code, 0, added.stderr)
      const s = JSON.parse(added.stdout)
      // 8:00 in Chicago on a Monday: 14:00 UTC in winter, 13:00 in summer.
      assert.equal(new Date(s.nextAt).getUTCDay(), 1)
      assert.ok([13, 14].includes(new Date(s.nextAt).getUTCHours()))
      assert.equal(s.maxUsd, 5)

      const paused = JSON.parse((await rvx(['schedules', 'pause', 'weekly-tx', '--json'], {env: env()})).stdout)
      assert.equal(paused.paused, true)
      assert.equal(paused.nextAt, null)
      const listed = JSON.parse((await rvx(['schedules', 'list', '--json'], {env: env()})).stdout).schedules
      assert.deepEqual(
        listed.map((x: {name: string; paused: boolean}) => [x.name, x.paused]),
        [['weekly-tx', true]],
      )
      assert.equal(JSON.parse((await rvx(['schedules', 'resume', String(s.id), '--json'], {env: env()})).stdout).paused, false)
      assert.equal((await rvx(['schedules', 'remove', 'weekly-tx'], {env: env()})).code, 0)
      const gone = await rvx(['schedules', 'pause', 'weekly-tx'], {env: env()})
      assert.equal(gone.code, 1)
      assert.match(gone.stderr, /schedule weekly-tx does not exist: rvx schedules list shows them/)
    })

    it('a monitor that starts after missed slots fires the latest once; workers do the runs, each delivering only new companies', async () => {
      const added = await rvx(
        [
          'schedules',
          'add',
          '--cron',
          '* * * * *',
          '--criteria',
          '{"state":"TX"}',
          '--quantity',
          '3',
          '--provider',
          'simulated',
          '--name',
          'every-minute',
          '--json',
        ],
        {env: env()},
      )
      assert.equal(added.code, 0, added.stderr)
      const id = JSON.parse(added.stdout).id
      // Made three minutes ago, and no monitor ran since.
      await sql`update schedules set fires_after = now() - interval '3 minutes 30 seconds' where id = ${id}`.execute(t.db)
      const once = await rvx(['monitor', '--once'], {env: env()})
      assert.equal(once.code, 0, once.stderr)
      assert.match(once.stderr, /schedule \d+ \(every-minute\) fired for/)
      const first = await sql<{id: number}>`select id from runs`.execute(t.db)
      assert.equal(first.rows.length, 1, 'one run for the missed slots')

      const worker = spawnCli(['worker', 'all', '--concurrency', '4'], env())
      try {
        const done = (runId: number) =>
          waitFor(
            `run ${runId} completed`,
            async () => (await sql<{status: string}>`select status from runs where id = ${runId}`.execute(t.db)).rows[0].status === 'completed',
            60_000,
          ).catch(async (error: Error) => {
            const {rows} = await sql`select id, status, stage, notes from runs`.execute(t.db)
            throw new Error(`${error.message}: ${JSON.stringify(rows)} ${worker.stderr().slice(-3000)}`)
          })
        await done(first.rows[0].id)
        // The next minute's slot (the monitor's clock, a minute on).
        const [next] = await fireDueSchedules(t.db, new Date(Date.now() + MINUTE), silentLogger)
        assert.ok(next.runId)
        await done(next.runId)
        const domains = async (runId: number) =>
          (await sql<{domain: string}>`select domain from companies where run_id = ${runId} and status = 'selected'`.execute(t.db)).rows.map((r) => r.domain)
        const [a, b] = [await domains(first.rows[0].id), await domains(next.runId)]
        assert.equal(a.length, 3)
        assert.equal(b.length, 3)
        assert.deepEqual(
          a.filter((d) => b.includes(d)),
          [],
          'the second run brings only companies the first did not deliver',
        )
      } finally {
        worker.child.kill('SIGTERM')
        await worker.exited
      }
    })
  })
})
