import {type Kysely, sql} from '../src/db/kysely.js'

// Autovacuum for the hot tables. The defaults wait for 20% of a table to be dead (10% to analyze): on a queue that
// completes thousands of tasks a second, and with retention deleting as many, that is millions of dead rows before a
// vacuum starts, and claims walk their index entries meanwhile. These start at 1-2% (or a fixed few hundred rows for
// workers, a small table rewritten by every heartbeat), count inserts too (task_events is append-only: its
// visibility map then stays current), and do not sleep between pages (cost_delay 0): the tables stay small, so
// each vacuum is short.
const SETTINGS = {
  tasks: {
    autovacuum_vacuum_scale_factor: 0.01,
    autovacuum_vacuum_threshold: 1000,
    autovacuum_vacuum_insert_scale_factor: 0.02,
    autovacuum_vacuum_insert_threshold: 10_000,
    autovacuum_analyze_scale_factor: 0.02,
    autovacuum_vacuum_cost_delay: 0,
  },
  task_events: {
    autovacuum_vacuum_scale_factor: 0.02,
    autovacuum_vacuum_threshold: 10_000,
    autovacuum_vacuum_insert_scale_factor: 0.02,
    autovacuum_vacuum_insert_threshold: 50_000,
    autovacuum_analyze_scale_factor: 0.05,
    autovacuum_vacuum_cost_delay: 0,
  },
  workers: {
    autovacuum_vacuum_scale_factor: 0,
    autovacuum_vacuum_threshold: 500,
    autovacuum_analyze_scale_factor: 0,
    autovacuum_analyze_threshold: 500,
    autovacuum_vacuum_cost_delay: 0,
  },
} as const

export async function up(db: Kysely<any>): Promise<void> {
  for (const [table, settings] of Object.entries(SETTINGS)) {
    const list = Object.entries(settings).map(([k, v]) => `${k} = ${v}`)
    await sql`alter table ${sql.table(table)} set (${sql.raw(list.join(', '))})`.execute(db)
  }
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const [table, settings] of Object.entries(SETTINGS)) {
    await sql`alter table ${sql.table(table)} reset (${sql.raw(Object.keys(settings).join(', '))})`.execute(db)
  }
}
