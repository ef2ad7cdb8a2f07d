import {Flags} from '@oclif/core'

import {CONCURRENCY, defaultConcurrency} from '../cli/concurrency.js'

import {createProvider, PROVIDERS} from '../agents/index.js'
import {chooseProvider} from '../cli/provider-choice.js'
import {simulationOptions} from '../agents/simulation-options.js'
import {parseDuration} from '../shared/duration.js'
import {checkOutputDir, type ExcludeList, readCriteriaText, readExcludeDomains} from '../cli/inputs.js'
import {optedInStages, optInStageFlags, ranged, usdFlag} from '../cli/flags.js'
import {requirePrices} from '../agents/prices.js'
import {parseCriteria, validateSize} from '../pipeline/criteria.js'
import {pauseOnExitFlag, RunDriverCommand, type DriveReport} from '../cli/run-driver.js'
import {createRun} from '../pipeline/runs.js'
import {YIELD_CHECK_AFTER} from '../pipeline/yield-alarm.js'
import {describeRunWorkers, workersForRun} from '../pipeline/run-workers.js'
import {STAGES} from '../pipeline/stages/index.js'
import {ACCEPTABLE_UNKNOWN, parseAcceptUnknown} from '../pipeline/verification.js'
import {parseAddress, requireMailer} from '../monitor/mail.js'
import {printable} from '../cli/output.js'
import {codePoint, UNSAFE_CHARACTERS} from '../shared/text.js'
import {UsageError} from '../shared/errors.js'

export interface OrchestrateResult extends Partial<DriveReport> {
  runId: number
  status: string
  detached: boolean
}

/** --notify-email as one line: a line break would start a mail header (and is not repeated onto the terminal). */
function oneAddress(value: string): string {
  const bad = [...value.trim().matchAll(UNSAFE_CHARACTERS)][0]
  if (bad)
    throw new UsageError(`contains ${codePoint(bad[0])} (a line break or control character): give one address, e.g. ops@example.com`, {field: 'notify_email'})
  return value
}

export default class Orchestrate extends RunDriverCommand<typeof Orchestrate> {
  static override summary = 'Create a lead-list run and drive it to the end: discovery, research, contacts, CSV export.'
  static override description = `Without --detach, runs workers of every stage (${STAGES.map((s) => s.name).join(', ')}; opt-in ones only when asked for) in this process (external rvx workers may join), shows progress, exports when the run ends and prints a summary. Exit 0 when the run completed, 4 when it needs a decision (a partial export is written), 1 when it failed. Ctrl-C drains the workers gracefully and says what happens next: with other workers live the run goes on there (rvx runs pause ID stops it), with --pause-on-exit it is paused, else it waits, resumable (rvx runs resume ID); a second Ctrl-C stops at once.

--criteria keys: pms, state (2 letters), city, units_min, units_max, natural_request, exclude_domains.`
  static override examples = [
    `<%= config.bin %> orchestrate --provider simulated --criteria '{"pms":"Buildium","state":"TX"}' --quantity 10`,
    `OPENAI_API_KEY=sk-... <%= config.bin %> orchestrate --criteria @criteria.json --quantity 50 --contacts-max 2`,
    `<%= config.bin %> orchestrate --criteria - --quantity 30 --detach --json < criteria.json`,
    `SMTP_URL=smtp://user:pass@smtp.example.com:587 <%= config.bin %> orchestrate --criteria @criteria.json --quantity 100 --notify-email sales@example.com`,
    `OPENAI_API_KEY=sk-... <%= config.bin %> orchestrate --criteria @criteria.json --quantity 25 --max-usd 5`,
    `<%= config.bin %> orchestrate --criteria @criteria.json --quantity 50 --exclude @hubspot-companies.csv`,
    `<%= config.bin %> orchestrate --provider simulated --sim-latency 50ms-500ms --sim-faults transient=0.1,rate_limit=0.05 --criteria '{"state":"FL"}' --quantity 20`,
  ]
  static override enableJsonFlag = true
  static override flags = {
    criteria: Flags.string({summary: 'What to look for: JSON, @file.json, or - for stdin.', required: true}),
    quantity: Flags.integer(ranged({summary: 'How many qualified companies to deliver.', required: true, min: 1, max: 10_000})),
    'contacts-min': Flags.integer(ranged({summary: 'Decision makers required per company.', default: 1, min: 1, max: 10})),
    'contacts-max': Flags.integer(ranged({summary: 'Decision makers kept per company.', default: 3, min: 1, max: 10})),
    provider: Flags.option({options: PROVIDERS, summary: 'Who does the research. Default: openai when OPENAI_API_KEY is set.'})(),
    'sim-latency': Flags.string({summary: 'Simulated call latency, e.g. 50ms-500ms (env RVX_SIM_LATENCY).', helpGroup: 'SIMULATION'}),
    'sim-faults': Flags.string({
      summary: 'Injected faults, e.g. transient=0.1,rate_limit=0.05,malformed=0.02,crash=0.001 (env RVX_SIM_FAULTS).',
      helpGroup: 'SIMULATION',
    }),
    'sim-seed': Flags.integer(ranged({summary: 'Seed of the simulated world (env RVX_SIM_SEED).', helpGroup: 'SIMULATION', min: 0, max: 4_294_967_295})),
    concurrency: Flags.integer(
      ranged({summary: 'Tasks in flight per stage in this process; by default sized from free memory, 4 to 64.', min: CONCURRENCY.min, max: CONCURRENCY.max}),
    ),
    detach: Flags.boolean({summary: 'Create the run and return; rvx workers do the work.'}),
    'output-dir': Flags.string({summary: "Where exports go (a run-ID folder inside). Default: ./exports/ and the database's id."}),
    format: Flags.option({options: ['csv', 'json'] as const, default: 'csv' as const, summary: 'Export format.'})(),
    timeout: Flags.string({summary: 'Stop driving after this long (e.g. 30m; 1s-24d); the run stays resumable.'}),
    'accept-unknown': Flags.string({
      summary: `Criteria whose "unknown" verdict still qualifies a company (comma-separated: ${ACCEPTABLE_UNKNOWN.join(', ')}). Default: every criterion must match.`,
    }),
    'max-usd': usdFlag('Budget for model calls in US dollars: the run stops calling models before it would pass it, and asks for a decision (exit 4).'),
    fresh: Flags.boolean({
      summary: 'Research and search contacts again even for companies researched within --cache-ttl (the answers still fill the cache).',
      helpGroup: 'CACHE',
    }),
    'cache-ttl': Flags.string({summary: 'Reuse research and contacts younger than this (e.g. 7d, 12h; 1m-365d).', default: '30d', helpGroup: 'CACHE'}),
    'include-delivered': Flags.boolean({summary: 'Allow companies that earlier completed runs delivered (by default they are kept out).', helpGroup: 'CACHE'}),
    exclude: Flags.string({
      summary: 'Companies never to deliver: @crm.csv (a column named domain, website or url) or a comma-separated list of domains.',
      helpGroup: 'CACHE',
    }),
    'notify-email': Flags.string({summary: 'Mail this address the two CSVs when the run completes, or the options when it needs a decision (needs SMTP_URL).'}),
    'pause-on-exit': pauseOnExitFlag,
    'yield-check-after': Flags.integer(
      ranged({
        summary: `Companies researched (paid for, not from the cache) before the yield alarm judges the run (0: never): when its qualification rate cannot reach the quantity with what discovery can still find, or its $ per qualified company times the quantity passes --max-usd, it stops and asks for a decision (exit 4).`,
        default: YIELD_CHECK_AFTER,
        min: 0,
        max: 100_000,
      }),
    ),
    ...optInStageFlags(),
  }

  /** --exclude's domains, having said how many were kept and what was skipped; refused when it names no domain at all. */
  private excluding({domains, skipped}: ExcludeList): string[] {
    const first = skipped[0] && `${printable(JSON.stringify(skipped[0].entry))} ${skipped[0].problem}`
    if (domains.length === 0)
      throw new UsageError(
        skipped.length > 0
          ? `has no domain in it (${first}): give domains like acme-pm.com, or @crm.csv`
          : 'is empty: give domains like acme-pm.com, or @crm.csv',
        {field: 'exclude'},
      )
    const skippedNote =
      skipped.length > 0 ? `; skipped ${skipped.length} ${skipped.length === 1 ? 'entry that is' : 'entries that are'} not domains (${first})` : ''
    const said = `--exclude: keeping out ${domains.length} ${domains.length === 1 ? 'domain' : 'domains'}${skippedNote}`
    // Entries skipped are said even under --json: a list that silently keeps less than was given is a surprise later.
    if (skipped.length > 0) this.notice(said)
    else this.info(said)
    return domains
  }

  async run(): Promise<OrchestrateResult> {
    const {flags} = this
    const criteria = parseCriteria(await readCriteriaText(flags.criteria))
    const size = validateSize({quantity: flags.quantity, contactsMin: flags['contacts-min'], contactsMax: flags['contacts-max']})
    const provider = chooseProvider(flags.provider, this.env)
    const simulation =
      provider === 'simulated' ? simulationOptions({latency: flags['sim-latency'], faults: flags['sim-faults'], seed: flags['sim-seed']}, this.env) : undefined
    const timeoutMs = flags.timeout === undefined ? undefined : parseDuration(flags.timeout, 'timeout', {min: 1000})
    // Refuses an unusable provider, and a budget for a model without a price, before anything is written.
    const {models} = await createProvider(provider, simulation, this.env)
    if (flags['max-usd'] !== undefined) requirePrices(models)
    const notifyEmail = flags['notify-email'] ? parseAddress(oneAddress(flags['notify-email']), 'notify_email') : undefined
    const acceptUnknown = flags['accept-unknown'] === undefined ? undefined : parseAcceptUnknown(flags['accept-unknown'])
    if (notifyEmail) requireMailer('notify_email', this.env).close()
    const cacheTtlMs = parseDuration(flags['cache-ttl'], 'cache-ttl', {min: 60_000, max: 365 * 24 * 3600_000})
    const stages = optedInStages(flags)
    const excludeDomains = flags.exclude === undefined ? undefined : this.excluding(await readExcludeDomains(flags.exclude))
    if (!flags.detach) await checkOutputDir(flags['output-dir'])

    // In-process workers need a session of their own: refused (before a run is created) on a transaction-mode pooler.
    const db = await this.database({schema: true, session: !flags.detach})
    const run = await createRun(db, {
      criteria,
      size,
      provider,
      options: {
        simulation,
        outputDir: flags['output-dir'],
        notifyEmail,
        acceptUnknown,
        cacheTtlMs,
        yieldCheckAfter: flags['yield-check-after'],
        ...(flags.fresh ? {fresh: true} : {}),
        ...(flags['include-delivered'] ? {includeDelivered: true} : {}),
        ...(stages.length > 0 ? {stages} : {}),
      },
      maxUsd: flags['max-usd'],
      excludeDomains,
    })
    if (flags.detach) {
      this.info(`Run ${run.id} created; ${describeRunWorkers(await workersForRun(db, run.id))}.`)
      this.info(`Follow it to its end: rvx runs watch ${run.id} (when it is done, rvx runs export ${run.id} writes its CSVs)`)
      if (notifyEmail) this.info(`rvx monitor mails ${notifyEmail} when it ends (keep one running, with SMTP_URL set)`)
      return {runId: run.id, status: run.status, detached: true}
    }

    return {
      ...(await this.driveAndReport(run.id, {
        concurrency: flags.concurrency ?? defaultConcurrency(),
        outputDir: flags['output-dir'],
        format: flags.format,
        timeoutMs,
        pauseOnExit: flags['pause-on-exit'],
      })),
      detached: false,
    }
  }
}
