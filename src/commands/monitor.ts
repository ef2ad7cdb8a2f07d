import os from 'node:os'
import {Flags} from '@oclif/core'

import {knownModels} from '../agents/index.js'
import {BaseCommand} from '../cli/base-command.js'
import {checkOutputDir} from '../cli/inputs.js'
import {parseDuration} from '../shared/duration.js'
import {UsageError} from '../shared/errors.js'
import {healthFlags, serveHealth} from '../cli/health-server.js'
import {createLogger} from '../cli/logger.js'
import {onCommandLine, ranged} from '../cli/flags.js'
import {type AlertChannel, EmailChannel, WebhookChannel} from '../monitor/channels.js'
import {mailerFromEnv, parseAddress, requireMailer} from '../monitor/mail.js'
import type {MetricsServer, MonitorMetrics} from '../monitor/metrics.js'
import {Monitor} from '../monitor/monitor.js'
import {privateWebhooksAllowed} from '../monitor/webhooks.js'

export default class MonitorCommand extends BaseCommand<typeof MonitorCommand> {
  static override summary = 'Watch the fleet: sweep dead workers, re-plan stalled runs, alert, and serve Prometheus metrics.'
  static override description = `Every --interval the active monitor sweeps dead workers and expired leases (their tasks go back to the queue), re-plans runs with nothing in flight, and opens an alert for each new condition: a worker died, a task failed or was quarantined, a run made no progress for --stuck-after, a run needs a decision. Each alert is sent once (to a Slack-compatible --alert-webhook and/or --alert-email through SMTP_URL), and again only if its condition clears and comes back. With --retention it also deletes the task rows and events of runs completed or canceled longer ago, and of standalone tasks finished that long ago (in small batches; a failed run keeps its tasks for rvx runs resume). Runs started with --notify-email get their mail from here when no orchestrate is attached. A run that completes is logged in one line ("run 6 completed: 30 companies, 71 contacts, $0.4100, 2m 10s") and sent to the alert channels; with --export-dir its CSVs are written there first. A fleet summary (worker processes, each counted once) is logged when it changes, else once a minute.

Start several for safety (with the same flags): one is active (a PostgreSQL advisory lock), the others stand by and take over within one interval when it dies (or end its session when it hangs for 15 s). Workers sweep too, so recovery never depends on the monitor.`
  static override examples = [
    '<%= config.bin %> monitor',
    'RVX_ALERT_WEBHOOK=https://hooks.slack.com/services/T000/B000/XXXX <%= config.bin %> monitor --metrics-port 9464',
    'SMTP_URL=smtp://user:pass@smtp.example.com:587 <%= config.bin %> monitor --alert-email ops@example.com --stuck-after 15m',
  ]
  static override flags = {
    interval: Flags.string({summary: 'How often to sweep, check and log (100ms-24d).', default: '5s'}),
    'dead-after': Flags.string({summary: 'A worker silent this long is dead (its tasks are requeued); more than 5s, at most 24d.', default: '15s'}),
    'stuck-after': Flags.string({summary: 'A running run with no task finished for this long is stuck (1s-24d).', default: '10m'}),
    'alert-webhook': Flags.string({
      summary: 'Slack-compatible incoming webhook URL for alerts (its path is a secret: prefer the env var).',
      env: 'RVX_ALERT_WEBHOOK',
    }),
    'alert-email': Flags.string({summary: 'Mail alerts to this address (needs SMTP_URL).', env: 'RVX_ALERT_EMAIL'}),
    'metrics-port': Flags.integer(ranged({summary: 'Serve Prometheus metrics on this port (0: any free port).', env: 'RVX_METRICS_PORT', min: 0, max: 65_535})),
    'metrics-host': Flags.string({summary: 'Address the metrics server listens on.', default: '127.0.0.1'}),
    ...healthFlags,
    once: Flags.boolean({summary: 'Do one interval of work and exit (for cron and scripts).'}),
    'export-dir': Flags.string({
      summary:
        'Write the export of each run that completes (or stops for a decision) without one here, in a run-ID folder (as rvx runs export --output-dir does).',
      env: 'RVX_EXPORT_DIR',
    }),
    retention: Flags.string({
      summary:
        "Delete task rows and events of runs completed or canceled, and of standalone tasks finished, longer ago than this, e.g. 14d (1m-3650d; default: keep them). A run's own data stays until rvx runs prune.",
      env: 'RVX_RETENTION',
    }),
  }

  async run(): Promise<void> {
    const {flags} = this
    const intervalMs = parseDuration(flags.interval, 'interval', {min: 100})
    const deadAfterMs = parseDuration(flags['dead-after'], 'dead_after')
    const stuckAfterMs = parseDuration(flags['stuck-after'], 'stuck_after', {min: 1000})
    const retentionMs = flags.retention === undefined ? undefined : parseDuration(flags.retention, 'retention', {min: 60_000, max: 3650 * 86_400_000})
    if (deadAfterMs <= 5000) throw new UsageError('--dead-after must exceed the 5s heartbeat interval, e.g. 15s')
    if (onCommandLine(this.argv, 'metrics-host') && flags['metrics-port'] === undefined)
      throw new UsageError('--metrics-host needs --metrics-port (or RVX_METRICS_PORT): without a port there is no metrics server')
    const channels: AlertChannel[] = []
    if (flags['alert-webhook']) channels.push(webhook(flags['alert-webhook']))
    if (flags['alert-email']) channels.push(new EmailChannel(requireMailer('alert_email', this.env), parseAddress(flags['alert-email'], 'alert_email')))
    const mailer = mailerFromEnv(this.env)
    const exportDir = flags['export-dir']
    if (exportDir !== undefined) await checkOutputDir(exportDir, 'export_dir')

    // Leadership is a session advisory lock: on a transaction-mode pooler every monitor would be active.
    const db = await this.database({schema: true, session: true})
    const log = createLogger(this.flags['log-level'], 'rvx-monitor', this.env)
    // prom-client and the metrics server only with a metrics port.
    let metrics: MonitorMetrics | undefined
    let server: MetricsServer | undefined
    if (flags['metrics-port'] !== undefined) {
      const {MonitorMetrics} = await import('../monitor/metrics.js')
      metrics = new MonitorMetrics({models: knownModels(this.env)})
      server = await metrics.serve(flags['metrics-port']!, flags['metrics-host'])
      log.info({url: server.url}, `metrics on ${server.url}`)
    }

    const name = `${os.hostname()}-${process.pid}`
    const monitor = new Monitor({
      db,
      databaseUrl: this.databaseUrl!,
      name,
      intervalMs,
      deadAfterMs,
      stuckAfterMs,
      targets: {channels, mailer},
      metrics,
      log,
      retentionMs,
      exportDir,
      webhooks: {allowPrivate: privateWebhooksAllowed(this.env), dnsServer: this.env.RVX_DNS_SERVER},
    })
    log.info(
      {
        interval: flags.interval,
        retention: flags.retention ?? 'off',
        exportDir: exportDir ?? 'off',
        deadAfter: flags['dead-after'],
        stuckAfter: flags['stuck-after'],
        channels: channels.map((c) => c.label),
        notices: mailer ? `via ${mailer.host}` : 'off (no SMTP_URL)',
      },
      `monitor ${name} starting: every ${flags.interval}; alerts to ${channels.length > 0 ? channels.map((c) => c.label).join(' and ') : 'the log only'}`,
    )
    const stop = new AbortController()
    let health: Awaited<ReturnType<typeof serveHealth>>
    try {
      health = await serveHealth(flags, this.argv, () => monitor.health())
      if (health) log.info({url: health.url}, `health on ${health.url}/livez and ${health.url}/readyz`)
      await this.untilSignal(
        () => stop.abort(),
        () => monitor.run({signal: stop.signal, once: flags.once}),
      )
      log.info({}, 'monitor stopped')
    } finally {
      await health?.close()
      await server?.close()
      mailer?.close()
    }
  }
}

function webhook(url: string): WebhookChannel {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new UsageError('--alert-webhook is not a URL: use e.g. https://hooks.slack.com/services/...')
  }

  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw new UsageError('--alert-webhook must be an http(s) URL')
  return new WebhookChannel(url)
}
