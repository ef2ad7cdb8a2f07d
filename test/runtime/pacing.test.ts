import assert from 'node:assert/strict'

import {callContext} from '../../src/pipeline/spend.js'
import {createRun} from '../../src/pipeline/runs.js'
import {DEFAULT_PACING, listRateLimits, settleShare, setRateLimit, takeShare} from '../../src/runtime/pacing.js'
import {useFreshDatabase} from '../helpers/db.js'
import {spawnScript} from '../helpers/processes.js'

const rateOf = async (db: Parameters<typeof listRateLimits>[0], key: string) => (await listRateLimits(db)).find((l) => l.key === key)!

describe('pacing: one quota for the whole fleet, in PostgreSQL', function () {
  this.timeout(120_000)
  const t = useFreshDatabase()

  it('two processes drawing on one quota never send more than its rate plus the burst in any second', async () => {
    const rpm = 600 // 10 per second, a burst of 20 (DEFAULT_PACING.burstSeconds = 2)
    const env = {DATABASE_URL: t.url, PACING_KEY: 'http://127.0.0.1:1/v1 fleet-model', PACING_N: '40', PACING_RPM: String(rpm)}
    const fleet = [spawnScript('test/fixtures/pacing-process.ts', env), spawnScript('test/fixtures/pacing-process.ts', env)]
    const exits = await Promise.all(fleet.map((p) => p.exited))
    assert.deepEqual(
      exits.map((e) => e.code),
      [0, 0],
      fleet.map((p) => p.stderr()).join('\n'),
    )
    const sent = fleet.flatMap((p) => JSON.parse(p.stdout()) as number[]).sort((a, b) => a - b)
    assert.equal(sent.length, 80)
    const perSecond = rpm / 60
    const burst = perSecond * DEFAULT_PACING.burstSeconds
    // Any window of one second holds at most the rate plus what the bucket held, with a little slack for timers.
    let worst = 0
    for (let i = 0; i < sent.length; i++) {
      let j = i
      while (j < sent.length && sent[j] - sent[i] < 1000) j++
      worst = Math.max(worst, j - i)
    }

    assert.ok(worst <= perSecond + burst + 2, `at most ${perSecond + burst + 2} calls in a second, saw ${worst}`)
    // And the quota was shared, not each process's own: 80 calls at 10/s after a burst of 20 take at least ~6 s.
    assert.ok(sent.at(-1)! - sent[0] >= ((80 - burst - 2) / perSecond) * 1000 * 0.9, `80 calls spanned ${sent.at(-1)! - sent[0]} ms`)
  })

  it('a 429 cuts the rate for the fleet (once per cutEveryMs); successes grow it back, never above the ceiling', async () => {
    const key = 'aimd model'
    const policy = {...DEFAULT_PACING, cutEveryMs: 0}
    await setRateLimit(t.db, key, {rpm: 100})
    await settleShare(t.db, key, {limited: true, paced: true, tokensTaken: 0}, policy)
    const cut = await rateOf(t.db, key)
    assert.equal(cut.rateRpm, 100 * policy.cut)
    assert.equal(cut.sawLimit, true)
    await settleShare(t.db, key, {limited: true, paced: true, tokensTaken: 0}, policy)
    assert.equal((await rateOf(t.db, key)).rateRpm, 100 * policy.cut * policy.cut)

    // Within cutEveryMs, a burst of 429s from many workers counts as one.
    await settleShare(t.db, key, {limited: true, paced: true, tokensTaken: 0}, {...policy, cutEveryMs: 60_000})
    assert.equal((await rateOf(t.db, key)).rateRpm, 100 * policy.cut * policy.cut)

    for (let i = 0; i < 10; i++) await settleShare(t.db, key, {limited: false, paced: true, tokensTaken: 0}, policy)
    const grown = await rateOf(t.db, key)
    assert.equal(Math.round(grown.rateRpm * 1000) / 1000, Math.round((100 * policy.cut * policy.cut + 10 * policy.growRpm) * 1000) / 1000)
    for (let i = 0; i < 100; i++) await settleShare(t.db, key, {limited: false, paced: true, tokensTaken: 0}, policy)
    assert.equal((await rateOf(t.db, key)).rateRpm, 100, 'never above the configured ceiling')
  })

  it('learns a ceiling from rate-limit headers when none is configured, and a wait longer than allowed reserves nothing', async () => {
    const key = 'learned model'
    const first = await takeShare(t.db, key, {requests: 1, tokens: 100}, {maxWaitMs: 1000})
    assert.deepEqual(first, {waitMs: 0})
    await settleShare(t.db, key, {limited: false, paced: false, tokensTaken: 100, tokensUsed: 80, learned: {rpm: 30, tpm: 10_000}})
    const learned = await rateOf(t.db, key)
    assert.equal(learned.limitSource, 'learned')
    assert.equal(learned.limitRpm, 30)
    assert.ok(learned.rateRpm <= 30)

    // Drain the bucket: at 30 rpm the burst is 1 request; the next waits ~2 s, the one after ~4 s.
    const waits: number[] = []
    for (let i = 0; i < 3; i++) {
      const share = await takeShare(t.db, key, {requests: 1, tokens: 100}, {maxWaitMs: 3000})
      waits.push('waitMs' in share ? share.waitMs : -share.tooLongMs)
    }

    assert.ok(waits[0] >= 0 && waits[1] > 0, JSON.stringify(waits))
    assert.ok(waits[2] < 0, `the third wait passes maxWaitMs and is refused: ${JSON.stringify(waits)}`)
    const again = await takeShare(t.db, key, {requests: 1, tokens: 100}, {maxWaitMs: 3000})
    // Had the refused share been reserved, this wait would be one more request (2 s) longer.
    assert.ok(
      'tooLongMs' in again && Math.abs(again.tooLongMs - -waits[2]) < 1000,
      `nothing was reserved by the refused share: ${JSON.stringify({waits, again})}`,
    )
  })
})

describe('pacing: the rate grows only when the pace holds the fleet back', () => {
  const t = useFreshDatabase()
  const rate = async (key: string) => (await t.db.selectFrom('rate_limits').select('rate_rpm').where('key', '=', key).executeTakeFirstOrThrow()).rate_rpm

  it('grows the rate only on calls the pace held back: a fleet that sends less than its rate cannot run its rate away', async () => {
    const key = 'test idle-headroom'
    // A fleet that never waits for its share: 200 calls that all succeed. Before, slow start grew the rate 5% per
    // success whatever the fleet sent (60 x 1.05^200 = about 1 million a minute); the first limit met then found no
    // pacing left, and the cuts took minutes to come back down.
    assert.deepEqual(await takeShare(t.db, key, {requests: 1, tokens: 100}, {maxWaitMs: 30_000}), {waitMs: 0})
    for (let i = 0; i < 200; i++) await settleShare(t.db, key, {limited: false, paced: false, tokensTaken: 100, tokensUsed: 100})
    assert.equal(await rate(key), DEFAULT_PACING.startRpm)

    // Calls that waited for their share: the pace is what holds the fleet back, so it probes upward (slow start).
    await settleShare(t.db, key, {limited: false, paced: true, tokensTaken: 100, tokensUsed: 100})
    assert.equal(await rate(key), DEFAULT_PACING.startRpm * DEFAULT_PACING.slowStart)

    // After a limit was met: additive increase, again only on paced calls.
    await settleShare(t.db, key, {limited: true, paced: true, tokensTaken: 100})
    const cut = await rate(key)
    assert.ok(Math.abs(cut - DEFAULT_PACING.startRpm * DEFAULT_PACING.slowStart * DEFAULT_PACING.cut) < 1e-9)
    await settleShare(t.db, key, {limited: false, paced: false, tokensTaken: 100})
    assert.equal(await rate(key), cut)
    await settleShare(t.db, key, {limited: false, paced: true, tokensTaken: 100})
    assert.ok(Math.abs((await rate(key)) - (cut + DEFAULT_PACING.growRpm)) < 1e-9)
  })

  it("a run's call admitted at once leaves the fleet's rate as it was; one that waited for its share grows it", async function () {
    this.timeout(20_000)
    const run = await createRun(t.db, {criteria: {state: 'TX'}, size: {quantity: 1, contactsMin: 1, contactsMax: 1}, provider: 'simulated'})
    const ctx = callContext({db: t.db, runId: run.id, taskId: 1, signal: new AbortController().signal, record() {}, ceilings: {}})
    const plan = {quota: 'test run-calls', inputTokens: 10, outputTokens: 10, maxUsd: null}

    const free = await ctx.admit(plan)
    assert.equal(free.waitedMs, 0)
    await free.settle({status: 200, inputTokens: 10, outputTokens: 5})
    assert.equal(await rate(plan.quota), DEFAULT_PACING.startRpm)

    // The bucket owes a request: the next call waits about a second at 60 a minute.
    await t.db.updateTable('rate_limits').set({requests: -0.2}).where('key', '=', plan.quota).execute()
    const held = await ctx.admit(plan)
    assert.ok(held.waitedMs > 500, `waited ${held.waitedMs} ms`)
    await held.settle({status: 200, inputTokens: 10, outputTokens: 5})
    assert.equal(await rate(plan.quota), DEFAULT_PACING.startRpm * DEFAULT_PACING.slowStart)
  })
})
