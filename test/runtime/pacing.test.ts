import assert from 'node:assert/strict'

import {callContext} from '../../src/pipeline/spend.js'
import {createRun} from '../../src/pipeline/runs.js'
import {DEFAULT_PACING, settleShare, takeShare} from '../../src/runtime/pacing.js'
import {useFreshDatabase} from '../helpers/db.js'

describe('runtime: fleet-wide pacing', () => {
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
    const ctx = callContext({db: t.db, runId: run.id, signal: new AbortController().signal, record() {}, ceilings: {}})
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
