import {BaseCommand} from '../../cli/base-command.js'
import {tableStats, type TableStats} from '../../db/table-stats.js'
import {formatAge} from '../../shared/duration.js'

export default class DbStats extends BaseCommand<typeof DbStats> {
  static override summary = "Show rvx's tables: size of each table and its indexes, live and dead rows, the last (auto)vacuum and analyze."
  static override description = `Works on the embedded server (its pending migrations applied first, as for any command) and on the database DATABASE_URL (--database-url) names, shown as it is. Row counts are the statistics collector's estimates. Watch tasks and task_events: with retention on (rvx monitor --retention) their sizes level off; dead rows that stay high mean autovacuum is not keeping up. --json adds each index's size and the tables' autovacuum settings.`
  static override examples = ['<%= config.bin %> db stats', 'DATABASE_URL=postgres://rvx@db.internal/rvx <%= config.bin %> db stats --json']
  static override enableJsonFlag = true

  async run(): Promise<{tables: TableStats[]}> {
    // The embedded database gets its migrations as for any command; an external one is shown as it is, behind or not.
    const tables = await tableStats(await this.database({schema: !this.flags['database-url']}))
    const when = (...at: Array<Date | null>) => {
      const latest = at.filter((d): d is Date => d !== null).sort((a, b) => b.getTime() - a.getTime())[0]
      return latest ? `${formatAge((Date.now() - latest.getTime()) / 1000)} ago` : 'never'
    }

    this.table(tables, [
      {header: 'table', get: (t) => t.table},
      {header: 'table size', get: (t) => bytes(t.tableBytes), align: 'right'},
      {header: 'index size', get: (t) => bytes(t.indexBytes), align: 'right'},
      {header: 'live rows', get: (t) => t.liveTuples},
      {header: 'dead rows', get: (t) => t.deadTuples},
      {header: 'last vacuum', get: (t) => when(t.lastVacuum, t.lastAutovacuum), drop: 2},
      {header: 'last analyze', get: (t) => when(t.lastAnalyze, t.lastAutoanalyze), drop: 1},
    ])
    return {tables}
  }
}

function bytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB']
  let i = 0
  let v = n
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }

  return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`
}
