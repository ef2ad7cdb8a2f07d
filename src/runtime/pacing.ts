import {sql} from '../db/kysely.js'
import type {Executor} from '../db/executor.js'

/**
 * Fleet-wide pacing: a pair of token buckets (requests and tokens per minute)
 * per key, in PostgreSQL, so every worker on every machine takes its share
 * from the same budget. A caller takes its share before it calls and is told
 * how long to wait: the bucket may go below zero, so callers line up in the
 * order they asked (no polling, no thundering herd when a limit frees up). The
 * rate a fleet may use is cut on a 429 (multiplicative decrease, at most once
 * per cutEveryMs) and grows back while calls succeed: fast until the first
 * limit is met (slow start), then by a small step (additive increase), never
 * above a configured or learned ceiling. It grows only on calls the pace held
 * back (they waited for their share): a fleet that sends less than its rate
 * learns nothing about the limit, so its rate stays put instead of running
 * away to thousands a minute (and then meeting the limit with no pacing left).
 */

export interface PacingPolicy {
  /** Requests per minute to start from when no limit is known. */
  startRpm: number
  /** Seconds of traffic a bucket holds (how much may go at once). */
  burstSeconds: number
  /** Multiplicative decrease on a 429. */
  cut: number
  cutEveryMs: number
  /** Additive increase per successful call once a limit has been met, in requests (tokens) per minute. */
  growRpm: number
  growTpm: number
  /** Multiplicative increase per successful call until a limit has been met. */
  slowStart: number
  minRpm: number
  minTpm: number
  /**
   * Share of a limit the provider's headers state that the fleet paces to. A stated limit is a sliding window
   * the provider counts to the call: paced at 100% with a fleet lined up, every jitter in arrival is a 429.
   */
  headroom: number
}

export const DEFAULT_PACING: PacingPolicy = {
  startRpm: 60,
  burstSeconds: 2,
  cut: 0.85,
  cutEveryMs: 2000,
  growRpm: 0.5,
  growTpm: 400,
  // Per call that waited: with a fleet of 128 callers all waiting, 5% a call ran the rate from 60 to 5,000 a minute
  // in 40 s, and the first limit met was a wall of 429s; 1% a call reaches 130 a minute in about 80 calls.
  slowStart: 1.01,
  minRpm: 1,
  minTpm: 1000,
  headroom: 0.95,
}

/** Ceilings a person set (rvx limits set, RVX_LLM_RPM / RVX_LLM_TPM), or that a provider's headers told. */
export interface Ceilings {
  rpm?: number | null
  tpm?: number | null
}

/**
 * A share reserved (wait this long, then send), or none (the wait would be too long). `tokens` is what the token
 * bucket gave: 0 while the key has none (no token limit known yet). Only that much may be given back or corrected
 * later: a call that took its share before the fleet knew its token limit took no tokens. `pausedMs` is how far pauses
 * had pushed the line back when the place was reserved (see pausedMs()).
 */
export type Share = {waitMs: number; tokens: number; pausedMs: number} | {tooLongMs: number}

/**
 * Takes `requests` and `tokens` from key's buckets. Resolves with how long to
 * wait before sending (the share is reserved), or, when that wait would pass
 * maxWaitMs, with that wait and nothing reserved (the caller snoozes instead).
 * `configured` ceilings, when given, override what the table holds.
 */
export async function takeShare(
  ex: Executor,
  key: string,
  need: {requests: number; tokens: number},
  options: {maxWaitMs: number; configured?: Ceilings; policy?: PacingPolicy},
): Promise<Share> {
  const p = options.policy ?? DEFAULT_PACING
  const cfgRpm = options.configured?.rpm ?? null
  const cfgTpm = options.configured?.tpm ?? null
  // A learned limit is paced to with headroom; one a person set, as set.
  const head = sql`case when r.limit_source = 'learned' then ${p.headroom}::float8 else 1 end`
  const {rows} = await sql<{wait_ms: number; taken: boolean; counted: boolean; paused_ms: number}>`
    with seed as (
      insert into rate_limits (key, limit_rpm, limit_tpm, limit_source, rate_rpm, rate_tpm, requests, tokens)
      values (${key}, ${cfgRpm}::float8, ${cfgTpm}::float8, case when ${cfgRpm}::float8 is null and ${cfgTpm}::float8 is null then 'none' else 'configured' end,
              coalesce(${cfgRpm}::float8, ${p.startRpm}::float8), ${cfgTpm}::float8,
              coalesce(${cfgRpm}::float8, ${p.startRpm}::float8) / 60 * ${p.burstSeconds}::float8,
              ${cfgTpm}::float8 / 60 * ${p.burstSeconds}::float8)
      on conflict (key) do nothing
    ), cur as (
      select r.key,
        coalesce(${cfgRpm}::float8, r.limit_rpm) as limit_rpm,
        coalesce(${cfgTpm}::float8, r.limit_tpm) as limit_tpm,
        least(r.rate_rpm, coalesce(${cfgRpm}::float8, r.limit_rpm * ${head}, r.rate_rpm)) as rate_rpm,
        case when coalesce(${cfgTpm}::float8, r.limit_tpm) is null then null
             else least(coalesce(r.rate_tpm, coalesce(${cfgTpm}::float8, r.limit_tpm * ${head})), coalesce(${cfgTpm}::float8, r.limit_tpm * ${head})) end as rate_tpm,
        r.requests, r.tokens, extract(epoch from now() - r.refilled_at) as elapsed
      from rate_limits r where r.key = ${key}
      for update
    ), now_ as (
      select c.*,
        least(c.rate_rpm / 60 * ${p.burstSeconds}::float8, c.requests + c.elapsed * c.rate_rpm / 60) as req_now,
        case when c.rate_tpm is null then null
             else least(c.rate_tpm / 60 * ${p.burstSeconds}::float8, coalesce(c.tokens, c.rate_tpm / 60 * ${p.burstSeconds}::float8) + c.elapsed * c.rate_tpm / 60) end as tok_now
      from cur c
    ), decided as (
      select n.*,
        greatest(
          -- A share of tokens only (a call whose place was reserved before the token limit was known) waits for no request.
          case when ${need.requests}::float8 <= 0 then 0 else greatest(0, ${need.requests}::float8 - n.req_now) / (n.rate_rpm / 60) * 1000 end,
          case when n.tok_now is null then 0 else greatest(0, ${need.tokens}::float8 - n.tok_now) / (n.rate_tpm / 60) * 1000 end
        ) as wait_ms
      from now_ n
    )
    update rate_limits r set
      limit_rpm = d.limit_rpm, limit_tpm = d.limit_tpm,
      limit_source = case when ${cfgRpm}::float8 is not null or ${cfgTpm}::float8 is not null then 'configured' else r.limit_source end,
      rate_rpm = d.rate_rpm, rate_tpm = d.rate_tpm,
      requests = case when d.wait_ms <= ${options.maxWaitMs}::float8 then d.req_now - ${need.requests}::float8 else d.req_now end,
      tokens = case when d.tok_now is null then null
                    when d.wait_ms <= ${options.maxWaitMs}::float8 then d.tok_now - ${need.tokens}::float8 else d.tok_now end,
      refilled_at = now(), updated_at = now()
    from decided d where r.key = d.key
    returning d.wait_ms, d.wait_ms <= ${options.maxWaitMs}::float8 as taken, d.tok_now is not null as counted, r.paused_ms`.execute(ex)
  const row = rows[0]
  if (!row) return {waitMs: 0, tokens: 0, pausedMs: 0}
  return row.taken ? {waitMs: Math.ceil(row.wait_ms), tokens: row.counted ? need.tokens : 0, pausedMs: row.paused_ms} : {tooLongMs: Math.ceil(row.wait_ms)}
}

/**
 * After a call: a 429 cuts the fleet's rate (once per cutEveryMs) and empties
 * the request bucket; a success grows the rate back when the call was `paced`
 * (it waited for its share) and corrects the token bucket by what the call
 * really used (`tokensUsed` minus what it took). Ceilings a provider's headers
 * state are learned (unless a person set them).
 */
export async function settleShare(
  ex: Executor,
  key: string,
  outcome: {
    limited: boolean
    paced: boolean
    tokensTaken: number
    tokensUsed?: number
    learned?: Ceilings
    remainingRequests?: number | null
    /** A 429's Retry-After: nothing of the fleet's gets through for this long. */
    retryAfterMs?: number
    /** Which limit a 429 hit, when it said: only that rate is cut (a token limit met says nothing about requests). */
    limitedBy?: 'requests' | 'tokens'
  },
  policy: PacingPolicy = DEFAULT_PACING,
): Promise<void> {
  const correction = outcome.tokensUsed === undefined ? 0 : outcome.tokensUsed - outcome.tokensTaken
  // Growth per success: none when the pace did not hold the call back.
  const slowStart = outcome.paced ? policy.slowStart : 1
  const growRpm = outcome.paced ? policy.growRpm : 0
  const growTpm = outcome.paced ? policy.growTpm : 0
  const learnedRpm = outcome.learned?.rpm ?? null
  const learnedTpm = outcome.learned?.tpm ?? null
  if (outcome.limited) {
    // A refused call used none of the tokens it took (a provider counts what it admits): they go back. A token limit
    // the 429 names, where none was known, starts the token bucket: empty, at the cut rate under it (it was just met).
    //
    // A known limit bounds the cut: at most one cut below it. A sliding window that filled before the limit was known
    // answers 429 until its calls leave it (up to a minute); cut every 2 s all that time, the rate fell to a quarter of
    // the limit and took hundreds of calls to climb back. The wall is waited out instead: a Retry-After pauses the
    // whole fleet's buckets for that long (the caller that met it waits as long in place).
    const startsTokens = sql`(tokens is null and limit_source <> 'configured' and ${learnedTpm}::float8 is not null)`
    const mayCut = sql`(last_cut_at is null or last_cut_at < now() - ${policy.cutEveryMs}::float8 * interval '1 millisecond')`
    const cutRpm = sql`(${mayCut} and ${outcome.limitedBy !== 'tokens'})`
    const cutTpm = sql`(${mayCut} and ${outcome.limitedBy !== 'requests'})`
    const limitRpm = sql`case when limit_source = 'configured' then limit_rpm else coalesce(${learnedRpm}::float8, limit_rpm) end`
    const limitTpm = sql`case when limit_source = 'configured' then limit_tpm else coalesce(${learnedTpm}::float8, limit_tpm) end`
    // A pause pushes the whole line back, reserved places and all, by as much as it reaches past the pause already on
    // (429s of one wall do not add up: their pauses overlap); callers that reserved before it wait that much longer.
    const pauseMs = outcome.retryAfterMs ?? 0
    const horizon = sql`greatest(coalesce(paused_until, now()), now())`
    const until = sql`greatest(${horizon}, now() + ${pauseMs}::float8 * interval '1 millisecond')`
    const pushed = sql`(extract(epoch from ${until} - ${horizon}) / 60)`
    const head = sql`case when limit_source = 'configured' then 1 else ${policy.headroom}::float8 end`
    await sql`
      update rate_limits set
        limit_rpm = ${limitRpm},
        limit_tpm = ${limitTpm},
        limit_source = case when limit_source = 'none' and (${learnedRpm}::float8 is not null or ${learnedTpm}::float8 is not null) then 'learned' else limit_source end,
        tokens = case when ${startsTokens} then 0 when tokens is null then null
                      when ${pauseMs}::float8 > 0 then least(tokens + ${outcome.tokensTaken}::float8, 0) - ${pushed} * coalesce(rate_tpm, 0)
                      else tokens + ${outcome.tokensTaken}::float8 end,
        rate_rpm = case when ${cutRpm}
                        then greatest(${policy.minRpm}::float8, coalesce(${limitRpm} * ${head} * ${policy.cut}::float8, 0), rate_rpm * ${policy.cut}::float8)
                        else rate_rpm end,
        rate_tpm = case
          when ${startsTokens} then greatest(${policy.minTpm}::float8, ${learnedTpm}::float8 * ${policy.headroom}::float8 * ${policy.cut}::float8)
          when rate_tpm is not null and ${cutTpm}
            then greatest(${policy.minTpm}::float8, coalesce(${limitTpm} * ${head} * ${policy.cut}::float8, 0), rate_tpm * ${policy.cut}::float8)
          else rate_tpm end,
        last_cut_at = case when ${mayCut} then now() else last_cut_at end,
        requests = least(requests, 0) - ${pushed} * rate_rpm,
        paused_until = ${until},
        paused_ms = paused_ms + ${pushed} * 60000,
        saw_limit = true, updated_at = now()
      where key = ${key}`.execute(ex)
    return
  }

  // The rate's ceiling: a configured limit as set, a learned (stated) one with headroom.
  const capRpm = sql`case when limit_source = 'configured' then limit_rpm else coalesce(${learnedRpm}::float8, limit_rpm) * ${policy.headroom}::float8 end`
  const capTpm = sql`case when limit_source = 'configured' then limit_tpm else coalesce(${learnedTpm}::float8, limit_tpm) * ${policy.headroom}::float8 end`
  await sql`
    update rate_limits set
      limit_rpm = case when limit_source = 'configured' then limit_rpm else coalesce(${learnedRpm}::float8, limit_rpm) end,
      limit_tpm = case when limit_source = 'configured' then limit_tpm else coalesce(${learnedTpm}::float8, limit_tpm) end,
      limit_source = case when limit_source = 'none' and (${learnedRpm}::float8 is not null or ${learnedTpm}::float8 is not null) then 'learned' else limit_source end,
      rate_rpm = case
        -- A limit the provider states is the truth about the key: no need to probe for it (until a 429 says otherwise).
        when ${learnedRpm}::float8 is not null and limit_source <> 'configured' and not saw_limit then ${capRpm}
        else least(
          coalesce(${capRpm}, 'infinity'::float8),
          case when saw_limit then rate_rpm + ${growRpm}::float8 else rate_rpm * ${slowStart}::float8 end)
        end,
      rate_tpm = case
        when coalesce(${capTpm}, rate_tpm) is null then null
        else least(
          coalesce(${capTpm}, 'infinity'::float8),
          coalesce(rate_tpm, ${capTpm}) + case when saw_limit then ${growTpm}::float8 else coalesce(rate_tpm, 0) * (${slowStart}::float8 - 1) end)
        end,
      tokens = case when tokens is null then null else tokens - ${correction}::float8 end,
      requests = case when ${outcome.remainingRequests ?? null}::float8 = 0 then least(requests, 0) else requests end,
      updated_at = now()
    where key = ${key}`.execute(ex)
}

/**
 * Gives back a share taken and never used (its call stopped while it waited):
 * otherwise the bucket stays short by it and every later caller waits for a
 * call that was never sent.
 */
export async function returnShare(ex: Executor, key: string, need: {requests: number; tokens: number}): Promise<void> {
  await sql`
    update rate_limits set
      requests = requests + ${need.requests}::float8,
      tokens = case when tokens is null then null else tokens + ${need.tokens}::float8 end,
      updated_at = now()
    where key = ${key}`.execute(ex)
}

/** How far pauses have pushed the fleet's line back in all (ms): more than when a place was reserved, that place too. */
export async function pausedMs(ex: Executor, key: string): Promise<number> {
  const row = await ex.selectFrom('rate_limits').select('paused_ms').where('key', '=', key).executeTakeFirst()
  return row?.paused_ms ?? 0
}

export interface RateLimitView {
  key: string
  limitRpm: number | null
  limitTpm: number | null
  limitSource: 'none' | 'configured' | 'learned'
  rateRpm: number
  rateTpm: number | null
  sawLimit: boolean
  updatedAt: Date
}

/** Every paced key, with its ceilings and the rate the fleet may use now. */
export async function listRateLimits(ex: Executor): Promise<RateLimitView[]> {
  const rows = await ex.selectFrom('rate_limits').selectAll().orderBy('key').execute()
  return rows.map((r) => ({
    key: r.key,
    limitRpm: r.limit_rpm,
    limitTpm: r.limit_tpm,
    limitSource: r.limit_source,
    rateRpm: r.rate_rpm,
    rateTpm: r.rate_tpm,
    sawLimit: r.saw_limit,
    updatedAt: r.updated_at,
  }))
}

/** Sets (or clears, with null) the configured ceilings of a key; the rate starts at the ceiling. */
export async function setRateLimit(ex: Executor, key: string, ceilings: Ceilings, policy: PacingPolicy = DEFAULT_PACING): Promise<void> {
  const rpm = ceilings.rpm ?? null
  const tpm = ceilings.tpm ?? null
  await sql`
    insert into rate_limits (key, limit_rpm, limit_tpm, limit_source, rate_rpm, rate_tpm, requests, tokens)
    values (${key}, ${rpm}::float8, ${tpm}::float8, case when ${rpm}::float8 is null and ${tpm}::float8 is null then 'none' else 'configured' end,
            coalesce(${rpm}::float8, ${policy.startRpm}::float8), ${tpm}::float8, 0, case when ${tpm}::float8 is null then null else 0 end)
    on conflict (key) do update set
      limit_rpm = excluded.limit_rpm, limit_tpm = excluded.limit_tpm, limit_source = excluded.limit_source,
      rate_rpm = excluded.rate_rpm, rate_tpm = excluded.rate_tpm, saw_limit = false, updated_at = now()`.execute(ex)
}
