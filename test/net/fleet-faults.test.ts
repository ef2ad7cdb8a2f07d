import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {sql} from 'kysely'
import pg from 'pg'

import {openDatabase} from '../../src/db/connect.js'
import {EmbeddedServer} from '../../src/db/embedded.js'
import {migrateToLatest} from '../../src/db/migrator.js'
import type {Database} from '../../src/db/schema.js'
import {type WebhookCapture, startWebhook} from '../helpers/capture-servers.js'
import {rvx} from '../helpers/cli.js'
import {useFreshDatabase} from '../helpers/db.js'
import {createNetns, type Netns, netnsSupport} from '../helpers/netns.js'
import {type Spawned, spawnCli, waitFor} from '../helpers/processes.js'
import {StandbyPair} from '../helpers/standby.js'
import {TcpProxy} from '../helpers/tcp-proxy.js'
import type {Kysely} from 'kysely'

/**
 * The fleet under partial failure, with real faults: a worker frozen or cut
 * off (a veth into a network namespace, iptables) while one of its
 * transactions is open, a slow and lossy link, more workers than PostgreSQL
 * has connections, and a failover that loses the tail of the commits. The
 * rest of the fleet must keep completing, nobody slow may be taken for dead,
 * no attempt may be spent on a missing connection, no paid call may vanish.
 */

/** A simulated world large enough that no run here runs out of candidates. */
const SUPPLY = {RVX_SIM_SUPPLY: '400'}

/** Prints a measured figure under the test's name (bench/RESULTS.md quotes them). */
function measured(text: string): void {
  console.log(`      measured: ${text}`)
}

/** No stretch longer than this without a completed task while a run has work (the bound the README states). */
const MAX_STALL_MS = 15_000

async function createRun(env: NodeJS.ProcessEnv, criteria: string, quantity: number, extra: string[] = []): Promise<number> {
  const created = await rvx(
    ['orchestrate', '--provider', 'simulated', '--criteria', criteria, '--quantity', String(quantity), '--detach', '--json', ...extra],
    {
      env,
    },
  )
  assert.equal(created.code, 0, created.stderr)
  return JSON.parse(created.stdout).runId as number
}

async function runEnded(db: Kysely<Database>, runId: number, timeoutMs: number): Promise<{status: string; tookMs: number; notes: string | null}> {
  return waitFor(
    `run ${runId} to end`,
    async () => {
      const {rows} = await sql<{status: string; took_ms: number; notes: string | null}>`
        select status, notes, extract(epoch from coalesce(finished_at, now()) - created_at)::float8 * 1000 as took_ms from runs where id = ${runId}`.execute(db)
      return rows[0] && rows[0].status !== 'running' ? {status: rows[0].status, tookMs: rows[0].took_ms, notes: rows[0].notes} : undefined
    },
    timeoutMs,
    250,
  )
}

/** What a run that ended short looks like: its rounds, its tasks by kind and status, its failures. */
async function diagnose(db: Kysely<Database>, runId: number): Promise<string> {
  const run = await sql`select stage, discovery_rounds, options from runs where id = ${runId}`.execute(db)
  const tasks = await sql`select kind, status, count(*)::int as n, max(attempts) as attempts, max(crash_count) as crashes, min(last_error) as error
    from tasks where scope = ${`run:${runId}`} group by 1, 2 order by 1, 2`.execute(db)
  const companies = await sql`select status, count(*)::int as n from companies where run_id = ${runId} group by 1`.execute(db)
  return JSON.stringify({run: run.rows, tasks: tasks.rows, companies: companies.rows})
}

/** Completion times (database clock, ms) of a run's tasks, in order. */
async function completions(db: Kysely<Database>, runId: number): Promise<number[]> {
  const {rows} = await sql<{ms: number}>`
    select extract(epoch from e.at)::float8 * 1000 as ms
    from task_events e join tasks t on t.id = e.task_id
    where e.event = 'completed' and t.scope = ${`run:${runId}`}
    order by e.at`.execute(db)
  return rows.map((r) => r.ms)
}

/** The longest stretch without a completion between `from` and the last completion (ms). */
function longestStall(times: number[], from: number): number {
  let last = from
  let longest = 0
  for (const t of times) {
    if (t < from) continue
    longest = Math.max(longest, t - last)
    last = t
  }

  return longest
}

/** A completed run delivers exactly its quantity of distinct companies, each with a decision maker, nothing twice. */
async function assertExact(db: Kysely<Database>, runId: number, quantity: number): Promise<void> {
  const {rows} = await sql<{selected: number; domains: number; short: number; dup_contacts: number}>`
    select count(*)::int as selected, count(distinct c.domain)::int as domains,
      count(*) filter (where not exists (select 1 from contacts k where k.company_id = c.id))::int as short,
      (select count(*)::int from (select company_id, lower(full_name) from contacts where run_id = ${runId} group by 1, 2 having count(*) > 1) d) as dup_contacts
    from companies c where c.run_id = ${runId} and c.status = 'selected'`.execute(db)
  assert.deepEqual(rows[0], {selected: quantity, domains: quantity, short: 0, dup_contacts: 0})
}

/** The server time now (ms since the epoch), so it compares with the event times. */
async function dbNow(db: Kysely<Database>): Promise<number> {
  return (await sql<{ms: number}>`select extract(epoch from now())::float8 * 1000 as ms`.execute(db)).rows[0].ms
}

/** Whether the worker has a session idle inside a transaction right now (a completion or an advance under way). */
async function idleInTransaction(db: Kysely<Database>, workerId: string): Promise<boolean> {
  const {rows} = await sql<{n: number}>`
    select count(*)::int as n from pg_stat_activity
    where application_name = ${`rvx-worker ${workerId}`.slice(0, 63)} and state = 'idle in transaction'`.execute(db)
  return rows[0].n > 0
}

/**
 * Strikes `worker` (a freeze, a cut) at a moment when one of its sessions is
 * inside a transaction: polls for it, strikes, and checks the transaction is
 * still open after the strike (else undoes it and tries again).
 */
async function strikeMidTransaction(db: Kysely<Database>, workerId: string, strike: () => Promise<void>, undo: () => Promise<void>): Promise<number> {
  for (let tries = 0; tries < 200; tries++) {
    await waitFor(`worker ${workerId} inside a transaction`, async () => idleInTransaction(db, workerId), 30_000, 2)
    const at = await dbNow(db)
    await strike()
    await new Promise((r) => setTimeout(r, 150))
    if (await idleInTransaction(db, workerId)) return at
    await undo()
  }

  throw new Error(`never caught worker ${workerId} inside a transaction`)
}

describe('fleet faults: a worker frozen while its transaction is open (SIGSTOP)', function () {
  this.timeout(240_000)
  const t = useFreshDatabase()
  const env = () => ({DATABASE_URL: t.url, ...SUPPLY})
  const procs: Spawned[] = []
  after(() => procs.forEach((p) => p.child.kill('SIGKILL')))

  it('the rest of the fleet keeps completing (no stretch over 15 s), the frozen one is declared dead, the run is exact', async () => {
    const worker = (id: string) => spawnCli(['worker', 'all', '--id', id, '--concurrency', '4', '--sim-latency', '200ms-700ms'], env())
    const a = worker('stop-a')
    const b = worker('stop-b')
    procs.push(a, b)
    await waitFor('two workers', async () => (await t.db.selectFrom('workers').select('id').where('status', '=', 'idle').execute()).length === 2, 60_000)
    const runId = await createRun(env(), '{"pms":"Buildium","state":"TX"}', 60)
    await waitFor('work under way', async () => (await completions(t.db, runId)).length >= 10, 60_000)

    const frozenAt = await strikeMidTransaction(
      t.db,
      'stop-a',
      async () => void a.child.kill('SIGSTOP'),
      async () => void a.child.kill('SIGCONT'),
    )
    // Frozen for twice dead-after: long enough to be presumed dead, its tasks taken over by the other worker.
    await new Promise((r) => setTimeout(r, 30_000))
    const during = await completions(t.db, runId)
    const thawAt = await dbNow(t.db)
    a.child.kill('SIGCONT')
    const end = await runEnded(t.db, runId, 180_000)
    assert.equal(end.status, 'completed', end.notes ?? '')
    const lastDuring = Math.max(...during.filter((c) => c <= thawAt))
    // Until the run had nothing left for the healthy worker, or the thaw.
    const stall = longestStall(
      during.filter((c) => c <= thawAt),
      frozenAt,
    )
    measured(`longest stretch without a completion while frozen: ${Math.round(stall)} ms; run took ${Math.round(end.tookMs)} ms`)
    assert.ok(lastDuring > frozenAt, 'the healthy worker completed tasks while the other was frozen')
    assert.ok(stall < MAX_STALL_MS, `longest stretch without a completion while one worker was frozen: ${Math.round(stall)} ms`)
    const dead = await t.db.selectFrom('workers').select(['id', 'deaths']).where('id', '=', 'stop-a').executeTakeFirstOrThrow()
    assert.ok(dead.deaths >= 1, 'the frozen worker was declared dead')
    await assertExact(t.db, runId, 60)
  })
})

describe('fleet faults: a worker whose database stops answering mid-session', function () {
  this.timeout(120_000)
  const t = useFreshDatabase()
  const procs: Spawned[] = []
  let proxy: TcpProxy | undefined
  after(async () => {
    procs.forEach((p) => p.child.kill('SIGKILL'))
    await proxy?.close()
  })

  it('SIGTERM still ends it within its drain grace, with 143, though its connections answer nothing', async () => {
    const target = new URL(t.url)
    proxy = await TcpProxy.start({target: {host: target.hostname, port: Number(target.port)}})
    const url = new URL(t.url)
    url.port = String(proxy.port)
    const worker = spawnCli(['worker', 'all', '--id', 'hung-a', '--concurrency', '4'], {DATABASE_URL: url.toString()})
    procs.push(worker)
    await waitFor('the worker', async () => (await t.db.selectFrom('workers').select('id').where('status', '=', 'idle').execute()).length === 1, 60_000)
    // Every connection stays open and silent: a half-open peer, as after a partition.
    proxy.freeze()
    await new Promise((r) => setTimeout(r, 1000))
    worker.child.kill('SIGTERM')
    const exit = await Promise.race([worker.exited, new Promise<null>((r) => setTimeout(() => r(null), 60_000))])
    assert.deepEqual(exit && {code: exit.code}, {code: 143}, worker.stderr().slice(-1500))
  })
})

describe('fleet faults: PostgreSQL has fewer connections than the fleet would take', function () {
  this.timeout(300_000)
  let home: string
  let server: EmbeddedServer
  let handle: Awaited<ReturnType<typeof openDatabase>> | undefined
  const procs: Spawned[] = []

  before(async function () {
    this.timeout(120_000)
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-conn-'))
    server = new EmbeddedServer({home, env: {...process.env, RVX_PG_PORT: ''}, settings: {max_connections: '100', fsync: 'off', synchronous_commit: 'off'}})
    const {url} = await server.start()
    handle = await openDatabase(url, {max: 2})
    await migrateToLatest(handle.db, url)
  })

  after(async () => {
    procs.forEach((p) => p.child.kill('SIGKILL'))
    await handle?.close()
    await server?.stop().catch(() => {})
    fs.rmSync(home, {recursive: true, force: true})
  })

  it('30 workers on max_connections=100: those that cannot have their connections exit 3 in one line; no attempt is spent on a connection; SIGTERM ends the rest', async () => {
    const db = handle!.db
    const env = {DATABASE_URL: handle!.url, ...SUPPLY}
    const monitor = spawnCli(['monitor', '--interval', '1s'], env)
    procs.push(monitor)
    await waitFor('the monitor', async () => monitor.stderr().includes('fleet:'), 60_000)
    const runId = await createRun(env, '{"pms":"AppFolio","state":"FL"}', 20, ['--sim-latency', '200ms-600ms'])
    const workers = Array.from({length: 30}, (_, i) => spawnCli(['worker', 'all', '--id', `conn-${i}`, '--concurrency', '4'], env))
    procs.push(...workers)
    const end = await runEnded(db, runId, 240_000)
    assert.equal(end.status, 'completed', end.notes ?? '')
    await assertExact(db, runId, 20)

    // Each worker either registered or gave up; those that gave up said so in one line and exited 3.
    const registered = async () => new Set((await db.selectFrom('workers').select('id').execute()).map((w) => w.id))
    const exited = new Set<number>()
    workers.forEach((w, i) => void w.exited.then(() => exited.add(i)))
    await waitFor(
      'every worker started or gave up',
      async () => {
        const ids = await registered()
        return workers.every((_, i) => exited.has(i) || ids.has(`conn-${i}`))
      },
      120_000,
      500,
    ).catch(async (error) => {
      const ids = await registered()
      const stuck = workers.map((w, i) => [i, w] as const).filter(([i]) => !exited.has(i) && !ids.has(`conn-${i}`))
      throw new Error(`${error.message}: ${stuck.map(([i, w]) => `conn-${i}: ${w.stderr().slice(-600)}`).join('\n---\n')}`)
    })
    const refused = workers.filter((_, i) => exited.has(i))
    for (const w of refused) {
      const out = await w.exited
      assert.equal(out.code, 3, w.stderr())
      const lines = w.stderr().trim().split('\n')
      assert.equal(lines.length, 1, w.stderr())
      assert.match(lines[0], /connections|too many clients/i)
    }

    const running = workers.filter((_, i) => !exited.has(i))
    measured(`${running.length} of 30 workers started, ${refused.length} exited 3`)
    assert.ok(refused.length > 0 && running.length > 0, `some started (${running.length}), some could not (${refused.length})`)
    const {rows} = await sql<{attempts: number; failures: number}>`
      select (select coalesce(sum(attempts), 0)::int from tasks) as attempts,
             (select count(*)::int from task_events where event in ('retry_scheduled', 'failed')) as failures`.execute(db)
    assert.deepEqual(rows[0], {attempts: 0, failures: 0}, 'no task attempt spent')

    // SIGTERM ends every one that runs, within its drain.
    for (const w of running) w.child.kill('SIGTERM')
    const stopped = await Promise.all(running.map((w) => Promise.race([w.exited, new Promise<null>((r) => setTimeout(() => r(null), 60_000))])))
    assert.deepEqual(
      stopped.map((s) => s?.code),
      running.map(() => 143),
    )
  })
})

describe('fleet faults: network namespaces (a cut while a transaction is open, a slow and lossy link)', function () {
  this.timeout(600_000)
  const t = useFreshDatabase()
  const procs: Spawned[] = []
  const spaces: Netns[] = []
  const proxies: TcpProxy[] = []
  let webhook: WebhookCapture | undefined
  /** The cut left in place by the first case, restored by the last. */
  let cut: {ns: Netns; cutAt: number; runId: number} | undefined

  before(function () {
    const why = netnsSupport()
    if (why) {
      console.log(`      skipped: ${why}`)
      this.skip()
    }
  })

  after(async () => {
    procs.forEach((p) => p.child.kill('SIGKILL'))
    for (const p of proxies) await p.close().catch(() => {})
    for (const ns of spaces) await ns.destroy().catch(() => {})
    await webhook?.close()
  })

  /** A namespace whose processes reach the test database through a proxy on the veth (delay set on the proxy). */
  async function isolated(): Promise<{ns: Netns; proxy: TcpProxy; url: string}> {
    const ns = await createNetns()
    spaces.push(ns)
    const target = new URL(t.url)
    const proxy = await TcpProxy.start({host: ns.hostIp, target: {host: target.hostname, port: Number(target.port)}})
    proxies.push(proxy)
    const url = new URL(t.url)
    url.hostname = proxy.host
    url.port = String(proxy.port)
    return {ns, proxy, url: url.toString()}
  }

  it('a 150 s cut while a worker has a transaction open: the others keep completing (no stretch over 15 s), it is declared dead and alerted', async () => {
    webhook = await startWebhook()
    const env = {DATABASE_URL: t.url, ...SUPPLY}
    const {ns, url} = await isolated()
    const monitor = spawnCli(['monitor', '--interval', '1s', '--alert-webhook', webhook.url], env)
    const cutOff = spawnCli(
      ['worker', 'all', '--id', 'cut-a', '--concurrency', '4', '--sim-latency', '200ms-700ms'],
      {DATABASE_URL: url, ...SUPPLY},
      {netns: ns},
    )
    const healthy = spawnCli(['worker', 'all', '--id', 'cut-b', '--concurrency', '4', '--sim-latency', '200ms-700ms'], env)
    procs.push(monitor, cutOff, healthy)
    await waitFor('both workers', async () => (await t.db.selectFrom('workers').select('id').where('status', '=', 'idle').execute()).length === 2, 60_000)
    const runId = await createRun(env, '{"pms":"Buildium","state":"TX"}', 60)
    await waitFor('work under way', async () => (await completions(t.db, runId)).length >= 10, 60_000)

    const cutAt = await strikeMidTransaction(
      t.db,
      'cut-a',
      () => ns.cut(),
      () => ns.restore(),
    )
    const end = await runEnded(t.db, runId, 150_000)
    assert.equal(end.status, 'completed', end.notes ?? '')
    const stall = longestStall(await completions(t.db, runId), cutAt)
    measured(`longest stretch without a completion after the cut: ${Math.round(stall)} ms; run took ${Math.round(end.tookMs)} ms`)
    assert.ok(stall < MAX_STALL_MS, `longest stretch without a completion after the cut: ${Math.round(stall)} ms`)
    await waitFor('the death alert delivered', async () => webhook!.requests.some((r) => /worker cut-a .* died/.test(JSON.stringify(r.body))), 60_000)

    // The link stays cut for 150 s; the slow-link case runs meanwhile (without the healthy worker, so its runs go through
    // the impaired link only), and the last case of this block restores the link.
    healthy.child.kill('SIGTERM')
    await healthy.exited
    cut = {ns, cutAt, runId}
  })

  it('200 ms ± 50 ms and 5% loss for a whole run: no worker taken for dead, done within 3x the time of the same run on a clean link', async () => {
    const {ns, proxy, url} = await isolated()
    const env = {DATABASE_URL: t.url, ...SUPPLY}
    for (const id of ['slow-a', 'slow-b']) {
      procs.push(spawnCli(['worker', 'all', '--id', id, '--concurrency', '8', '--sim-latency', '3s-6s'], {DATABASE_URL: url, ...SUPPLY}, {netns: ns}))
    }

    await waitFor(
      'both workers',
      async () => (await t.db.selectFrom('workers').select('id').where('id', 'like', 'slow-%').where('status', '=', 'idle').execute()).length === 2,
      60_000,
    )
    // The same run twice (nothing from the cache, nothing kept out as delivered): the same work on each link.
    const same = ['--fresh', '--include-delivered']
    const clean = await runEnded(t.db, await createRun(env, '{"pms":"Buildium","state":"CA"}', 40, same), 240_000)
    assert.equal(clean.status, 'completed', clean.notes ?? '')

    proxy.setDelay({up: {ms: 100, jitterMs: 25}, down: {ms: 100, jitterMs: 25}})
    await ns.loss(0.05)
    const runId = await createRun(env, '{"pms":"Buildium","state":"CA"}', 40, same)
    const slow = await runEnded(t.db, runId, 3 * clean.tookMs + 60_000)
    assert.equal(slow.status, 'completed', `${slow.notes}: ${await diagnose(t.db, runId)}`)
    await assertExact(t.db, runId, 40)
    measured(
      `clean link ${Math.round(clean.tookMs)} ms, 200 ms +/- 50 ms and 5% loss ${Math.round(slow.tookMs)} ms (${(slow.tookMs / clean.tookMs).toFixed(2)}x)`,
    )
    assert.ok(slow.tookMs <= 3 * clean.tookMs, `impaired ${Math.round(slow.tookMs)} ms against ${Math.round(clean.tookMs)} ms on a clean link`)
    // A lease lost by a slow worker (declared dead, or its lease run out) would show as a requeue; a fence after a
    // cancel (the run met its target) is no such loss and is not counted.
    const {rows} = await sql<{deaths: number; requeued: number}>`
      select (select coalesce(sum(deaths), 0)::int from workers where id like 'slow-%') as deaths,
             (select count(*)::int from task_events where event in ('requeued_after_death', 'requeued_lease_expired') and worker_id like 'slow-%') as requeued`.execute(
      t.db,
    )
    assert.deepEqual(rows[0], {deaths: 0, requeued: 0}, 'no false death, no lease lost')
  })

  it('when the 150 s cut ends, the cut-off worker learns it was presumed dead and registers again; nothing it finished late was applied', async function () {
    if (!cut) this.skip()
    const {ns, cutAt, runId} = cut!
    const left = 150_000 - ((await dbNow(t.db)) - cutAt)
    if (left > 0) await new Promise((r) => setTimeout(r, left))
    await ns.restore()
    await waitFor(
      'the cut-off worker to register again',
      async () => {
        const row = await t.db.selectFrom('workers').select('status').where('id', '=', 'cut-a').executeTakeFirst()
        return row && row.status !== 'dead'
      },
      120_000,
      500,
    )
    await assertExact(t.db, runId, 60)
  })
})

describe('fleet faults: a failover that loses the tail of the commits', function () {
  this.timeout(240_000)
  let pair: StandbyPair | undefined
  const procs: Spawned[] = []

  after(async () => {
    procs.forEach((p) => p.child.kill('SIGKILL'))
    await pair?.stop().catch(() => {})
  })

  it('no paid call goes missing from llm_calls: the worker writes back from its journal what the new primary lost', async () => {
    pair = await StandbyPair.start()
    const url = pair.url('postgres')
    const migrated = await rvx(['migrate', '--json'], {env: {DATABASE_URL: url}})
    assert.equal(migrated.code, 0, migrated.stderr)
    const env = {DATABASE_URL: url, ...SUPPLY}
    const worker = spawnCli(['worker', 'all', '--id', 'fo-a', '--concurrency', '8', '--sim-latency', '100ms-400ms'], env)
    procs.push(worker)
    const runId = await createRun(env, '{"pms":"RentVine","state":"NC"}', 40)
    const primary = new pg.Client({connectionString: pair.primaryUrl('postgres')})
    await primary.connect()
    const callIds = async (client: pg.Client) =>
      new Set((await client.query<{id: string}>('select call_id::text as id from llm_calls where call_id is not null')).rows.map((r) => r.id))
    try {
      await waitFor('paid calls', async () => (await callIds(primary)).size >= 10, 60_000)
      await pair.waitCaughtUp()
      // From here the primary acknowledges commits the standby never receives.
      pair.replication.freeze()
      const before = (await callIds(primary)).size
      await waitFor('more paid calls after replication stopped', async () => (await callIds(primary)).size >= before + 10, 60_000)
      const paid = await callIds(primary)
      await primary.end().catch(() => {})
      pair.killPrimary()
      await pair.promote()
      const standby = new pg.Client({connectionString: pair.standbyUrl('postgres')})
      await standby.connect()
      try {
        const kept = await callIds(standby)
        const lost = [...paid].filter((id) => !kept.has(id))
        measured(`${paid.size} calls recorded on the old primary, ${lost.length} lost by the failover`)
        assert.ok(lost.length > 0, 'the failover lost recorded calls (the case under test)')
        pair.endpoint.retarget('127.0.0.1', pair.standbyPort)
        pair.endpoint.cutAll()
        await waitFor(
          'every paid call recorded again',
          async () => {
            const now = await callIds(standby)
            return [...paid].every((id) => now.has(id))
          },
          90_000,
          500,
        ).catch(async (error) => {
          const now = await callIds(standby)
          throw new Error(`${error.message}: ${[...paid].filter((id) => !now.has(id)).length} of ${lost.length} still missing; ${worker.stderr().slice(-1500)}`)
        })
        const {rows} = await standby.query<{dup: number}>(
          `select count(*)::int as dup from (select call_id from llm_calls group by call_id having count(*) > 1) d`,
        )
        assert.equal(rows[0].dup, 0, 'no call counted twice')
      } finally {
        await standby.end()
      }
    } finally {
      await primary.end().catch(() => {})
    }

    void runId
  })
})
