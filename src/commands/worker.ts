import {Args, Flags} from '@oclif/core'

import {loadProviders, providerFactory} from '../agents/index.js'
import {simulationOptions} from '../agents/simulation-options.js'
import {CONCURRENCY, defaultConcurrency} from '../cli/concurrency.js'
import {BaseCommand} from '../cli/base-command.js'
import {healthFlags, serveHealth} from '../cli/health-server.js'
import {createLogger} from '../cli/logger.js'
import {ranged} from '../cli/flags.js'
import {parseRunId} from '../cli/run-arg.js'
import {runScope} from '../pipeline/run-options.js'
import {getRun} from '../pipeline/runs.js'
import {kindsFor, stageChoices, STAGES} from '../pipeline/stages/index.js'
import {stageWord} from '../pipeline/stage-words.js'
import {registerPipeline} from '../pipeline/stages/skeleton.js'
import {TaskRegistry} from '../runtime/handlers.js'
import {Worker, type WorkerSummary} from '../runtime/worker.js'
import {ExitCode} from '../shared/exit-codes.js'

/** After the drain's grace period (or a second signal), how long the goodbyes may take before the process just exits. */
const FORCED_EXIT_MS = 10_000

export default class WorkerCommand extends BaseCommand<typeof WorkerCommand> {
  static override summary = `Run a long-lived worker for one or more stages: ${STAGES.map((s) => s.name).join(', ')}, or all.`
  static override description = `Stages: ${STAGES.map((s) => `${s.name} (task kind ${s.kind}): ${s.summary}`).join('; ')}. Either name selects a stage.
Registers itself, heartbeats every 5 s (renewing its leases and reporting CPU, memory and GPU), claims tasks of its stages, and logs JSON lines (readable on a terminal). SIGTERM or Ctrl-C stops claiming and lets in-flight tasks finish (30 s), then releases the rest for other workers; a second signal stops at once. Exit 143 (SIGTERM) or 130 (SIGINT). Start as many as you like, on as many machines as you like, against one DATABASE_URL.`
  static override examples = [
    '<%= config.bin %> worker all',
    '<%= config.bin %> worker research contacts --concurrency 8 --pool eu',
    '<%= config.bin %> worker all --run 12 --exit-when-idle',
    'RVX_SIM_FAULTS=transient=0.1 <%= config.bin %> worker company',
  ]
  static override strict = false
  static override args = {
    type: Args.string({description: `Stage(s) to work on: ${stageChoices()}, or all.`, required: true}),
  }
  static override flags = {
    concurrency: Flags.integer(
      ranged({
        summary: 'Tasks at once; by default sized from free memory, 4 to 64 (the pacing sets the model request rate).',
        min: CONCURRENCY.min,
        max: CONCURRENCY.max,
      }),
    ),
    pool: Flags.string({summary: 'Pool name; tasks may require one.', default: 'default'}),
    capabilities: Flags.string({summary: 'Comma-separated capabilities this worker offers (e.g. browser,gpu).'}),
    id: Flags.string({summary: 'Stable worker id. Default: host-pid-random.'}),
    run: Flags.string({summary: "Only this run's tasks."}),
    'max-tasks': Flags.integer(ranged({summary: 'Stop after this many tasks.', min: 1, max: 1_000_000_000})),
    'exit-when-idle': Flags.boolean({summary: 'Stop when nothing is left to do.'}),
    'db-connections': Flags.integer(
      ranged({
        summary: 'Connections of its database pool, opened at start and kept (one more carries its heartbeats). Default: 4 (concurrency + 1 if smaller).',
        min: 2,
        max: 64,
      }),
    ),
    ...healthFlags,
    'sim-latency': Flags.string({summary: 'Override simulated latency for simulated runs (env RVX_SIM_LATENCY).', helpGroup: 'SIMULATION'}),
    'sim-faults': Flags.string({summary: 'Override simulated faults (env RVX_SIM_FAULTS).', helpGroup: 'SIMULATION'}),
  }

  async run(): Promise<WorkerSummary> {
    const kinds = kindsFor(this.positional)
    const runId = this.flags.run === undefined ? undefined : parseRunId(this.flags.run, 'run')
    // Validate simulation overrides now (one clear line), then hand them to the provider factory.
    simulationOptions({latency: this.flags['sim-latency'], faults: this.flags['sim-faults']}, this.env)
    const env = {
      ...this.env,
      ...(this.flags['sim-latency'] ? {RVX_SIM_LATENCY: this.flags['sim-latency']} : {}),
      ...(this.flags['sim-faults'] ? {RVX_SIM_FAULTS: this.flags['sim-faults']} : {}),
    }

    const db = await this.database({schema: true})
    // A worker kept to one run names a run that exists; one that is over is said, not left to idle without a word.
    const run = runId === undefined ? undefined : await getRun(db, runId)
    const log = createLogger(this.flags['log-level'], 'rvx-worker', this.env)
    if (run && (run.status === 'completed' || run.status === 'canceled')) {
      log.warn({runId: run.id, status: run.status}, `run ${run.id} is ${run.status}: this worker will find no tasks of it`)
    }

    await loadProviders()
    const journal = await this.spendJournal((message) => log.warn({}, message))
    const worker = new Worker({
      databaseUrl: this.databaseUrl!,
      registry: registerPipeline(new TaskRegistry(), providerFactory(env), {journal}),
      kinds,
      concurrency: this.flags.concurrency ?? defaultConcurrency(),
      pool: this.flags.pool,
      capabilities: this.flags.capabilities
        ?.split(',')
        .map((c) => c.trim())
        .filter(Boolean),
      id: this.flags.id,
      scope: runId === undefined ? null : runScope(runId),
      version: this.config.version,
      logger: log,
      maxTasks: this.flags['max-tasks'],
      exitWhenIdle: this.flags['exit-when-idle'],
      poolSize: this.flags['db-connections'],
      limits: this.sessionLimits,
      kindName: stageWord,
      // After a failover the new primary may lack the last paid calls recorded on the old one: write them back now.
      onDatabaseBack: () => void journal.reconcile(db).catch(() => {}),
    })
    const health = await serveHealth(this.flags, this.argv, () => worker.health())
    if (health) log.info({url: health.url}, `health on ${health.url}/livez and ${health.url}/readyz`)
    try {
      return await this.untilSignal(
        (signal, count) => {
          worker.stop()
          // Whatever its connections are doing (a half-open socket answers nothing), the process ends in time: the
          // drain's grace period and a little for the goodbyes after a first signal, a few seconds after a second.
          const code = signal === 'SIGTERM' ? ExitCode.Terminated : ExitCode.Interrupted
          const ms = count > 1 ? FORCED_EXIT_MS : worker.config.graceMs + FORCED_EXIT_MS
          setTimeout(() => {
            log.error(
              {inflight: worker.inFlight},
              `not stopped ${Math.round(ms / 1000)} s after ${signal}: exiting now (unsettled tasks go back to the queue when their leases run out)`,
            )
            process.exit(code)
          }, ms).unref()
        },
        () => worker.start(),
      )
    } finally {
      await health?.close()
    }
  }
}
