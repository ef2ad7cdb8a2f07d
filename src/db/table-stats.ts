import {sql} from './kysely.js'
import type {Executor} from './executor.js'

export interface TableStats {
  table: string
  /** The heap with its TOAST, without indexes. */
  tableBytes: number
  indexBytes: number
  liveTuples: number
  deadTuples: number
  lastVacuum: Date | null
  lastAutovacuum: Date | null
  lastAnalyze: Date | null
  lastAutoanalyze: Date | null
  /** Per-table autovacuum settings (reloptions), e.g. autovacuum_vacuum_scale_factor=0.01. */
  settings: string[]
  indexes: Array<{name: string; bytes: number}>
}

/** Size, tuples and (auto)vacuum history of every table in the current schema, biggest first (the statistics collector's view). */
export async function tableStats(ex: Executor): Promise<TableStats[]> {
  const {rows} = await sql<{
    table: string
    table_bytes: string
    index_bytes: string
    live: string
    dead: string
    last_vacuum: Date | null
    last_autovacuum: Date | null
    last_analyze: Date | null
    last_autoanalyze: Date | null
    settings: string[] | null
    indexes: Array<{name: string; bytes: number}>
  }>`
    select s.relname as table,
      pg_table_size(s.relid)::text as table_bytes, pg_indexes_size(s.relid)::text as index_bytes,
      s.n_live_tup::text as live, s.n_dead_tup::text as dead,
      s.last_vacuum, s.last_autovacuum, s.last_analyze, s.last_autoanalyze, c.reloptions as settings,
      coalesce((select json_agg(json_build_object('name', i.indexrelname, 'bytes', pg_relation_size(i.indexrelid)) order by i.indexrelname)
                from pg_stat_user_indexes i where i.relid = s.relid), '[]') as indexes
    from pg_stat_user_tables s join pg_class c on c.oid = s.relid
    where s.schemaname = current_schema()
    order by pg_total_relation_size(s.relid) desc, s.relname`.execute(ex)
  return rows.map((r) => ({
    table: r.table,
    tableBytes: Number(r.table_bytes),
    indexBytes: Number(r.index_bytes),
    liveTuples: Number(r.live),
    deadTuples: Number(r.dead),
    lastVacuum: r.last_vacuum,
    lastAutovacuum: r.last_autovacuum,
    lastAnalyze: r.last_analyze,
    lastAutoanalyze: r.last_autoanalyze,
    settings: r.settings ?? [],
    indexes: r.indexes,
  }))
}
