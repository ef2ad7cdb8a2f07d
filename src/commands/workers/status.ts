import {Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {renderTable, tableMode} from '../../cli/output.js'
import {formatAge, parseDuration} from '../../shared/duration.js'
import {type FleetStatus, fleetStatus} from '../../monitor/fleet.js'
import type {RunInProgress} from '../../pipeline/run-views.js'
import {STAGES} from '../../pipeline/stages/index.js'
import {stageWord, workerStages} from '../../web/format.js'
import {sleep} from '../../runtime/backoff.js'

const gb = (v: unknown) => (typeof v === 'number' ? `${v.toFixed(1)}G` : '-')

export default class WorkersStatus extends BaseCommand<typeof WorkersStatus> {
  static override summary = 'The fleet at a glance: workers by stage, each worker, the queue, and runs in progress.'
  static override description = `Runs the dead-worker sweep first (the same one every worker runs), so a crashed worker shows as dead at once. --watch redraws in place on a terminal and prints timestamped blocks when piped; with --json it prints one JSON object per interval (NDJSON).`
  static override examples = [
    '<%= config.bin %> workers status',
    '<%= config.bin %> workers status --watch',
    '<%= config.bin %> workers status --json | jq ".workers[] | {id, status}"',
    '<%= config.bin %> workers status --watch --json --interval 5s',
  ]
  static override enableJsonFlag = true
  static override flags = {
    watch: Flags.boolean({summary: 'Keep refreshing until Ctrl-C.'}),
    interval: Flags.string({summary: 'Refresh interval with --watch (500ms-24d).', default: '2s'}),
    all: Flags.boolean({summary: 'Include stopped workers.'}),
  }

  async run(): Promise<FleetStatus | undefined> {
    // Each refresh sweeps and reads the fleet: a floor keeps --watch from hammering the database.
    const interval = parseDuration(this.flags.interval, 'interval', {min: 500})
    const db = await this.database({schema: true})
    if (!this.flags.watch) {
      const s = await fleetStatus(db, {all: this.flags.all})
      if (!this.jsonEnabled()) process.stdout.write(this.render(s) + '\n')
      return s
    }

    const stop = new AbortController()
    await this.untilSignal(
      () => stop.abort(),
      async () => {
        while (!stop.signal.aborted) {
          const s = await fleetStatus(db, {all: this.flags.all})
          if (this.jsonEnabled()) process.stdout.write(JSON.stringify(s) + '\n')
          else if (process.stdout.isTTY) process.stdout.write(`\u001B[H\u001B[2J${this.render(s)}\n\n(every ${this.flags.interval}; Ctrl-C to stop)\n`)
          else process.stdout.write(`--- ${s.at}\n${this.render(s)}\n\n`)
          await sleep(interval, stop.signal)
        }
      },
    )
    return undefined
  }

  private render(s: FleetStatus): string {
    const mode = tableMode(this.env)
    const fleet = renderTable(
      s.fleet,
      [
        {header: 'stage', get: (r) => stageWord(r.type)},
        {header: 'active', get: (r) => r.starting + r.idle + r.busy + r.draining},
        {header: 'idle', get: (r) => r.idle},
        {header: 'busy', get: (r) => r.busy},
        {header: 'draining', get: (r) => r.draining},
        {header: 'dead', get: (r) => r.dead},
        {header: 'done 5m', get: (r) => r.doneLast5m},
        {header: 'failed 5m', get: (r) => r.failedLast5m},
      ],
      mode,
    )
    const workers = renderTable(
      s.workers,
      [
        {header: 'worker', get: (w) => w.id, wide: true},
        {header: 'stages', get: (w) => workerStages(w.types), drop: 3},
        {header: 'pool', get: (w) => w.pool, drop: 4},
        {header: 'status', get: (w) => w.status, status: true},
        {
          header: 'current task',
          get: (w) =>
            w.currentTasks.length === 0
              ? '-'
              : `${stageWord(w.currentTasks[0].kind)}#${w.currentTasks[0].id} ${formatAge(w.currentTasks[0].elapsedS)}${w.currentTasks.length > 1 ? ` +${w.currentTasks.length - 1}` : ''}`,
        },
        {header: 'heartbeat (rtt)', get: (w) => `${formatAge(w.heartbeatAgeS)} ago${w.heartbeatLatencyMs === null ? '' : ` (${w.heartbeatLatencyMs} ms)`}`},
        {header: 'cpu', get: (w) => (typeof w.resourceMetrics.cpu_percent === 'number' ? `${w.resourceMetrics.cpu_percent}%` : '-'), align: 'right', drop: 5},
        {header: 'mem free', get: (w) => gb(w.resourceMetrics.memory_available_gb), align: 'right', drop: 6},
        {
          header: 'gpu',
          get: (w) =>
            w.resourceMetrics.gpu_type && w.resourceMetrics.gpu_type !== 'none'
              ? `${w.resourceMetrics.gpu_type} ${gb(w.resourceMetrics.gpu_vram_available_gb)}`
              : '-',
          drop: 7,
        },
        {header: 'done/failed', get: (w) => `${w.tasksDone}/${w.tasksFailed}`, align: 'right'},
      ],
      mode,
    )
    const queue = renderTable(
      s.queue,
      [
        {header: 'stage', get: (q) => stageWord(q.kind)},
        {header: 'queued', get: (q) => q.queued},
        {header: 'running', get: (q) => q.running},
        {header: 'failed', get: (q) => q.failed},
        {header: 'quarantined', get: (q) => q.quarantined},
        {header: 'oldest queued', get: (q) => (q.oldestQueuedAgeS === null ? '-' : formatAge(q.oldestQueuedAgeS)), align: 'right'},
        {header: 'retries waiting', get: (q) => q.retriesWaiting, drop: 1},
      ],
      mode,
    )
    const runs =
      s.runs.length === 0
        ? 'no runs in progress'
        : renderTable(
            s.runs,
            [
              {header: 'run', get: (r) => r.id},
              {header: 'stage', get: (r) => r.stage},
              {header: 'quantity', get: (r) => r.quantity},
              ...STAGES.map((stage) => ({header: stage.name, get: (r: RunInProgress) => `${r.percent[stage.name]}%`, align: 'right' as const})),
            ],
            mode,
          )
    return [
      `FLEET\n${s.fleet.length === 0 ? 'no workers' : fleet}`,
      `WORKERS\n${s.workers.length === 0 ? 'none' : workers}`,
      `QUEUE\n${s.queue.length === 0 ? 'empty' : queue}`,
      `RUNS\n${runs}`,
    ].join('\n\n')
  }
}
