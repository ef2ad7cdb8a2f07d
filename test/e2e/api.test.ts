import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {Validator} from '@seriousme/openapi-schema-validator'
import {sql} from 'kysely'
import {Agent, request} from 'undici'

import {addWebhook} from '../../src/monitor/webhooks.js'
import {silentLogger} from '../../src/runtime/logger.js'
import {type Dashboard, startDashboard} from '../../src/web/server.js'
import {rvx} from '../helpers/cli.js'
import {useFreshDatabase} from '../helpers/db.js'

describe('e2e: rvx serve, the HTTP API', function () {
  this.timeout(120_000)
  const t = useFreshDatabase()
  const env = () => ({DATABASE_URL: t.url, OPENAI_API_KEY: ''})
  let server: Dashboard
  let out: string
  let write: string
  let read: string
  let runId: number

  const token = async (scope: string, name: string) => {
    const res = await rvx(['tokens', 'create', '--scope', scope, '--name', name, '--json'], {env: env()})
    assert.equal(res.code, 0, res.stderr)
    return JSON.parse(res.stdout).token as string
  }

  const call = (route: string, o: {token?: string; method?: string; body?: unknown; raw?: string; headers?: Record<string, string>} = {}) =>
    fetch(new URL(`api/v1${route}`, server.url), {
      method: o.method ?? (o.body === undefined && o.raw === undefined ? 'GET' : 'POST'),
      headers: {
        ...(o.token ? {authorization: `Bearer ${o.token}`} : {}),
        ...(o.body === undefined && o.raw === undefined ? {} : {'content-type': 'application/json'}),
        ...o.headers,
      },
      body: o.raw ?? (o.body === undefined ? undefined : JSON.stringify(o.body)),
    })

  before(async () => {
    out = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-api-'))
    ;[write, read] = [await token('write', 'crm'), await token('read', 'reporting')]
    const res = await rvx(['orchestrate', '--provider', 'simulated', '--criteria', '{"state":"TX"}', '--quantity', '6', '--output-dir', out, '--json'], {
      env: env(),
    })
    assert.equal(res.code, 0, res.stderr)
    runId = JSON.parse(res.stdout).runId
    server = await startDashboard({db: t.db, host: '127.0.0.1', port: 0, intervalMs: 1000, log: silentLogger, api: {ratePerMinute: 100_000, env: {}}})
  })

  after(async () => {
    await server?.close()
    fs.rmSync(out, {recursive: true, force: true})
  })

  it('needs a live token on every request, also on loopback; a read token cannot POST; revoked tokens are refused; use is recorded', async () => {
    const none = await call('/runs')
    assert.equal(none.status, 401)
    assert.equal(none.headers.get('content-type'), 'application/problem+json')
    assert.match((await none.json()).detail, /a token is required/)
    assert.equal((await call('/runs', {token: 'rvx_not-a-token'})).status, 401)
    assert.equal((await call('/openapi.json')).status, 401)

    assert.equal((await call('/runs', {token: read})).status, 200)
    const post = await call('/runs', {token: read, body: {provider: 'simulated', criteria: {state: 'TX'}, quantity: 3}})
    assert.equal(post.status, 403)
    assert.match((await post.json()).detail, /has the read scope; POST needs write/)
    assert.equal((await call(`/runs/${runId}/cancel`, {token: read, method: 'POST'})).status, 403)
    const {rows} = await sql<{n: number}>`select count(*)::int as n from runs`.execute(t.db)
    assert.equal(rows[0].n, 1, 'the refused POST created nothing')

    const listed = JSON.parse((await rvx(['tokens', 'list', '--json'], {env: env()})).stdout).tokens
    assert.ok(listed.find((x: {name: string}) => x.name === 'reporting').lastUsedAt, 'last use recorded')
    assert.ok(!JSON.stringify(listed).includes(read), 'tokens are never listed')

    const extra = await token('read', 'short-lived')
    assert.equal((await call('/runs', {token: extra})).status, 200)
    assert.equal((await rvx(['tokens', 'revoke', 'short-lived'], {env: env()})).code, 0)
    assert.equal((await call('/runs', {token: extra})).status, 401)
  })

  it('POST /runs with the same Idempotency-Key twice creates one run; the key with another body is refused', async () => {
    const body = {provider: 'simulated', criteria: {pms: 'Buildium', state: 'FL'}, quantity: 4, exclude: ['acme-pm.com'], stages: ['enrich']}
    const headers = {'idempotency-key': 'order-7781'}
    const [a, b] = await Promise.all([call('/runs', {token: write, body, headers}), call('/runs', {token: write, body, headers})])
    assert.deepEqual([a.status, b.status], [201, 201])
    const [ra, rb] = [await a.json(), await b.json()]
    assert.equal(ra.id, rb.id)
    assert.equal(ra.status, 'running')
    assert.deepEqual(ra.criteria, {pms: 'Buildium', state: 'FL'})
    const again = await call('/runs', {token: write, body, headers})
    assert.equal((await again.json()).id, ra.id)
    const {rows} = await sql<{n: number}>`select count(*)::int as n from runs where criteria ->> 'state' = 'FL'`.execute(t.db)
    assert.equal(rows[0].n, 1)
    const {rows: excluded} = await sql<{domain: string}>`select domain from run_exclusions where run_id = ${ra.id}`.execute(t.db)
    assert.deepEqual(excluded, [{domain: 'acme-pm.com'}])
    const {rows: options} = await sql<{stages: string[]}>`select options -> 'stages' as stages from runs where id = ${ra.id}`.execute(t.db)
    assert.deepEqual(options[0].stages, ['enrich'], 'opt-in stages as orchestrate --enrich stores them')

    const other = await call('/runs', {token: write, body: {...body, quantity: 5}, headers})
    assert.equal(other.status, 422)
    assert.match((await other.json()).detail, /was used before with a different request/)

    // Driven by the fleet: the run is queued work, as orchestrate --detach leaves it.
    const {rows: tasks} = await sql<{n: number}>`select count(*)::int as n from tasks where scope = ${`run:${ra.id}`} and status = 'queued'`.execute(t.db)
    assert.ok(tasks[0].n > 0)
    assert.equal((await call(`/runs/${ra.id}/cancel`, {token: write, method: 'POST'})).status, 200)
    const twice = await call(`/runs/${ra.id}/cancel`, {token: write, method: 'POST'})
    assert.equal(twice.status, 409)
    assert.equal((await twice.json()).detail, `run ${ra.id} is already canceled`)
  })

  it('POST /runs/{id}/pause pauses a run fleet-wide and /resume lifts it; a read token can do neither', async () => {
    const created = await call('/runs', {token: write, body: {provider: 'simulated', criteria: {state: 'TX'}, quantity: 2}})
    assert.equal(created.status, 201)
    const id = (await created.json()).id
    assert.equal((await call(`/runs/${id}/pause`, {token: read, method: 'POST'})).status, 403)

    const paused = await call(`/runs/${id}/pause`, {token: write, method: 'POST'})
    assert.equal(paused.status, 200)
    assert.ok((await paused.json()).pausedAt, 'the run says when it was paused')
    assert.ok((await (await call(`/runs/${id}`, {token: read})).json()).pausedAt)

    const resumed = await call(`/runs/${id}/resume`, {token: write, method: 'POST'})
    assert.equal(resumed.status, 200)
    const after = await resumed.json()
    assert.equal(after.pausedAt, null)
    assert.equal(after.status, 'running')
    assert.equal((await call(`/runs/${id}/cancel`, {token: write, method: 'POST'})).status, 200)
  })

  it('bad criteria are problem details with the CLI message, word for word', async () => {
    for (const criteria of ['{"state":"Texas"}', '{"pmz":"Buildium"}', '{"units_min":50,"units_max":10}']) {
      const cli = await rvx(['orchestrate', '--provider', 'simulated', '--criteria', criteria, '--quantity', '5', '--detach'], {env: env()})
      assert.equal(cli.code, 2)
      const said = cli.stderr.trim().replace(/^Error: /, '')
      const res = await call('/runs', {token: write, body: {provider: 'simulated', criteria: JSON.parse(criteria), quantity: 5}})
      assert.equal(res.status, 400)
      assert.equal(res.headers.get('content-type'), 'application/problem+json')
      const problem = await res.json()
      assert.equal(problem.detail, said, criteria)
      assert.equal(problem.status, 400)
      assert.equal(problem.code, 'usage')
    }

    const notJson = await call('/runs', {token: write, raw: '{"criteria":'})
    assert.equal(notJson.status, 400)
    assert.match((await notJson.json()).detail, /not valid JSON/)
    const size = await call('/runs', {token: write, body: {provider: 'simulated', criteria: {state: 'TX'}, quantity: 0}})
    assert.equal((await size.json()).detail, 'quantity must be a whole number from 1 to 10000 (got 0)')
    const typed = await call('/runs', {token: write, body: {provider: 'simulated', criteria: {state: 'TX'}, quantity: '5'}})
    assert.equal((await typed.json()).detail, 'quantity must be a number')
    const status = await call('/runs?status=done', {token: read})
    assert.equal(status.status, 400)
    assert.equal((await status.json()).detail, 'status must be one of running, needs_decision, completed, failed, canceled')
  })

  it('pages of companies stay stable while the run writes: none twice, none skipped', async () => {
    const {rows: before} = await sql<{id: number}>`select id from companies where run_id = ${runId} order by id`.execute(t.db)
    const seen: number[] = []
    let cursor: string | null = null
    let writes = 0
    do {
      const page: {companies: Array<{id: number; verdicts: unknown[]}>; next_cursor: string | null} = await (
        await call(`/runs/${runId}/companies?limit=3${cursor ? `&cursor=${cursor}` : ''}`, {token: read})
      ).json()
      seen.push(...page.companies.map((c) => c.id))
      cursor = page.next_cursor
      // The run writes between pages: a new candidate, and a status change of one already seen.
      await sql`insert into companies (run_id, domain, name, discovered_by) values (${runId}, ${`late-${writes}.example`}, 'Late', 'test')`.execute(t.db)
      await sql`update companies set status = 'disqualified' where id = ${seen[0]}`.execute(t.db)
      writes++
    } while (cursor)

    assert.equal(new Set(seen).size, seen.length, 'no company twice')
    assert.ok(
      before.every((r) => seen.includes(r.id)),
      'every company there at the start is seen',
    )
    const page = await (await call(`/runs/${runId}/companies?status=selected&limit=100`, {token: read})).json()
    assert.ok(page.companies.length > 0)
    assert.ok(page.companies.every((c: {verdicts: Array<{evidence: unknown[]}>}) => Array.isArray(c.verdicts)))
    const contacts = await (await call(`/runs/${runId}/contacts?limit=100`, {token: read})).json()
    assert.ok(contacts.contacts.length > 0)
    assert.equal((await call(`/runs/${runId}/companies?limit=0`, {token: read})).status, 400)
  })

  it('the export endpoint gives the bytes rvx runs export writes', async () => {
    const res = await rvx(['runs', 'export', String(runId), '--output-dir', out, '--json'], {env: env()})
    assert.equal(res.code, 0, res.stderr)
    const files = JSON.parse(res.stdout).files
    for (const table of ['companies', 'contacts'] as const) {
      const got = await call(`/runs/${runId}/export.csv?table=${table}`, {token: read})
      assert.equal(got.status, 200)
      assert.match(got.headers.get('content-type')!, /^text\/csv/)
      assert.deepEqual(Buffer.from(await got.arrayBuffer()), fs.readFileSync(files[table]))
    }

    const shown = JSON.parse((await rvx(['runs', 'show', String(runId), '--json'], {env: env()})).stdout)
    const got = await (await call(`/runs/${runId}`, {token: read})).json()
    assert.deepEqual(Object.keys(got).sort(), Object.keys(shown).sort(), 'the fields of runs show --json')
    assert.equal((await call('/runs/999999', {token: read})).status, 404)
  })

  it('caps request bodies and rate-limits each token', async () => {
    // On a connection of its own: the server answers before it has read the body, and closes that connection.
    const agent = new Agent()
    try {
      const big = await request(new URL('api/v1/runs', server.url), {
        method: 'POST',
        dispatcher: agent,
        headers: {authorization: `Bearer ${write}`, 'content-type': 'application/json'},
        body: JSON.stringify({criteria: {natural_request: 'x'.repeat(2 * 1024 * 1024)}}),
      })
      assert.equal(big.statusCode, 413)
      assert.equal(big.headers['content-type'], 'application/problem+json')
      assert.match(((await big.body.json()) as {detail: string}).detail, /request bodies are limited to 1048576 bytes/)
    } finally {
      await agent.close()
    }

    const limited = await startDashboard({db: t.db, host: '127.0.0.1', port: 0, intervalMs: 1000, log: silentLogger, api: {ratePerMinute: 3, env: {}}})
    try {
      const get = (tok: string) => fetch(new URL('api/v1/fleet', limited.url), {headers: {authorization: `Bearer ${tok}`}})
      const statuses = []
      for (let i = 0; i < 4; i++) statuses.push((await get(read)).status)
      assert.deepEqual(statuses, [200, 200, 200, 429])
      const refused = await get(read)
      assert.ok(Number(refused.headers.get('retry-after')) >= 1)
      assert.equal((await get(write)).status, 200, 'another token has its own allowance')
    } finally {
      await limited.close()
    }
  })

  it('the OpenAPI document validates, and every route in it answers', async () => {
    const doc = await (await call('/openapi.json', {token: read})).json()
    const result = await new Validator().validate(doc)
    assert.equal(result.valid, true, JSON.stringify(result.errors))
    assert.equal(doc.openapi, '3.1.0')

    // A loopback receiver that this server (without RVX_ALLOW_PRIVATE_WEBHOOKS) refuses to reach: nothing leaves the machine.
    const hook = await addWebhook(t.db, {url: 'http://127.0.0.1:9/hook', events: ['run.completed']})
    const refused = await call('/webhooks', {token: write, body: {url: 'http://127.0.0.1:9/hook', events: ['run.completed']}})
    assert.equal(refused.status, 400)
    assert.match((await refused.json()).detail, /^url reaches 127\.0\.0\.1, a loopback address: webhooks go to public addresses/)
    const schedule = await (
      await call('/schedules', {token: write, body: {cron: '0 8 * * MON', tz: 'America/Chicago', provider: 'simulated', criteria: {state: 'TX'}, quantity: 5}})
    ).json()
    assert.ok(schedule.nextAt)
    await sql`update runs set status = 'needs_decision' where id = ${runId}`.execute(t.db)
    const ids: Record<string, string> = {runs: String(runId), webhooks: String(hook.id), schedules: String(schedule.id)}
    const operations = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([p, methods]) =>
      Object.keys(methods).map((method) => ({p, method: method.toUpperCase()})),
    )
    // Deletions last, so what the other routes name still exists.
    operations.sort((a, b) => Number(a.method === 'DELETE') - Number(b.method === 'DELETE'))
    assert.ok(operations.length >= 20)
    for (const {p, method} of operations) {
      const route = p
        .replace(/^\/api\/v1/, '')
        .replace('{id}', ids[p.split('/')[3]])
        .replace('{deliveryId}', '1')
      const res = await call(route, {token: write, method, ...(method === 'POST' && route.endsWith('/resume') ? {raw: '{}'} : {})})
      const type = res.headers.get('content-type') ?? ''
      assert.ok(res.status < 500, `${method} ${p}: ${res.status}`)
      if (res.status >= 400) assert.notEqual((await res.json()).code, 'not_found', `${method} ${p} is served`)
      else if (res.status !== 204 && res.status !== 202) assert.match(type, /json|csv/, `${method} ${p}`)
    }

    const missing = await call('/nope', {token: read})
    assert.equal(missing.status, 404)
    assert.equal((await missing.json()).code, 'not_found')
  })
})
