import {Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {ranged} from '../cli/flags.js'
import {createLogger} from '../cli/logger.js'
import {parseDuration} from '../shared/duration.js'
import {UsageError} from '../shared/errors.js'
import {registerSecret} from '../shared/secrets.js'
import {isLoopbackHost} from '../web/auth.js'
import {type DashboardOptions, startDashboard} from '../web/server.js'

/** Shorter tokens could be guessed by anyone who can reach the port. */
const MIN_TOKEN_LENGTH = 16

export default class DashboardCommand extends BaseCommand<typeof DashboardCommand> {
  static override summary = 'Serve a read-only web dashboard of runs, leads and the fleet, live.'
  static override description = `Pages: Runs (every run with its stage bars, counts, cost and age; filter by status), Run (criteria, target vs selected, cost and $ per lead, time so far (or how long it took) and ETA, the selected companies with their verdicts, evidence and contacts, the disqualified ones and what kept them out, CSV/JSON downloads, task events and errors, the commands for a decision) and Fleet (workers with heartbeat, CPU, memory, GPU and current task, dead ones marked; the queue; open alerts; tasks and $ per minute over the last hour). Pages update through Server-Sent Events from one database read per --interval for all viewers.

It listens on 127.0.0.1 unless --host says otherwise; any other address needs a token (--token or RVX_DASHBOARD_TOKEN, at least ${MIN_TOKEN_LENGTH} characters). With a token, open http://HOST:PORT/?token=TOKEN once (it becomes a cookie and leaves the address bar) or send Authorization: Bearer TOKEN. Serve it over TLS (a reverse proxy) beyond a trusted network. Ctrl-C or SIGTERM stops it.`
  static override examples = [
    '<%= config.bin %> dashboard',
    '<%= config.bin %> dashboard --port 9000',
    'RVX_DASHBOARD_TOKEN=$(openssl rand -hex 16) <%= config.bin %> dashboard --host 0.0.0.0',
  ]
  static override flags = {
    port: Flags.integer(ranged({summary: 'Port to listen on (0: any free port).', default: 8080, min: 0, max: 65_535})),
    host: Flags.string({summary: 'Address to listen on; beyond loopback a token is required.', default: '127.0.0.1'}),
    token: Flags.string({summary: 'Secret every request must carry (prefer the env var: flags show in ps).', env: 'RVX_DASHBOARD_TOKEN'}),
    interval: Flags.string({summary: 'How often live pages refresh (one database read for all viewers).', default: '2s'}),
  }

  async run(): Promise<void> {
    await this.serve()
  }

  /** Serves the pages (and, given `api`, the HTTP API) until a signal. */
  protected async serve(api?: DashboardOptions['api']): Promise<void> {
    const {flags} = this
    const intervalMs = parseDuration(flags.interval, 'interval')
    if (intervalMs < 250) throw new UsageError('--interval must be at least 250ms')
    const token = flags.token === '' ? undefined : flags.token
    if (token !== undefined) {
      registerSecret(token)
      // Spaces and control characters cannot be sent in a header or a link as they are (and 20 spaces are no secret).
      if (/[\s\p{Cc}]/u.test(token))
        throw new UsageError(`must be printable characters without spaces or control characters: use e.g. openssl rand -hex 16`, {field: 'token'})
      if (token.length < MIN_TOKEN_LENGTH)
        throw new UsageError(`is too short (${token.length} characters): use at least ${MIN_TOKEN_LENGTH} random ones, e.g. openssl rand -hex 16`, {
          field: 'token',
        })
    }

    if (!token && !isLoopbackHost(flags.host))
      throw new UsageError(`--host ${flags.host} is reachable from other machines: give a token (--token or RVX_DASHBOARD_TOKEN), or leave --host at 127.0.0.1`)

    const db = await this.database({schema: true})
    const log = createLogger(this.flags['log-level'], 'rvx-dashboard', this.env)
    const dashboard = await startDashboard({db, host: flags.host, port: flags.port, token, intervalMs, log, api})
    log.info(
      {url: dashboard.url, token: token ? 'required' : 'none (loopback only)'},
      `dashboard on ${dashboard.url}${token ? ' (open it once with ?token=YOUR_TOKEN)' : ''}`,
    )
    if (api) log.info({url: `${dashboard.url}api/v1/`}, `API on ${dashboard.url}api/v1/ (every request needs an API token: rvx tokens create)`)
    let stopped!: () => void
    const stop = new Promise<void>((resolve) => (stopped = resolve))
    await this.untilSignal(
      () => stopped(),
      () => stop,
    )
    await dashboard.close()
    log.info({}, 'dashboard stopped')
  }
}
