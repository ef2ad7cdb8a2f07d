import {type Kysely, sql, type Transaction} from 'kysely'

import type {CallContext, CandidateCompany, LlmUsage, ResearchProvider} from '../agents/provider.js'
import type {Database, RunRow} from '../db/schema.js'
import type {TaskContext, TaskRegistry} from '../runtime/handlers.js'
import type {ClaimedTask} from '../runtime/lease.js'
import {enqueue} from '../runtime/queue.js'
import {advance} from './advance.js'
import {type Criteria, normalizeDomain} from './criteria.js'
import {getRun, KIND, lockRun, runOptions, runScope} from './runs.js'

/** A model call's usage, tied to the run and task that paid for it. */
type UsageRow = LlmUsage & {runId: number; taskId: number}

export type ProviderFactory = (run: RunRow) => ResearchProvider

interface RunPayload {
  runId: number
}

/**
 * The three stage handlers on the runtime. Each does its paid work outside
 * any transaction, then hands the runtime an `apply` that writes the result
 * and advances the run in the completion's transaction (fenced: a worker
 * presumed dead writes nothing).
 */
export function registerPipeline(registry: TaskRegistry, providerFor: ProviderFactory): TaskRegistry {
  // A stage task that fails for good writes nothing of its own; the run re-plans in the same transaction.
  const onFailed = {onFailed: (trx: Transaction<Database>, task: ClaimedTask) => advance(trx, (task.payload as RunPayload).runId).then(() => {})}
  registry.register<RunPayload & {round: number}>(KIND.leadList, async (task, ctx) => {
    const run = await getRun(ctx.db, task.payload.runId)
    if (run.status !== 'running') return {result: {skipped: run.status}}
    const criteria = run.criteria as Criteria
    const known = (await ctx.db.selectFrom('companies').select('domain').where('run_id', '=', run.id).execute()).map((r) => r.domain)
    const counts = await ctx.db.selectFrom('companies').select((eb) => eb.fn.countAll<number>().as('n')).where('run_id', '=', run.id).where('status', 'in', ['qualified', 'selected', 'candidate']).executeTakeFirstOrThrow()
    const options = runOptions(run)
    const want = Math.max(1, Math.ceil((run.quantity - Number(counts.n)) * options.oversample))
    const exclude = [...known, ...(criteria.exclude_domains ?? []).map(normalizeDomain)]
    const usage: UsageRow[] = []
    const found = await withUsage(ctx, task, run, usage, (pctx) => providerFor(run).discover({criteria, want, exclude, round: task.payload.round}, pctx))
    const fresh = dedupe(found, new Set(exclude))
    return {
      result: {found: found.length, fresh: fresh.length},
      async apply(trx) {
        const locked = await lockRun(trx, run.id)
        await saveUsage(trx, usage)
        if (locked.status !== 'running') return
        const inserted = fresh.length === 0
          ? []
          : await trx
              .insertInto('companies')
              .values(
                fresh.map((c) => ({
                  run_id: run.id,
                  domain: c.domain,
                  name: c.name,
                  website: c.website ?? null,
                  city: c.city ?? null,
                  state: c.state ?? null,
                  pms: c.pms ?? null,
                  units_estimate: c.unitsEstimate ?? null,
                  sources: JSON.stringify(c.sources),
                  discovered_by: providerFor(run).name,
                  discovery_round: task.payload.round,
                  simulated: providerFor(run).simulated,
                })),
              )
              .onConflict((oc) => oc.columns(['run_id', 'domain']).doNothing())
              .returning(['id'])
              .execute()
        if (inserted.length === 0) {
          await trx.updateTable('runs').set({options: sql`options || '{"discoveryExhausted": true}'::jsonb` as never}).where('id', '=', run.id).execute()
        }

        await enqueue(
          trx as unknown as Kysely<Database>,
          inserted.map((c) => ({kind: KIND.company, payload: {runId: run.id, companyId: c.id}, scope: runScope(run.id), idempotencyKey: `run:${run.id}:company:${c.id}`, maxAttempts: 3})),
        )
        await advance(trx, run.id)
      },
    }
  }, onFailed)

  registry.register<RunPayload & {companyId: number}>(KIND.company, async (task, ctx) => {
    const run = await getRun(ctx.db, task.payload.runId)
    const company = await ctx.db.selectFrom('companies').selectAll().where('id', '=', task.payload.companyId).executeTakeFirst()
    if (run.status !== 'running' || !company || company.status !== 'candidate') return {result: {skipped: true}}
    const usage: UsageRow[] = []
    const research = await withUsage(ctx, task, run, usage, (pctx) =>
      providerFor(run).research({criteria: run.criteria as Criteria, company: toCandidate(company)}, pctx),
    )
    return {
      result: {fit: research.fit, score: research.score},
      async apply(trx) {
        await lockRun(trx, run.id)
        await saveUsage(trx, usage)
        await trx
          .updateTable('companies')
          .set({
            status: research.fit === 'yes' ? 'qualified' : 'disqualified',
            icp_fit: research.fit,
            icp_score: Math.max(0, Math.min(100, Math.round(research.score))),
            icp_tier: research.tier,
            confidence: research.confidence,
            reasons: JSON.stringify(research.reasons),
            sources: JSON.stringify([...new Set([...(company.sources as string[]), ...research.sources])]),
            pms: research.pms ?? company.pms,
            units_estimate: research.unitsEstimate ?? company.units_estimate,
            city: research.city ?? company.city,
            state: research.state ?? company.state,
            researched_at: sql`now()` as never,
          })
          .where('id', '=', company.id)
          .where('status', '=', 'candidate')
          .execute()
        await advance(trx, run.id)
      },
    }
  }, onFailed)

  registry.register<RunPayload & {companyId: number}>(KIND.contact, async (task, ctx) => {
    const run = await getRun(ctx.db, task.payload.runId)
    const company = await ctx.db.selectFrom('companies').selectAll().where('id', '=', task.payload.companyId).executeTakeFirst()
    if (run.status !== 'running' || !company || company.status !== 'selected') return {result: {skipped: true}}
    const usage: UsageRow[] = []
    const found = await withUsage(ctx, task, run, usage, (pctx) => providerFor(run).findContacts({company: toCandidate(company), min: run.contacts_min, max: run.contacts_max}, pctx))
    const people = dedupeContacts(found).slice(0, run.contacts_max)
    if (people.length < run.contacts_min && ctx.attempt < task.maxAttempts) {
      // Try again later (another attempt, with backoff); the last attempt settles for what it has.
      throw new Error(`found ${people.length} of at least ${run.contacts_min} decision makers at ${company.domain}`)
    }

    return {
      result: {found: people.length},
      async apply(trx) {
        await lockRun(trx, run.id)
        await saveUsage(trx, usage)
        if (people.length > 0) {
          await trx
            .insertInto('contacts')
            .values(
              people.map((p) => ({
                run_id: run.id,
                company_id: company.id,
                full_name: p.fullName,
                title: p.title,
                tier: p.tier,
                email: p.email ?? null,
                phone: p.phone ?? null,
                linkedin_url: p.linkedinUrl ?? null,
                confidence: p.confidence,
                sources: JSON.stringify(p.sources),
                simulated: providerFor(run).simulated,
              })),
            )
            .onConflict((oc) => oc.doNothing())
            .execute()
        }

        await advance(trx, run.id)
      },
    }
  }, onFailed)

  return registry
}

function toCandidate(c: {name: string; domain: string; website: string | null; city: string | null; state: string | null; pms: string | null; units_estimate: number | null; sources: unknown}): CandidateCompany {
  return {name: c.name, domain: c.domain, website: c.website, city: c.city, state: c.state, pms: c.pms, unitsEstimate: c.units_estimate, sources: (c.sources as string[]) ?? []}
}

/** Normalized, unique, not excluded: the same company never enters a run twice. */
function dedupe(found: CandidateCompany[], exclude: Set<string>): CandidateCompany[] {
  const seen = new Set<string>()
  const out: CandidateCompany[] = []
  for (const c of found) {
    const domain = normalizeDomain(c.domain)
    if (!domain || exclude.has(domain) || seen.has(domain)) continue
    seen.add(domain)
    out.push({...c, domain})
  }

  return out
}

function dedupeContacts<T extends {fullName: string; email?: string | null; linkedinUrl?: string | null; tier: number}>(people: T[]): T[] {
  const keys = new Set<string>()
  const out: T[] = []
  for (const p of [...people].sort((a, b) => a.tier - b.tier)) {
    const k = [`n:${p.fullName.trim().toLowerCase()}`, p.email ? `e:${p.email.toLowerCase()}` : '', p.linkedinUrl ? `l:${p.linkedinUrl.toLowerCase()}` : ''].filter(Boolean)
    if (k.some((x) => keys.has(x))) continue
    for (const x of k) keys.add(x)
    out.push(p)
  }

  return out
}

/**
 * Runs a provider call collecting usage, and saves it at once: it was paid for
 * whatever becomes of the result (a failure, or a completion fenced out after a
 * cancel or a presumed death). What could not be saved now goes with the completion.
 */
async function withUsage<T>(ctx: TaskContext, task: ClaimedTask, run: RunRow, usage: UsageRow[], fn: (pctx: CallContext) => Promise<T>): Promise<T> {
  const pctx: CallContext = {
    signal: ctx.signal,
    record: (u) => usage.push({...u, runId: run.id, taskId: task.id}),
  }
  try {
    return await fn(pctx)
  } finally {
    await saveUsage(ctx.db, usage).catch(() => {})
  }
}

async function saveUsage(db: Kysely<Database> | Transaction<Database>, usage: UsageRow[]): Promise<void> {
  if (usage.length === 0) return
  const rows = usage.map((u) => {
    return {
      run_id: u.runId,
      task_id: u.taskId,
      provider: u.provider,
      model: u.model,
      input_tokens: u.inputTokens,
      output_tokens: u.outputTokens,
      cached_tokens: u.cachedTokens,
      latency_ms: Math.round(u.latencyMs),
      cost_usd: u.costUsd,
      outcome: u.outcome,
    }
  })
  await db.insertInto('llm_calls').values(rows).execute()
  usage.length = 0
}
