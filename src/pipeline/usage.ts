import {sql} from '../db/kysely.js'
import type {Executor} from '../db/executor.js'
import type {LlmUsage} from './provider.js'

/** A model call's usage, tied to the run and task that paid for it. */
export type UsageRow = LlmUsage & {runId: number; taskId: number}

/** Records model calls (llm_calls); empties `usage` once saved, so nothing is saved twice and nothing unsaved is lost. */
export async function saveUsage(ex: Executor, usage: UsageRow[]): Promise<void> {
  if (usage.length === 0) return
  const rows = usage.map((u) => ({
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
  }))
  await ex.insertInto('llm_calls').values(rows).execute()
  usage.length = 0
}

export interface RunUsage {
  /** Model calls that did work (answered, or failed after the model worked on them); rate-limited ones are counted apart. */
  calls: number
  /** Calls the provider refused with a rate limit (429). */
  rateLimited: number
  inputTokens: number
  outputTokens: number
  costUsd: number
  /** Time calls waited for their share of the quota, in seconds. */
  quotaWaitS: number
}

/** What a run's model calls used and cost. */
export async function runUsage(ex: Executor, runId: number): Promise<RunUsage> {
  const {rows} = await sql<{calls: number; limited: number; input: number; output: number; cost: string; waited: number}>`
    select count(*) filter (where outcome <> 'rate_limited')::int as calls, count(*) filter (where outcome = 'rate_limited')::int as limited,
           coalesce(sum(input_tokens), 0)::int as input, coalesce(sum(output_tokens), 0)::int as output,
           coalesce(sum(cost_usd), 0)::text as cost, coalesce(sum(waited_ms), 0)::float8 / 1000 as waited
    from llm_calls where run_id = ${runId}`.execute(ex)
  const u = rows[0]
  return {
    calls: u.calls,
    rateLimited: u.limited,
    inputTokens: u.input,
    outputTokens: u.output,
    costUsd: Number(u.cost),
    quotaWaitS: Math.round(u.waited * 10) / 10,
  }
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
}

/** Model calls recorded since `since` (the monitor's counters). */
export async function llmCallsSince(ex: Executor, since: Date): Promise<LlmCallView[]> {
  const rows = await ex
    .selectFrom('llm_calls')
    .select(['id', 'created_at', 'provider', 'model', 'outcome', 'input_tokens', 'output_tokens', 'cost_usd'])
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
  }))
}
