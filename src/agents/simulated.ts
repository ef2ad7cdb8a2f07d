import {
  type AgentAnswer,
  type AgentRequest,
  type CallContext,
  type CandidateCompany,
  type CheckedContact,
  type FoundContact,
  noRateInfo,
  type ResearchProvider,
  type SiteChecks,
  type SiteFacts,
} from '../pipeline/provider.js'
import {sleep} from '../runtime/backoff.js'
import {PermanentError, SnoozeError, TransientError} from '../runtime/errors.js'
import {WebChecks} from './checks.js'
import {costUsd} from './prices.js'
import {DEFAULT_SIMULATION, type SimulationOptions} from './simulation-options.js'
import {SimulatedWeb} from './simulated/web.js'
import {SIMULATED_ANSWERS} from './simulated/answers.js'

import {SIMULATED_MODEL} from './models.js'

export {SIMULATED_MODEL} from './models.js'
export {DEFAULT_SIMULATION, parseFaults, parseLatency, type SimulationOptions, simulationOptions} from './simulation-options.js'

/**
 * The simulated world's checks: rvx's own checks (WebChecks) reading the
 * simulated web and DNS. A company's truth is derived from the claims its row
 * carries, which the site check is given.
 */
class SimulatedChecks implements SiteChecks {
  private readonly claims = new Map<string, {state?: string | null; city?: string | null; pms?: string | null}>()
  private readonly checks: WebChecks
  readonly linkedinHosts = ['linkedin.example']

  constructor(seed: number) {
    this.checks = new WebChecks(new SimulatedWeb(seed, (domain) => this.claims.get(domain)), {linkedinHosts: this.linkedinHosts})
  }

  checkSite(company: CandidateCompany, signal: AbortSignal): Promise<SiteFacts> {
    this.claims.set(company.domain, {state: company.state, city: company.city, pms: company.pms})
    return this.checks.checkSite(company, signal)
  }

  checkContact(contact: FoundContact, ownDomains: string[], signal: AbortSignal): Promise<CheckedContact> {
    return this.checks.checkContact(contact, ownDomains, signal)
  }

  readPage(url: string, signal: AbortSignal): Promise<{url: string; status: number; text: string}> {
    return this.checks.readPage(url, signal)
  }
}

/**
 * An offline, deterministic world of property-management companies, for
 * demos, load and chaos tests. For a given seed and criteria the same
 * companies exist, with the same facts and contacts; the supply is finite, so
 * shortfalls happen. Everything it makes is marked simulated and lives under
 * the reserved .example domain. Latency and faults are injected on request.
 */
export class SimulatedProvider implements ResearchProvider {
  readonly name = 'simulated'
  readonly simulated = true
  readonly checks: SiteChecks
  readonly models = [SIMULATED_MODEL]
  readonly identity: string

  constructor(private readonly options: SimulationOptions = DEFAULT_SIMULATION) {
    this.checks = new SimulatedChecks(options.seed)
    this.identity = `simulated ${SIMULATED_MODEL} seed ${options.seed}`
  }

  /** The world's answer to the stage's request, validated by the stage's schema like a model's. */
  async agent<T>(request: AgentRequest<T>, ctx: CallContext): Promise<AgentAnswer<T>> {
    const answer = SIMULATED_ANSWERS[request.stage]
    if (!answer) throw new PermanentError(`the simulated world does not answer the ${request.stage} stage`)
    await this.call(ctx, ...answer.tokens)
    const {value, seen = []} = answer.answer(request.input, {seed: this.options.seed, supply: this.options.supply})
    return {value: request.schema.parse(value), seen}
  }

  /** One simulated model call: admitted like a real one (its budget; the simulated world has no quota to pace), its latency, usage, cost and injected faults. */
  private async call(ctx: CallContext, inputTokens: number, outputTokens: number): Promise<void> {
    const model = SIMULATED_MODEL
    const admission = await ctx.admit({quota: null, inputTokens, outputTokens, maxUsd: costUsd(model, inputTokens, 0, outputTokens)})
    const [min, max] = this.options.latencyMs
    const started = Date.now()
    const usage = {provider: 'simulated', model, inputTokens, outputTokens, cachedTokens: 0, latencyMs: 0}
    try {
      if (max > 0) await sleep(min + Math.random() * (max - min), ctx.signal)
      if (ctx.signal.aborted) throw new Error('aborted')
    } catch (error) {
      await admission.settle({usage: {...usage, outputTokens: 0, costUsd: 0, outcome: 'error'}, rate: noRateInfo(0)})
      throw error
    }

    const f = this.options.faults
    const roll = Math.random()
    usage.latencyMs = Date.now() - started
    const paid = {...usage, costUsd: costUsd(model, inputTokens, 0, outputTokens)}
    if (roll < f.crash) {
      // The worker process dies mid-task, as if the OOM killer came by.
      process.kill(process.pid, 'SIGKILL')
      await sleep(60_000)
    }

    if (roll < f.crash + f.transient) {
      await admission.settle({usage: {...paid, outcome: 'error'}, rate: noRateInfo(503)})
      throw new TransientError('simulated upstream error (HTTP 503)')
    }

    if (roll < f.crash + f.transient + f.rate_limit) {
      await admission.settle({usage: {...usage, outputTokens: 0, costUsd: 0, outcome: 'rate_limited'}, rate: noRateInfo(429)})
      throw new SnoozeError('simulated rate limit (HTTP 429, Retry-After: 1)', 1000)
    }

    const malformed = roll < f.crash + f.transient + f.rate_limit + f.malformed
    await admission.settle({usage: {...paid, outcome: malformed ? 'malformed' : 'ok'}, rate: noRateInfo(200)})
    if (malformed) throw new Error('simulated malformed model output (failed schema validation after repair)')
  }
}
