import assert from 'node:assert/strict'
import http from 'node:http'
import type {AddressInfo} from 'node:net'

import {type Alert, EmailChannel, WebhookChannel} from '../../src/monitor/channels.js'
import {recordConditions} from '../../src/monitor/conditions.js'
import {deliverPending} from '../../src/monitor/delivery.js'
import {Mailer} from '../../src/monitor/mail.js'
import {silentLogger} from '../../src/runtime/logger.js'
import {startSmtp} from '../helpers/capture-servers.js'
import {useFreshDatabase} from '../helpers/db.js'

type Answer = 'drop' | 'hang' | {status: number; headers?: Record<string, string>}

/** A webhook endpoint on 127.0.0.1 that answers from a script (then 200) and notes when each POST arrived. */
async function scriptedEndpoint(script: Answer[]) {
  const arrivals: Array<{at: number; body: any}> = []
  const server = http.createServer((req, res) => {
    let body = ''
    req.on('data', (d) => (body += d))
    req.on('end', () => {
      arrivals.push({at: Date.now(), body: JSON.parse(body)})
      const answer = script.shift() ?? {status: 200}
      if (answer === 'drop') return req.socket.destroy() // the connection dies mid-request: a network error
      if (answer === 'hang') return // never answers: the client's time limit is the network error
      res.writeHead(answer.status, {'content-type': 'text/plain', ...answer.headers}).end(answer.status === 200 ? 'ok' : 'no')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/services/T0/B0/secret`,
    arrivals,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

const alert: Alert = {id: 7, kind: 'worker_dead', severity: 'warning', subject: 'worker w1 died', details: {workerId: 'w1'}, createdAt: new Date()}

describe('monitor: webhook delivery retries', function () {
  this.timeout(20_000)
  const endpoints: Array<{close(): Promise<void>}> = []
  afterEach(async () => {
    await Promise.all(endpoints.splice(0).map((e) => e.close()))
  })
  const endpoint = async (script: Answer[]) => {
    const e = await scriptedEndpoint(script)
    endpoints.push(e)
    return e
  }

  it('retries after network errors (a dropped connection, a request that times out) and delivers the same message', async () => {
    const e = await endpoint(['drop', 'hang'])
    await new WebhookChannel(e.url, {tries: 4, baseDelayMs: 10, timeoutMs: 500}).send([alert])
    assert.equal(e.arrivals.length, 3)
    assert.deepEqual(e.arrivals[2].body, e.arrivals[0].body)
    assert.deepEqual(
      e.arrivals[2].body.alerts.map((a: {id: number; kind: string}) => [a.id, a.kind]),
      [[7, 'worker_dead']],
    )
  })

  it('on 429 waits as long as Retry-After says, not its own (short) backoff', async () => {
    const e = await endpoint([{status: 429, headers: {'retry-after': '1'}}])
    await new WebhookChannel(e.url, {tries: 3, baseDelayMs: 10}).send([alert])
    assert.equal(e.arrivals.length, 2)
    const waited = e.arrivals[1].at - e.arrivals[0].at
    assert.ok(waited >= 950, `waited ${waited} ms for a Retry-After of 1 s (its own backoff is ~10 ms)`)
  })

  it('retries 5xx with backoff until its tries run out, then fails naming the status (not the secret path)', async () => {
    const e = await endpoint([{status: 503}, {status: 502}, {status: 500}])
    await assert.rejects(
      new WebhookChannel(e.url, {tries: 3, baseDelayMs: 10}).send([alert]),
      (err: Error) => /answered HTTP 500/.test(err.message) && !err.message.includes('secret'),
    )
    assert.equal(e.arrivals.length, 3)
  })

  it('a 4xx other than 408/429 fails at once: retrying will not help', async () => {
    const e = await endpoint([{status: 400}])
    await assert.rejects(new WebhookChannel(e.url, {tries: 4, baseDelayMs: 10}).send([alert]), /answered HTTP 400/)
    assert.equal(e.arrivals.length, 1)
  })
})

describe('monitor: two alert channels, one failing', function () {
  this.timeout(30_000)
  const t = useFreshDatabase()

  it('only the channel that failed gets the retry: the mail that went out is not sent again', async () => {
    const e = await scriptedEndpoint([{status: 400}])
    const smtp = await startSmtp()
    const mailer = new Mailer(smtp.url)
    try {
      const channels = [new WebhookChannel(e.url, {tries: 1}), new EmailChannel(mailer, 'ops@example.com')]
      const [opened] = await recordConditions(t.db, [{key: 'test:two', kind: 'worker_dead', severity: 'warning', subject: 'worker w2 died', details: {}}], {
        // Channels are configured: the alert waits for them (deliverNow is for a monitor without any).
        deliverNow: false,
      })
      const first = await deliverPending(t.db, {channels}, silentLogger)
      assert.deepEqual({delivered: first.delivered, failed: first.failed}, {delivered: 0, failed: 1})
      assert.match(first.errors[0], /^webhook 127\.0\.0\.1:\d+: .*HTTP 400/)
      assert.equal(smtp.to('ops@example.com').length, 1, 'the mail went out')
      const after = await t.db.selectFrom('alerts').selectAll().where('id', '=', opened.id).executeTakeFirstOrThrow()
      assert.deepEqual(Object.keys(after.deliveries as object), ['email:ops@example.com'], 'the mail is recorded as sent, the webhook is not')
      assert.equal(after.delivered_at, null)

      // The retry is due (its backoff skipped here); the webhook answers now.
      await t.db
        .updateTable('alerts')
        .set({next_attempt_at: new Date(0)})
        .where('id', '=', opened.id)
        .execute()
      const second = await deliverPending(t.db, {channels}, silentLogger)
      assert.deepEqual({delivered: second.delivered, failed: second.failed}, {delivered: 1, failed: 0})
      assert.equal(e.arrivals.length, 2, 'the webhook got the retry')
      assert.equal(e.arrivals[1].body.alerts[0].subject, 'worker w2 died')
      assert.equal(smtp.to('ops@example.com').length, 1, 'the mail was not sent a second time')
      const done = await t.db.selectFrom('alerts').selectAll().where('id', '=', opened.id).executeTakeFirstOrThrow()
      assert.deepEqual(Object.keys(done.deliveries as object).sort(), ['email:ops@example.com', 'webhook'])
      assert.ok(done.delivered_at)
    } finally {
      mailer.close()
      await smtp.close()
      await e.close()
    }
  })
})
