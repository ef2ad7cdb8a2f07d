import {sql} from '../db/kysely.js'
import type {Executor} from '../db/executor.js'
import {taskKinds} from '../runtime/stats.js'
import type {LlmUsage} from './provider.js'

/** A model call's usage, tied to the run and task that paid for it; `callId` once the spend journal has it. */
export type UsageRow = LlmUsage & {runId: number; taskId: number; callId?: string}

/** A call's row of llm_calls. */
export function llmCallRow(u: UsageRow) {
  return {
    run_id: u.runId,
    task_id: u.taskId,
    provider: u.provider,
    model: u.model,
    input_tokens: u.inputTokens,
    output_tokens: u.outputTokens,
    cached_tokens: u.cachedTokens,
    latency_ms: Math.round(u.latencyMs),
    waited_ms: Math.round(u.waitedMs ?? 0),
    cost_usd: u.costUsd,
    outcome: u.outcome,
    call_id: u.callId ?? null,
    usage_estimated: u.estimated ?? false,
  }
}

/** Records model calls (llm_calls); empties `usage` once saved, so nothing is saved twice and nothing unsaved is lost. */
export async function saveUsage(ex: Executor, usage: UsageRow[]): Promise<void> {
  if (usage.length === 0) return
  const rows = usage.map(llmCallRow)
  // A call the journal already wrote back (after a failover) is not counted twice.
  await ex
    .insertInto('llm_calls')
    .values(rows)
    .onConflict((oc) => oc.column('call_id').doNothing())
    .execute()
  usage.length = 0
}

export interface RunUsage {
  /** Model calls that did work (answered, or failed after the model worked on them); rate-limited ones are counted apart. */
  calls: number
  /** Calls the provider refused with a rate limit (429). */
  rateLimited: number
  /** Calls whose token counts the provider did not give as counts: their tokens and cost are rvx's estimates. */
  estimated: number
  inputTokens: number
  outputTokens: number
  costUsd: number
  /** Time calls waited for their share of the quota, in seconds. */
  quotaWaitS: number
  /** Companies judged, and companies' contacts found, from the research cache (at no cost). */
  cacheHits: number
}

/** What a run's model calls used and cost. */
export async function runUsage(ex: Executor, runId: number): Promise<RunUsage> {
  return (await usageByRun(ex, [runId])).get(runId)!
}

/** What each run's model calls used and cost (runs without calls: zeros). Token sums as float8: they pass 2^31 on a big run, and stay exact as JS numbers up to 2^53. */
export async function usageByRun(ex: Executor, runIds: number[]): Promise<Map<number, RunUsage>> {
  const {rows} = await sql<{
    run_id: number
    calls: number
    limited: number
    estimated: number
    input: number
    output: number
    cost: string
    waited: number
    hits: number
  }>`
    select r.id::int as run_id,
           count(l.id) filter (where l.outcome <> 'rate_limited')::int as calls, count(l.id) filter (where l.outcome = 'rate_limited')::int as limited,
           count(l.id) filter (where l.usage_estimated)::int as estimated,
           coalesce(sum(l.input_tokens), 0)::float8 as input, coalesce(sum(l.output_tokens), 0)::float8 as output,
           coalesce(sum(l.cost_usd), 0)::text as cost, coalesce(sum(l.waited_ms), 0)::float8 / 1000 as waited,
           ((select count(*) from companies c where c.run_id = r.id and c.from_cache)
             + (select count(distinct k.company_id) from contacts k where k.run_id = r.id and k.from_cache))::int as hits
    from unnest(${runIds}::bigint[]) as r(id) left join llm_calls l on l.run_id = r.id
    group by r.id`.execute(ex)
  return new Map(
    rows.map((u) => [
      u.run_id,
      {
        calls: u.calls,
        rateLimited: u.limited,
        estimated: u.estimated,
        inputTokens: u.input,
        outputTokens: u.output,
        costUsd: Number(u.cost),
        quotaWaitS: Math.round(u.waited * 10) / 10,
        cacheHits: u.hits,
      },
    ]),
  )
}

export interface LlmCallView {
  key: string
  at: Date
  provider: string
  model: string
  outcome: string
  inputTokens: number
  outputTokens: number
  costUsd: number
  waitedMs: number
}

/** Model calls recorded since `since` (the monitor's counters). */
export async function llmCallsSince(ex: Executor, since: Date): Promise<LlmCallView[]> {
  const rows = await ex
    .selectFrom('llm_calls')
    .select(['id', 'created_at', 'provider', 'model', 'outcome', 'input_tokens', 'output_tokens', 'cost_usd', 'waited_ms'])
    .where('created_at', '>', since)
    .execute()
  return rows.map((c) => ({
    key: String(c.id),
    at: c.created_at,
    provider: c.provider,
    model: c.model,
    outcome: c.outcome,
    inputTokens: c.input_tokens,
    outputTokens: c.output_tokens,
    costUsd: Number(c.cost_usd),
    waitedMs: c.waited_ms,
  }))
}

export interface SpendPerMinute {
  /** Whole minutes ago (0: the current minute), database clock. */
  ago: number
  /** The task kind that paid (null: a call not tied to a task). */
  kind: string | null
  usd: number
}

/** Dollars spent on model calls in each of the last `minutes` minutes, by the kind of task that paid. */
export async function spendPerMinute(ex: Executor, minutes: number): Promise<SpendPerMinute[]> {
  const {rows} = await sql<{ago: number; task_id: number | null; usd: string}>`
    select floor(extract(epoch from now() - created_at) / 60)::int as ago, task_id, sum(cost_usd)::text as usd
    from llm_calls
    where created_at > now() - ${minutes}::float8 * interval '1 minute' and cost_usd > 0
    group by 1, 2`.execute(ex)
  const kinds = await taskKinds(ex, [...new Set(rows.flatMap((r) => (r.task_id === null ? [] : [Number(r.task_id)])))])
  const out = new Map<string, SpendPerMinute>()
  for (const r of rows) {
    if (r.ago < 0 || r.ago >= minutes) continue
    const kind = r.task_id === null ? null : (kinds.get(Number(r.task_id)) ?? null)
    const key = `${r.ago}|${kind}`
    const m = out.get(key) ?? {ago: r.ago, kind, usd: 0}
    m.usd += Number(r.usd)
    out.set(key, m)
  }

  return [...out.values()]
}
