import {PermanentError} from '../runtime/errors.js'
import type {Criteria} from './criteria.js'

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

/** Research's verdict on one company: evidence, never guesses (unknown stays unknown). */
export interface CompanyResearch {
  fit: 'yes' | 'no' | 'unknown'
  score: number
  tier: 'low' | 'medium' | 'high' | 'enterprise' | 'unknown'
  confidence: 'low' | 'medium' | 'high'
  reasons: string[]
  sources: string[]
  pms?: string | null
  unitsEstimate?: number | null
  city?: string | null
  state?: string | null
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
}

export interface CallContext {
  signal: AbortSignal
  /** Every model call reports its usage here, success or not. */
  record(usage: LlmUsage): void
}

/** The three research steps, whatever does them (a model with tools, or the simulated world). */
export interface ResearchProvider {
  readonly name: string
  readonly simulated: boolean
  discover(input: {criteria: Criteria; want: number; exclude: string[]; round: number}, ctx: CallContext): Promise<CandidateCompany[]>
  research(input: {criteria: Criteria; company: CandidateCompany}, ctx: CallContext): Promise<CompanyResearch>
  findContacts(input: {company: CandidateCompany; min: number; max: number}, ctx: CallContext): Promise<FoundContact[]>
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
