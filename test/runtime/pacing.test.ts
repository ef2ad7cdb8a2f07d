import assert from 'node:assert/strict'
import {getEventListeners} from 'node:events'

import {sql} from 'kysely'

import {OpenAIProvider} from '../../src/agents/openai.js'
import {quotaKey} from '../../src/agents/quota.js'
import {limitedBy, limitFromMessage, openAIRateInfo} from '../../src/agents/openai-rate.js'
import type {CallOutcome} from '../../src/pipeline/provider.js'
import {callContext, LocalLine} from '../../src/pipeline/spend.js'
import {classifyError, retryAfterInText, SnoozeError} from '../../src/runtime/errors.js'
import {createRun} from '../../src/pipeline/runs.js'
import {DEFAULT_PACING, listRateLimits, settleShare, setRateLimit, takeShare} from '../../src/runtime/pacing.js'
import {useFreshDatabase} from '../helpers/db.js'
import {completion, FakeOpenAI} from '../helpers/fake-openai.js'
import {rvx} from '../helpers/cli.js'
import {spawnScript} from '../helpers/processes.js'
import {askResearch} from '../../src/pipeline/stages/research.js'

/** How a call ended, as an OpenAI-like provider settles it: its HTTP status, its tokens and (a 429's) wording. */
const outcome = (status: number, tokens: {input?: number; output?: number}, message?: string): CallOutcome => ({
  usage: {
    provider: 'test',
    model: 'm',
    inputTokens: tokens.input ?? 0,
    outputTokens: tokens.output ?? 0,
    cachedTokens: 0,
    latencyMs: 0,
    costUsd: 0,
    outcome: status === 429 ? 'rate_limited' : 'ok',
  },
  rate: openAIRateInfo({status, message}),
})

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

  it('a 429 cuts the rate for the fleet (once per cutEveryMs), at most once below a known limit; successes grow it back, never above the ceiling', async () => {
    const key = 'aimd model'
    const policy = {...DEFAULT_PACING, cutEveryMs: 0}
    // No limit known: cuts compound, from the 60 a minute it starts at.
    const unknown = 'aimd unknown'
    await takeShare(t.db, unknown, {requests: 1, tokens: 0}, {maxWaitMs: 1000})
    await settleShare(t.db, unknown, {limited: true, paced: true, tokensTaken: 0}, policy)
    await settleShare(t.db, unknown, {limited: true, paced: true, tokensTaken: 0}, policy)
    assert.equal((await rateOf(t.db, unknown)).rateRpm, DEFAULT_PACING.startRpm * policy.cut * policy.cut)

    await setRateLimit(t.db, key, {rpm: 100})
    await settleShare(t.db, key, {limited: true, paced: true, tokensTaken: 0}, policy)
    const cut = await rateOf(t.db, key)
    assert.equal(cut.rateRpm, 100 * policy.cut)
    assert.equal(cut.sawLimit, true)
    // A known limit: one cut below it at most (a window that filled before answers 429 for up to a minute; cut every
    // 2 s all that time, the rate fell to a quarter of the limit and took hundreds of calls to climb back).
    await settleShare(t.db, key, {limited: true, paced: true, tokensTaken: 0}, policy)
    assert.equal((await rateOf(t.db, key)).rateRpm, 100 * policy.cut)

    for (let i = 0; i < 10; i++) await settleShare(t.db, key, {limited: false, paced: true, tokensTaken: 0}, policy)
    const grown = await rateOf(t.db, key)
    assert.equal(Math.round(grown.rateRpm * 1000) / 1000, Math.round((100 * policy.cut + 10 * policy.growRpm) * 1000) / 1000)
    // Within cutEveryMs, a burst of 429s from many workers counts as one.
    await settleShare(t.db, key, {limited: true, paced: true, tokensTaken: 0}, {...policy, cutEveryMs: 60_000})
    assert.equal((await rateOf(t.db, key)).rateRpm, grown.rateRpm)
    for (let i = 0; i < 100; i++) await settleShare(t.db, key, {limited: false, paced: true, tokensTaken: 0}, policy)
    assert.equal((await rateOf(t.db, key)).rateRpm, 100, 'never above the configured ceiling')
  })

  it("a 429's Retry-After pauses the whole fleet's quota for that long", async () => {
    const key = 'test paused'
    await setRateLimit(t.db, key, {rpm: 600, tpm: 600_000})
    await settleShare(t.db, key, {limited: true, paced: false, tokensTaken: 0, retryAfterMs: 3000})
    // Before, the next caller went at once (the bucket was only emptied) and met the same wall.
    const next = await takeShare(t.db, key, {requests: 1, tokens: 100}, {maxWaitMs: 60_000})
    assert.ok('waitMs' in next && next.waitMs >= 2500 && next.waitMs <= 4000, JSON.stringify(next))
  })

  it('a pause pushes back the places reserved before it, and the 429s of one wall do not add up their pauses', async function () {
    this.timeout(20_000)
    const run = await createRun(t.db, {criteria: {state: 'TX'}, size: {quantity: 1, contactsMin: 1, contactsMax: 1}, provider: 'simulated'})
    const plan = {quota: 'test pause-pushes-line', inputTokens: 10, outputTokens: 10, maxUsd: null}
    // 60 a minute, half a request left: the caller reserves its place about 500 ms ahead.
    await setRateLimit(t.db, plan.quota, {rpm: 60})
    await t.db.updateTable('rate_limits').set({requests: 0.5}).where('key', '=', plan.quota).execute()
    const ctx = callContext({db: t.db, runId: run.id, taskId: 1, signal: new AbortController().signal, record() {}, ceilings: {}})
    const admitted = ctx.admit(plan)
    await new Promise((resolve) => setTimeout(resolve, 150))
    // A call sent earlier meets the wall: "try again in 2 s", three times over (one wall, three callers).
    for (let i = 0; i < 3; i++) await settleShare(t.db, plan.quota, {limited: true, paced: false, tokensTaken: 0, retryAfterMs: 2000})
    const {waitedMs} = await admitted
    // Before, it sent at its reserved moment (~500 ms), into the pause, and met the same wall.
    assert.ok(waitedMs >= 1900, `the reserved place waited the pause out: ${waitedMs} ms`)
    assert.ok(waitedMs < 3500, `one wall, one pause (three would be 6.5 s): ${waitedMs} ms`)
  })

  it('learns a ceiling from rate-limit headers when none is configured, and a wait longer than allowed reserves nothing', async () => {
    const key = 'learned model'
    const first = await takeShare(t.db, key, {requests: 1, tokens: 100}, {maxWaitMs: 1000})
    assert.deepEqual(first, {waitMs: 0, tokens: 0, pausedMs: 0}, 'no token limit known yet: no tokens taken')
    await settleShare(t.db, key, {limited: false, paced: false, tokensTaken: 0, tokensUsed: 80, learned: {rpm: 30, tpm: 10_000}})
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

describe('pacing: a stated limit and a refused call', () => {
  const t = useFreshDatabase()

  it('paces to a limit the headers state with headroom (a sliding window counted to the call), and a 429 gives back the tokens its call took', async () => {
    const key = 'test stated-limit'
    assert.deepEqual(
      await takeShare(t.db, key, {requests: 1, tokens: 100}, {maxWaitMs: 1000}),
      {waitMs: 0, tokens: 0, pausedMs: 0},
      'no token limit known: no tokens taken',
    )
    // One answer that states the limits: the fleet paces to them at once (before, slow start took 30 s to get there
    // from 60 a minute, while two workers' 128 calls waited).
    await settleShare(t.db, key, {limited: false, paced: false, tokensTaken: 100, tokensUsed: 100, learned: {rpm: 300, tpm: 200_000}})
    const stated = await rateOf(t.db, key)
    assert.equal(stated.limitRpm, 300, 'the limit is stored as stated')
    assert.equal(stated.limitTpm, 200_000)
    // Before, the fleet paced to exactly 300 and 200,000: with workers lined up, the window tripped on arrival jitter.
    assert.equal(Math.round(stated.rateRpm * 1000) / 1000, 300 * DEFAULT_PACING.headroom)
    assert.equal(Math.round(stated.rateTpm! * 1000) / 1000, 200_000 * DEFAULT_PACING.headroom)

    const tokens = async () => (await t.db.selectFrom('rate_limits').select('tokens').where('key', '=', key).executeTakeFirstOrThrow()).tokens!
    const share = await takeShare(t.db, key, {requests: 1, tokens: 5000}, {maxWaitMs: 60_000})
    assert.ok('waitMs' in share)
    const afterTake = await tokens()
    await settleShare(t.db, key, {limited: true, paced: false, tokensTaken: 5000})
    // Before, a refused call kept its 5,000 tokens: each 429 pushed every later caller further back, for nothing sent.
    assert.equal(Math.round((await tokens()) - afterTake), 5000, 'the refused call used none of the tokens it took')
  })
})

describe('pacing: limits learned from the provider (its rate-limit headers, or a 429 that names them)', () => {
  const t = useFreshDatabase()
  const fake = new FakeOpenAI()
  before(() => fake.start())
  after(() => fake.stop())

  it("an OpenAI 429 naming its token limit starts the fleet's token bucket under it; one naming nothing leaves the limits unknown", async () => {
    const run = await createRun(t.db, {criteria: {state: 'TX'}, size: {quantity: 1, contactsMin: 1, contactsMax: 1}, provider: 'openai'})
    const provider = new OpenAIProvider({apiKey: 'sk-test', baseURL: fake.url, model: 'gpt-4.1-mini', timeoutMs: 5000, search: null, allowPrivateFetch: true})
    const key = quotaKey('gpt-4.1-mini', fake.url)
    const ctx = callContext({db: t.db, runId: run.id, taskId: 1, signal: new AbortController().signal, record() {}, ceilings: {}})
    const company = {name: 'Acme PM', domain: 'acme.example', website: 'https://acme.example', sources: []}
    const refused = (message: string) => ({status: 429, headers: {'retry-after': '70'}, body: {error: {message, type: 'tokens', code: 'rate_limit_exceeded'}}})

    fake.reply(refused('Rate limit reached, try again later.'))
    assert.deepEqual(classifyError(await askResearch(provider, {criteria: {}, company}, ctx).catch((e) => e)), {type: 'snooze', retryAfterMs: 70_000})
    const unknown = await rateOf(t.db, key)
    assert.equal(unknown.limitSource, 'none')
    assert.equal(unknown.rateTpm, null, 'no token limit known, none paced')
    // The fleet-wide pause its Retry-After set is another test's subject: lifted here.
    await t.db.updateTable('rate_limits').set({requests: 0}).where('key', '=', key).execute()

    fake.reply(refused('Rate limit reached for gpt-4.1-mini in organization org-x on tokens per min (TPM): Limit 200,000, Used 199,000, Requested 1,500.'))
    await askResearch(provider, {criteria: {}, company}, ctx).catch(() => {})
    const learned = await rateOf(t.db, key)
    // Before, a fleet without headers paced requests only: the token rate a call mix needs moved under it (3.6-3.9% 429s).
    assert.equal(learned.limitSource, 'learned')
    assert.equal(learned.limitTpm, 200_000)
    assert.equal(Math.round(learned.rateTpm!), Math.round(200_000 * DEFAULT_PACING.headroom * DEFAULT_PACING.cut))
  })

  it("a response's x-ratelimit-* headers become the fleet's learned limits, and rvx limits shows them", async () => {
    const run = await createRun(t.db, {criteria: {state: 'TX'}, size: {quantity: 1, contactsMin: 1, contactsMax: 1}, provider: 'openai'})
    const model = 'headers-model'
    const provider = new OpenAIProvider({apiKey: 'sk-test', baseURL: fake.url, model, timeoutMs: 5000, search: null, allowPrivateFetch: true})
    const key = quotaKey(model, fake.url)
    const ctx = callContext({db: t.db, runId: run.id, taskId: 1, signal: new AbortController().signal, record() {}, ceilings: {}})
    const company = {name: 'Acme PM', domain: 'acme.example', website: 'https://acme.example', sources: []}
    const headers = {'x-ratelimit-limit-requests': '500', 'x-ratelimit-limit-tokens': '200000', 'x-ratelimit-remaining-requests': '499'}
    // Answers that are not research (the call is paid and settled all the same); the task's outcome is not the subject.
    fake.reply({...completion({content: 'not json'}), headers}, {...completion({content: 'still not json'}), headers})
    await askResearch(provider, {criteria: {}, company}, ctx).catch(() => {})

    const learned = await rateOf(t.db, key)
    assert.equal(learned.limitSource, 'learned')
    assert.equal(learned.limitRpm, 500)
    assert.equal(learned.limitTpm, 200_000)
    const shown = await rvx(['limits', '--json'], {env: {DATABASE_URL: t.url}})
    assert.equal(shown.code, 0, shown.stderr)
    const row = (JSON.parse(shown.stdout) as {limits: Array<{key: string; limitRpm: number; limitTpm: number; limitSource: string}>}).limits.find(
      (l) => l.key === key,
    )
    assert.deepEqual({rpm: row?.limitRpm, tpm: row?.limitTpm, source: row?.limitSource}, {rpm: 500, tpm: 200_000, source: 'learned'})
    const table = await rvx(['limits'], {env: {DATABASE_URL: t.url}})
    assert.match(table.stdout, new RegExp(`${model}.*\\b500\\b.*\\b200000\\b.*learned`))
  })

  it('a call that took its share before the token limit was known gives back nothing it did not take', async function () {
    this.timeout(20_000)
    // Before, such a call gave back, on its 429 or in its usage correction, the tokens it had estimated but never taken:
    // with 128 calls in flight when the first 429 taught the limit, the fleet sent about 20% more tokens than its rate
    // for two minutes (quota bench, variants a and c: a third of the calls answered 429).
    const run = await createRun(t.db, {criteria: {state: 'TX'}, size: {quantity: 1, contactsMin: 1, contactsMax: 1}, provider: 'simulated'})
    const plan = {quota: 'test tokens-before-limit', inputTokens: 500, outputTokens: 1500, maxUsd: null}
    const ctx = callContext({db: t.db, runId: run.id, taskId: 1, signal: new AbortController().signal, record() {}, ceilings: {}})
    const tokens = async () => (await t.db.selectFrom('rate_limits').select('tokens').where('key', '=', plan.quota).executeTakeFirstOrThrow()).tokens
    const answered = await ctx.admit(plan)
    const refusedLater = await ctx.admit(plan)
    const teaching = await ctx.admit(plan)
    assert.equal(await tokens(), null, 'no token limit known: the calls took requests only')
    await teaching.settle(
      outcome(
        429,
        {},
        'Rate limit reached for gpt-4.1-mini in organization org-test on tokens per min (TPM): Limit 200000, Used 199000, Requested 2000. Please try again in 1s.',
      ),
    )
    assert.equal(await tokens(), 0, 'the first 429 naming the token limit starts the bucket, empty')
    await answered.settle(outcome(200, {input: 400, output: 100}))
    assert.equal(Math.round((await tokens())!), -500, 'the 500 tokens it used are owed; the 1,500 it over-estimated were never taken')
    await refusedLater.settle(outcome(429, {}, 'Rate limit reached ... on tokens per min (TPM): Limit 200000'))
    assert.ok((await tokens())! <= -500, `a refused call gives back nothing it never took (tokens ${await tokens()})`)
  })

  it('settling a paid call records it before anything that can fail: a database error there loses no record', async () => {
    // Before, each provider recorded and settled by hand, in that order or not; now settling is the one way to record.
    const run = await createRun(t.db, {criteria: {state: 'TX'}, size: {quantity: 1, contactsMin: 1, contactsMax: 1}, provider: 'simulated', maxUsd: 5})
    const recorded: number[] = []
    const ctx = callContext({
      db: t.db,
      runId: run.id,
      taskId: 1,
      signal: new AbortController().signal,
      record: (u) => recorded.push(u.inputTokens),
      ceilings: {},
    })
    const call = await ctx.admit({quota: 'test settle-fails', inputTokens: 900, outputTokens: 200, maxUsd: 0.01})
    // The budget hold cannot be updated: settling fails after the provider was billed.
    await sql`create function refuse_update() returns trigger language plpgsql as $$ begin raise exception 'connection terminated unexpectedly'; end $$`.execute(
      t.db,
    )
    await sql`create trigger refuse before update on budget_holds for each row execute function refuse_update()`.execute(t.db)
    try {
      await assert.rejects(call.settle(outcome(200, {input: 900, output: 200})), /connection terminated/)
    } finally {
      await sql`drop trigger refuse on budget_holds`.execute(t.db)
      await sql`drop function refuse_update()`.execute(t.db)
    }

    assert.deepEqual(recorded, [900], 'the billed call is recorded')
  })

  it('a place reserved before the token limit was known takes its tokens when its moment comes', async function () {
    this.timeout(20_000)
    const run = await createRun(t.db, {criteria: {state: 'TX'}, size: {quantity: 1, contactsMin: 1, contactsMax: 1}, provider: 'simulated'})
    const plan = {quota: 'test reserved-before-limit', inputTokens: 500, outputTokens: 1500, maxUsd: null}
    const ctx = callContext({db: t.db, runId: run.id, taskId: 1, signal: new AbortController().signal, record() {}, ceilings: {}})
    // No limit known; half a request left: the caller reserves its place about 500 ms ahead, taking no tokens.
    await takeShare(t.db, plan.quota, {requests: 0, tokens: 0}, {maxWaitMs: 1000})
    await t.db.updateTable('rate_limits').set({requests: 0.5}).where('key', '=', plan.quota).execute()
    const admitted = ctx.admit(plan)
    await new Promise((resolve) => setTimeout(resolve, 150))
    // Meanwhile another call's 429 teaches the token limit: 60,000 a minute, paced at 48,450 (807 a second), bucket empty.
    await settleShare(t.db, plan.quota, {limited: true, paced: false, tokensTaken: 0, learned: {tpm: 60_000}, limitedBy: 'tokens'})
    const {waitedMs} = await admitted
    // Before, it went at its moment (~500 ms) with no tokens taken, into the wall the 429 had just found.
    assert.ok(waitedMs >= 2300, `it waited for its 2,000 tokens at the learned rate: ${waitedMs} ms`)
    const {tokens} = await t.db.selectFrom('rate_limits').select('tokens').where('key', '=', plan.quota).executeTakeFirstOrThrow()
    assert.ok(tokens !== null && tokens < -1000, `the tokens it took are owed: ${tokens}`)
  })

  it('a 429 on the token limit cuts the token rate only; one that does not say which cuts both', async () => {
    const key = 'test which-limit'
    await setRateLimit(t.db, key, {rpm: 300, tpm: 200_000})
    const policy = {...DEFAULT_PACING, cutEveryMs: 0}
    await settleShare(t.db, key, {limited: true, paced: false, tokensTaken: 0, limitedBy: 'tokens'}, policy)
    // Before, both were cut: in the bare-429 bench the request rate fell to 72 a minute, and requests bound, not tokens.
    const tokens = await rateOf(t.db, key)
    assert.equal(tokens.rateRpm, 300, 'a token limit met says nothing about requests')
    assert.equal(tokens.rateTpm, 200_000 * policy.cut)
    await settleShare(t.db, key, {limited: true, paced: false, tokensTaken: 0, limitedBy: 'requests'}, policy)
    assert.equal((await rateOf(t.db, key)).rateRpm, 300 * policy.cut)
    assert.equal((await rateOf(t.db, key)).rateTpm, 200_000 * policy.cut)
  })

  it('reads the limit, which limit and the wait from the wording of a 429', () => {
    assert.deepEqual(limitFromMessage('... on requests per min (RPM): Limit 500, Used 500, Requested 1.'), {rpm: 500})
    assert.equal(limitedBy('Rate limit reached for m in organization o on tokens per min (TPM): Limit 1, Used 1, Requested 1.'), 'tokens')
    assert.equal(limitedBy('... on requests per min (RPM): Limit 500 ...'), 'requests')
    assert.equal(limitedBy('You exceeded your current quota'), undefined)
    assert.equal(retryAfterInText('... Requested 1500. Please try again in 1.5s. Visit ...'), 1500)
    assert.equal(retryAfterInText('Please try again in 850ms.'), 850)
    assert.equal(retryAfterInText('Please try again in 1m2.5s.'), 62_500)
    assert.equal(retryAfterInText('Please try again later.'), undefined)
    assert.deepEqual(limitFromMessage('... on tokens per min (TPM): Limit 30000, Used 29000, Requested 2000.'), {tpm: 30_000})
    assert.deepEqual(limitFromMessage('You exceeded your current quota'), {})
    assert.deepEqual(limitFromMessage(undefined), {})
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
    assert.deepEqual(await takeShare(t.db, key, {requests: 1, tokens: 100}, {maxWaitMs: 30_000}), {waitMs: 0, tokens: 0, pausedMs: 0})
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
    await free.settle(outcome(200, {input: 10, output: 5}))
    assert.equal(await rate(plan.quota), DEFAULT_PACING.startRpm)

    // The bucket owes a request: the next call waits about a second at 60 a minute.
    await t.db.updateTable('rate_limits').set({requests: -0.2}).where('key', '=', plan.quota).execute()
    const held = await ctx.admit(plan)
    assert.ok(held.waitedMs > 500, `waited ${held.waitedMs} ms`)
    await held.settle(outcome(200, {input: 10, output: 5}))
    assert.equal(await rate(plan.quota), DEFAULT_PACING.startRpm * DEFAULT_PACING.slowStart)
  })

  it('calls lined up past the reserve horizon wait in place without a place and are all admitted at the rate; one that would wait past the most snoozes', async function () {
    this.timeout(30_000)
    const run = await createRun(t.db, {criteria: {state: 'TX'}, size: {quantity: 1, contactsMin: 1, contactsMax: 1}, provider: 'simulated'})
    const plan = {quota: 'test lined-up', inputTokens: 10, outputTokens: 10, maxUsd: null}
    // 120 a minute (one per 500 ms), the bucket empty; places are reserved at most 600 ms ahead.
    await setRateLimit(t.db, plan.quota, {rpm: 120})
    const line = {maxWaitMs: 20_000, reserveAheadMs: 600}
    const admittedAt: number[] = []
    const started = Date.now()
    await Promise.all(
      Array.from({length: 8}, async (_, i) => {
        const ctx = callContext({db: t.db, runId: run.id, taskId: 10 + i, signal: new AbortController().signal, record() {}, ceilings: {}, line})
        const a = await ctx.admit(plan)
        admittedAt.push(Date.now() - started)
        await a.settle(outcome(200, {input: 10, output: 5}))
      }),
    )
    admittedAt.sort((a, b) => a - b)
    // Eight calls at one per 500 ms need about 3.5 s; before, the ones past the horizon snoozed their tasks at once.
    assert.equal(admittedAt.length, 8, 'every call admitted, none snoozed')
    assert.ok(admittedAt[7] >= 3000, `the rate held: ${JSON.stringify(admittedAt)}`)
    const {rows} = await sql<{tokens: number | null; requests: number}>`select requests, tokens from rate_limits where key = ${plan.quota}`.execute(t.db)
    assert.ok(rows[0].requests > -2, `no place reserved far ahead: ${rows[0].requests}`)

    // A line longer than a caller may wait: it snoozes its task (no attempt used) instead of waiting.
    await t.db.updateTable('rate_limits').set({requests: -100}).where('key', '=', plan.quota).execute()
    const late = callContext({db: t.db, runId: run.id, taskId: 30, signal: new AbortController().signal, record() {}, ceilings: {}, line})
    const error = await late.admit(plan).then(
      () => null,
      (e: Error) => e,
    )
    assert.ok(error instanceof SnoozeError, String(error))
    assert.match(error.message, /waiting for the model's quota \(test lined-up\): about 5\d s/)
  })

  it("a process's callers ask for their places in the order they came, also when one of them is stopped while it waits", async () => {
    // Before, callers without a place asked again at random moments: newcomers overtook those that had waited longest
    // (in the quota bench some waited three minutes, snoozed, and paid their conversation's turns again).
    const line = new LocalLine()
    const turns: number[] = []
    const stop = new AbortController()
    // One signal for the others, as a task's signal lives through all its calls.
    const kept = new AbortController()
    const asked = [40, 5, 30, 1, 20].map((ms, i) =>
      line
        .turn(
          i === 2 ? stop.signal : kept.signal,
          () => {},
          async () => {
            turns.push(i)
            await new Promise((resolve) => setTimeout(resolve, ms))
          },
        )
        .catch(() => turns.push(-i)),
    )
    stop.abort(new Error('task canceled'))
    await Promise.all(asked)
    assert.deepEqual(turns, [0, -2, 1, 3, 4], 'each in turn (the stopped one leaves at once and keeps no one waiting)')
    assert.equal(getEventListeners(kept.signal, 'abort').length, 0, 'no listener left on a signal that outlives its waits')
  })

  it('a call stopped while it waits in line gives its share back: the next caller does not wait for a call never sent', async function () {
    this.timeout(20_000)
    const run = await createRun(t.db, {criteria: {state: 'TX'}, size: {quantity: 1, contactsMin: 1, contactsMax: 1}, provider: 'simulated'})
    const plan = {quota: 'test stopped-in-line', inputTokens: 10, outputTokens: 10, maxUsd: null}
    // 60 a minute, the bucket empty: the first caller in line waits about a second.
    await setRateLimit(t.db, plan.quota, {rpm: 60})
    const stop = new AbortController()
    const first = callContext({db: t.db, runId: run.id, taskId: 1, signal: stop.signal, record() {}, ceilings: {}})
    const stopped = first.admit(plan).then(
      () => 'admitted',
      (error: Error) => error.message,
    )
    setTimeout(() => stop.abort(new Error('task canceled')), 200)
    assert.equal(await stopped, 'task canceled', 'a call stopped in line is not admitted')

    const next = callContext({db: t.db, runId: run.id, taskId: 2, signal: new AbortController().signal, record() {}, ceilings: {}})
    const admitted = await next.admit(plan)
    // Its place was given back: it waits what is left of the first second (~0.8 s), not a second more for the stopped call.
    assert.ok(admitted.waitedMs < 1000, `the next caller waited ${admitted.waitedMs} ms`)
    await admitted.settle(outcome(200, {input: 10, output: 5}))
  })
})
