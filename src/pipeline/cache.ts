import {createHash} from 'node:crypto'

import {sql} from '../db/kysely.js'

import type {Executor} from '../db/executor.js'
import type {Criteria} from './criteria.js'
import type {CallContext} from './provider.js'

/**
 * Never pay twice: what a paid call of a stage that declares `cached`
 * found for a domain, reused while it is younger than the run's TTL. The key
 * is what the answer depended on: the domain, the provider (its model and
 * endpoint, or the simulated world) and, where the stage judges against them,
 * the criteria.
 */

/** The name of the stage whose answer it is (one that declares `cached`: the registry's CACHE_KINDS). */
export type CacheKind = string

/** The default time a cached answer is reused (--cache-ttl). */
export const DEFAULT_CACHE_TTL_MS = 30 * 24 * 3600_000

export interface CacheEntry<T> {
  value: T
  /** When the answer was paid for (researched_at of a lead judged from it). */
  createdAt: Date
}

/** The criteria research depends on, in a stable order (exclude_domains changes who is found, not what is true of a company). */
function researchCriteria(criteria: Criteria): string {
  const relevant = Object.entries(criteria).filter(([k, v]) => k !== 'exclude_domains' && v !== undefined && v !== null)
  return JSON.stringify(relevant.sort(([a], [b]) => a.localeCompare(b)))
}

export function cacheKey(kind: CacheKind, parts: {domain: string; provider: string; criteria?: Criteria; extra?: string}): string {
  const material = [kind, parts.domain, parts.provider, parts.criteria ? researchCriteria(parts.criteria) : '', parts.extra ?? ''].join('\n')
  return createHash('sha256').update(material).digest('hex')
}

/** A cached answer younger than ttlMs, counted as a hit; null when there is none. */
export async function readCache<T>(db: Executor, kind: CacheKind, key: string, ttlMs: number): Promise<CacheEntry<T> | null> {
  const row = await db
    .updateTable('research_cache')
    .set({hits: sql`hits + 1` as never, last_hit_at: sql`now()` as never})
    .where('kind', '=', kind)
    .where('key', '=', key)
    .where('created_at', '>', sql<Date>`now() - ${ttlMs}::float8 * interval '1 millisecond'`)
    .returning(['value', 'created_at'])
    .executeTakeFirst()
  return row ? {value: row.value as T, createdAt: row.created_at} : null
}

/** Stores what a paid call found (a newer answer replaces an older one); returns when it was stored (the answer's date). */
export async function writeCache(
  db: Executor,
  kind: CacheKind,
  key: string,
  entry: {domain: string; provider: string; value: unknown; costUsd: number},
): Promise<Date> {
  const row = await db
    .insertInto('research_cache')
    .values({kind, key, domain: entry.domain, provider: entry.provider, value: JSON.stringify(entry.value), cost_usd: entry.costUsd})
    .onConflict((oc) =>
      oc.columns(['kind', 'key']).doUpdateSet({value: JSON.stringify(entry.value), cost_usd: entry.costUsd, created_at: sql`now()` as never, hits: 0}),
    )
    .returning('created_at')
    .executeTakeFirstOrThrow()
  return row.created_at
}

/** A call context that also adds up what its calls cost (what a cache entry saves when it is reused). */
export function metered(ctx: CallContext): CallContext & {spentUsd(): number} {
  let usd = 0
  return {
    ...ctx,
    async admit(plan) {
      const admission = await ctx.admit(plan)
      return {
        ...admission,
        settle(outcome) {
          usd += outcome.usage.costUsd
          return admission.settle(outcome)
        },
      }
    },
    spentUsd: () => usd,
  }
}

export interface CacheStats {
  kind: CacheKind
  entries: number
  /** Entries younger than the default TTL. */
  fresh: number
  hits: number
  /** What reusing the entries saved: each hit's original cost. */
  savedUsd: number
  oldest: Date | null
  newest: Date | null
}

/** Per kind (`kinds`: the registry's CACHE_KINDS, which the stages that import this module make). */
export async function cacheStats(db: Executor, kinds: readonly CacheKind[]): Promise<CacheStats[]> {
  const {rows} = await sql<{kind: CacheKind; entries: number; fresh: number; hits: number; saved: string; oldest: Date | null; newest: Date | null}>`
    select k.kind, count(c.key)::int as entries,
           count(c.key) filter (where c.created_at > now() - ${DEFAULT_CACHE_TTL_MS}::float8 * interval '1 millisecond')::int as fresh,
           coalesce(sum(c.hits), 0)::float8 as hits, coalesce(sum(c.hits * c.cost_usd), 0)::text as saved,
           min(c.created_at) as oldest, max(c.created_at) as newest
    from unnest(${[...kinds]}::text[]) with ordinality as k(kind, n) left join research_cache c on c.kind = k.kind
    group by k.kind, k.n order by k.n`.execute(db)
  return rows.map((r) => ({kind: r.kind, entries: r.entries, fresh: r.fresh, hits: r.hits, savedUsd: Number(r.saved), oldest: r.oldest, newest: r.newest}))
}

/** Deletes cached answers (all, or those older than olderThanMs); how many went. */
export async function clearCache(db: Executor, olderThanMs?: number): Promise<number> {
  let q = db.deleteFrom('research_cache')
  if (olderThanMs !== undefined) q = q.where('created_at', '<', sql<Date>`now() - ${olderThanMs}::float8 * interval '1 millisecond'`)
  const result = await q.executeTakeFirst()
  return Number(result.numDeletedRows)
}
