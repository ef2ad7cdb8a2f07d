import type {z} from 'zod'

import {PermanentError} from '../runtime/errors.js'

/** A company found by discovery, before research. */
export interface CandidateCompany {
  name: string
  domain: string
  website?: string | null
  city?: string | null
  state?: string | null
  pms?: string | null
  unitsEstimate?: number | null
  sources: string[]
}

/** A criterion a run can have, judged one by one (units covers units_min and units_max). */
export type CriterionName = 'pms' | 'state' | 'city' | 'units' | 'natural_request'

export type Verdict = 'match' | 'mismatch' | 'unknown'

/** What shows a verdict: the page and a short quote of the text (or link) on it. */
export interface Evidence {
  url: string
  quote: string
}

/** The model's verdict on one criterion, with the evidence it cites. */
export interface ModelVerdict {
  verdict: Verdict
  evidence: Evidence[]
}

/** What a company manages, as far as fit goes (docs/domain.md, "Fit"). */
export type Portfolio = 'residential' | 'hoa_only' | 'large_multifamily_only' | 'brokerage_only' | 'no_active_management' | 'unknown'

/**
 * Research's findings on one company: a verdict per criterion with evidence,
 * and the facts the fit rules need. Unknown stays unknown, never guessed. The
 * pipeline decides qualification and score from these and its own checks.
 */
export interface CompanyResearch {
  verdicts: Partial<Record<CriterionName, ModelVerdict>>
  portfolio: Portfolio
  unitsEstimate: number | null
  employeesEstimate: number | null
  confidence: 'low' | 'medium' | 'high'
  reasons: string[]
  sources: string[]
  pms?: string | null
  city?: string | null
  state?: string | null
  /** Every URL this call actually read (fetched, or saw in a search result): cited evidence counts only if it is here. */
  seen: string[]
}

/** The deterministic checks of a company's own site (no model involved). */
export interface SiteFacts {
  domain: string
  /** The domain answers and is the company's own site, not a directory or social profile. */
  site: {verdict: Verdict; reason: string; evidence: Evidence[]}
  /** The PMS its portal, login and payment links point at; a "powered by" badge is weak evidence; a mere mention is none. */
  pms: {vendor: string | null; strength: 'portal' | 'badge' | null; evidence: Evidence[]; otherVendors: string[]}
  /** A postal address on its own pages (schema.org PostalAddress, or a US street address in its text). */
  address: {street: string | null; city: string | null; state: string; postalCode: string | null; evidence: Evidence} | null
  /** Domains the site shows as its own: its host, and those of its mailto: links. */
  ownDomains: string[]
  /** Pages read. */
  pages: string[]
}

export type EmailStatus = 'valid_domain' | 'no_mx' | 'invalid' | 'unchecked'

/** A contact's reachable details after the checks: what was wrong is dropped (name and title stay). */
export interface CheckedContact {
  email: string | null
  /** Null when the contact had no email. */
  emailStatus: EmailStatus | null
  linkedinUrl: string | null
  /** One line per thing dropped or doubted, for people. */
  notes: string[]
}

/** The deterministic checks, whatever runs them (the real web and DNS, or the simulated world's). */
export interface SiteChecks {
  checkSite(company: CandidateCompany, signal: AbortSignal): Promise<SiteFacts>
  checkContact(contact: FoundContact, ownDomains: string[], signal: AbortSignal): Promise<CheckedContact>
  /** One page as the checks read it (behind the fetch guard, or from the simulated web): for a stage's own checks. */
  readPage(url: string, signal: AbortSignal): Promise<{url: string; status: number; text: string}>
  /** The hosts whose URLs are LinkedIn's (linkedin.com; linkedin.example in the simulated world). */
  readonly linkedinHosts: readonly string[]
}

export interface FoundContact {
  fullName: string
  title: string
  /** 1 owner/principal ... 4 anyone else. */
  tier: 1 | 2 | 3 | 4
  email?: string | null
  phone?: string | null
  linkedinUrl?: string | null
  confidence: 'low' | 'medium' | 'high'
  sources: string[]
}

export interface LlmUsage {
  provider: string
  model: string
  inputTokens: number
  outputTokens: number
  cachedTokens: number
  latencyMs: number
  costUsd: number
  outcome: 'ok' | 'error' | 'rate_limited' | 'malformed'
  /** Time it waited for its share of the quota. */
  waitedMs?: number
  /** The provider's token counts were missing or not counts: these are rvx's estimates from the request and the answer. */
  estimated?: boolean
}

/** What a provider is about to ask of a model, so the pipeline can pace it fleet-wide and hold its cost against the run's budget. */
export interface CallPlan {
  /** The quota this call counts against: the provider's endpoint and model; null for a provider without one (the simulated world). */
  quota: string | null
  /** Estimates: tokens in (from the prompt), tokens out (at most). */
  inputTokens: number
  outputTokens: number
  /** What the call may cost at most (estimated input, output at its cap); null for a model without a known price. */
  maxUsd: number | null
}

/**
 * What a provider says of its rate limits in one answer, parsed by the provider (its headers, its 429 wording):
 * what the fleet's pacing learns from. Null where the answer did not say.
 */
export interface RateInfo {
  /** The HTTP status (0: no answer came). */
  status: number
  limitRequests: number | null
  limitTokens: number | null
  remainingRequests: number | null
  /** How long a 429 asked the caller to wait. */
  retryAfterMs: number | null
  /** Which limit a 429 says was hit. */
  limitedBy: 'requests' | 'tokens' | null
}

/** How a paid call ended: its usage and what the answer said of the rate limits. */
export interface CallOutcome {
  usage: LlmUsage
  rate: RateInfo
}

/** Nothing said of rate limits (no answer, or a provider without them). */
export function noRateInfo(status: number): RateInfo {
  return {status, limitRequests: null, limitTokens: null, remainingRequests: null, retryAfterMs: null, limitedBy: null}
}

/** A paid call let through: how long it waited for the quota, and how it went (called once, whatever happened). */
export interface Admission {
  waitedMs: number
  /**
   * Records the call's usage (at once, before anything that can fail: it was paid) and settles it: its cost held
   * against the budget until the usage is saved, its quota share corrected by what the answer said. The one way a
   * provider records a call, so none is recorded without being settled.
   */
  settle(outcome: CallOutcome): Promise<void>
}

export interface CallContext {
  signal: AbortSignal
  /**
   * Before every paid call: waits for its share of the fleet's quota and holds
   * its cost against the run's budget. Throws BudgetReachedError when the call
   * would pass the budget, and a SnoozeError when the quota's wait is too long
   * to hold the task for.
   */
  admit(plan: CallPlan): Promise<Admission>
}

/** The tools an agent may be given (the simulated world uses none). */
export type AgentTool = 'search_web' | 'fetch_page' | 'detect_pms'

/** One agent call a stage asks for: the stage brings its prompt, the schema its answer must match, and its tools. */
export interface AgentRequest<T> {
  /** The stage asking (the simulated world answers by it). */
  stage: string
  prompt: string
  /** What the answer must match (validated; one repair turn). */
  schema: z.ZodType<T>
  tools: readonly AgentTool[]
  /** What the prompt was made from, for a provider that reads no prompt (the simulated world). */
  input: unknown
}

export interface AgentAnswer<T> {
  value: T
  /** Every URL this call actually read (fetched, or saw in a search result): cited evidence counts only if it is here. */
  seen: string[]
}

/** Whoever answers a stage's agent calls (a model with tools, or the simulated world), and the checks that verify them. */
export interface ResearchProvider {
  readonly name: string
  readonly simulated: boolean
  readonly checks: SiteChecks
  /** The models its calls are billed for (a budget needs a price for each). */
  readonly models: readonly string[]
  /** What its answers depend on besides the input (model and endpoint, or the simulated world): part of the cache's key. */
  readonly identity: string
  agent<T>(request: AgentRequest<T>, ctx: CallContext): Promise<AgentAnswer<T>>
}

/**
 * The provider cannot work for this run at all (credentials refused, no quota
 * left, the model rejects rvx's requests): no retry fixes it, so the run stops
 * at once as failed with this message as the cause, and continues after the
 * fix with `rvx runs resume`.
 */
export class ProviderUnusableError extends PermanentError {
  constructor(message: string, options?: {cause?: unknown}) {
    super(message, options)
    this.name = 'ProviderUnusableError'
  }
}

/**
 * The next model call would pass the run's budget: the run stops calling
 * models and asks for a decision (`rvx runs resume ID --max-usd N` raises the
 * budget and continues it).
 */
export class BudgetReachedError extends PermanentError {
  constructor(message: string) {
    super(message)
    this.name = 'BudgetReachedError'
  }
}
