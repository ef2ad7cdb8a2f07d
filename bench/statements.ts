/**
 * Where a run's time goes in PostgreSQL (bench (j) with --statements): pg_stat_statements, loaded into the bench's
 * server, reset before a measured run and read after it (the statements of that run's database, by total time), and
 * the generic plans (EXPLAIN (GENERIC_PLAN), PostgreSQL 16+) of a system's costliest statements taken at full depth,
 * before the run starts, from what the system sent in its previous run.
 */
import type pg from 'pg'

/** Server settings that load pg_stat_statements (top-level statements only: a function's inner ones are its caller's). */
export const STATEMENT_SETTINGS = {shared_preload_libraries: 'pg_stat_statements', 'pg_stat_statements.track': 'top', 'pg_stat_statements.max': '2000'}

export interface StatementTiming {
  query: string
  calls: number
  total_ms: number
  mean_ms: number
  rows: number
}

export interface StatementPlan {
  query: string
  plan: string[]
}

/** The bench's own session (counting what is left, explaining) keeps out of the figures. */
export async function untracked(client: pg.Client): Promise<void> {
  await client.query(`set pg_stat_statements.track = 'none'`)
}

export async function resetStatements(client: pg.Client): Promise<void> {
  await client.query('create extension if not exists pg_stat_statements')
  await client.query('select pg_stat_statements_reset()')
}

/** The statements run in this database since the reset, costliest first. */
export async function topStatements(client: pg.Client, limit = 8): Promise<StatementTiming[]> {
  const {rows} = await client.query<{query: string; calls: string; total: number; mean: number; rows: string}>(
    `select query, calls, total_exec_time as total, mean_exec_time as mean, rows
     from pg_stat_statements where dbid = (select oid from pg_database where datname = current_database())
     order by total_exec_time desc limit $1`,
    [limit],
  )
  const r1 = (n: number) => Math.round(n * 100) / 100
  return rows.map((r) => ({
    // On one line, so without its -- comments (one would swallow the rest): EXPLAIN takes it back as it is shown.
    query: r.query
      .replace(/--[^\n]*/g, '')
      .replace(/\s+/g, ' ')
      .trim(),
    calls: Number(r.calls),
    total_ms: r1(r.total),
    mean_ms: r1(r.mean),
    rows: Number(r.rows),
  }))
}

/** Generic plans of these statements as the table is now; statements EXPLAIN cannot take (BEGIN, SET...) are left out. */
export async function genericPlans(client: pg.Client, queries: string[]): Promise<StatementPlan[]> {
  const out: StatementPlan[] = []
  for (const query of queries) {
    try {
      const {rows} = await client.query<{'QUERY PLAN': string}>(`explain (generic_plan) ${query}`)
      out.push({query, plan: rows.map((r) => r['QUERY PLAN'])})
    } catch {
      // Not explainable: a utility statement.
    }
  }

  return out
}
