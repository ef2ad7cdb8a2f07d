import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {migrateToLatest} from '../../src/db/migrator.js'
import {openDatabase} from '../../src/db/connect.js'
import {EmbeddedServer} from '../../src/db/embedded.js'
import {rvx} from '../helpers/cli.js'
import {type Spawned, spawnCli, waitFor} from '../helpers/processes.js'

interface Probe {
  status: number
  body: {ready?: boolean; reason?: string; alive?: boolean; active?: boolean; worker?: string}
}

async function probe(base: string, p: string): Promise<Probe> {
  const res = await fetch(`${base}${p}`, {signal: AbortSignal.timeout(10_000)})
  return {status: res.status, body: (await res.json()) as Probe['body']}
}

/** The health server's base URL, from the process's "health on URL/livez" log line. */
function healthUrl(p: Spawned): Promise<string> {
  return waitFor('the health server to listen', async () => /health on (http:\/\/127\.0\.0\.1:\d+)\/livez/.exec(p.stdout() + p.stderr())?.[1], 30_000)
}

describe('health endpoints of rvx worker and rvx monitor (own PostgreSQL, stopped and started)', function () {
  this.timeout(180_000)
  let home: string
  let server: EmbeddedServer
  let url: string

  before(async () => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-health-'))
    server = new EmbeddedServer({home, env: {...process.env, RVX_PG_PORT: ''}, settings: {fsync: 'off'}})
    await server.start()
    url = (await server.url())!
    const handle = await openDatabase(url)
    try {
      await migrateToLatest(handle.db, url)
    } finally {
      await handle.close()
    }
  })

  after(async () => {
    await server.stop().catch(() => {})
    fs.rmSync(home, {recursive: true, force: true})
  })

  it('answer 200 while healthy, 503 with a reason while the database is gone, and 200 again once it is back', async () => {
    const worker = spawnCli(['worker', 'all', '--concurrency', '1', '--id', 'health-1', '--health-port', '0'], {DATABASE_URL: url})
    const monitor = spawnCli(['monitor', '--interval', '500ms', '--health-port', '0'], {DATABASE_URL: url})
    const [w, m] = [await healthUrl(worker), await healthUrl(monitor)]

    const ready = async (base: string) => ((await probe(base, '/readyz')).status === 200 ? probe(base, '/readyz') : undefined)
    const workerReady = await waitFor('the worker to be ready', () => ready(w))
    assert.deepEqual(workerReady.body, {ready: true, worker: 'health-1'})
    const monitorReady = await waitFor('the monitor to be ready', () => ready(m))
    assert.deepEqual(monitorReady.body, {ready: true, active: true})
    assert.deepEqual(await probe(w, '/livez'), {status: 200, body: {alive: true}})
    assert.equal((await probe(w, '/nope')).status, 404)

    const checkDown = async () => {
      const down = async (base: string) => {
        const r = await probe(base, '/readyz')
        return r.status === 503 ? r : undefined
      }

      const workerDown = await waitFor('the worker to be unready', () => down(w))
      assert.equal(workerDown.body.ready, false)
      assert.match(workerDown.body.reason!, /database|liveness/)
      const monitorDown = await waitFor('the monitor to be unready', () => down(m))
      assert.equal(monitorDown.body.ready, false)
      assert.match(monitorDown.body.reason!, /database|leader session/)
      // Alive all the same: an orchestrator must not restart a process for its database's outage.
      assert.deepEqual(await probe(w, '/livez'), {status: 200, body: {alive: true}})
      assert.deepEqual(await probe(m, '/livez'), {status: 200, body: {alive: true}})
    }

    await server.stop()
    try {
      await checkDown()
    } finally {
      // Started again even when a check failed: the other tests need it.
      await server.start()
    }

    await waitFor('the worker to be ready again', () => ready(w), 60_000)
    await waitFor('the monitor to be ready again', () => ready(m), 60_000)

    // SIGTERM drains and ends with exit 143.
    worker.child.kill('SIGTERM')
    monitor.child.kill('SIGTERM')
    assert.equal((await worker.exited).code, 143)
    assert.equal((await monitor.exited).code, 143)
  })

  it('refuses --health-host without --health-port, naming the flag', async () => {
    const r = await rvx(['worker', 'all', '--health-host', '0.0.0.0'], {env: {DATABASE_URL: url}, timeoutMs: 60_000})
    assert.equal(r.code, 2, r.stderr)
    assert.match(r.stderr, /--health-host needs --health-port/)
  })

  it('refuses a health port that is in use, naming the flag', async () => {
    const worker = spawnCli(['worker', 'all', '--concurrency', '1', '--id', 'health-2', '--health-port', '0'], {DATABASE_URL: url})
    const port = new URL(await healthUrl(worker)).port
    const r = await rvx(['monitor', '--once', '--health-port', port], {env: {DATABASE_URL: url}, timeoutMs: 60_000})
    worker.child.kill('SIGTERM')
    await worker.exited
    assert.equal(r.code, 2, r.stderr)
    assert.match(r.stderr, /--health-port .*in use/)
  })
})
