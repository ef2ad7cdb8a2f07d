import OpenAI from 'openai'
import type {ChatCompletionMessageParam, ChatCompletionTool} from 'openai/resources/chat/completions'
import {z} from 'zod'

import type {Criteria} from '../pipeline/criteria.js'
import {PermanentError, SnoozeError, retryAfterMs} from '../runtime/errors.js'
import {
  type CallContext,
  type CandidateCompany,
  type CompanyResearch,
  type FoundContact,
  type LlmUsage,
  ProviderUnusableError,
  type ResearchProvider,
} from '../pipeline/provider.js'
import {ContactsOutput, DiscoveryOutput, ResearchOutput} from './schemas.js'
import {detectPms} from './tools/detect-pms.js'
import {fetchPage} from './tools/fetch-page.js'
import {searchBackendFromEnv, type SearchBackend} from './tools/search-web.js'

export interface OpenAIProviderOptions {
  apiKey: string
  baseURL?: string
  model: string
  /** Per model call. */
  timeoutMs: number
  /** Tool-calling turns before the agent must answer. */
  maxTurns: number
  /** A search backend, 'hosted' for OpenAI's own web search (a search model answering with citations), or none. */
  search: SearchBackend | 'hosted' | null
  /** The model behind hosted search. */
  searchModel?: string
  allowPrivateFetch?: boolean
}

export function openAIOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): OpenAIProviderOptions {
  const apiKey = env.OPENAI_API_KEY
  if (!apiKey) throw new PermanentError('OPENAI_API_KEY is not set: set it, or use --provider simulated')
  return {
    apiKey,
    baseURL: env.OPENAI_BASE_URL || undefined,
    model: env.OPENAI_MODEL || 'gpt-4.1-mini',
    timeoutMs: Number(env.RVX_LLM_TIMEOUT_MS) || 120_000,
    maxTurns: 12,
    // On OpenAI's own endpoint with no backend configured, its hosted web search.
    search: searchBackendFromEnv(env) ?? (env.OPENAI_BASE_URL ? null : 'hosted'),
    searchModel: env.OPENAI_SEARCH_MODEL || 'gpt-4o-mini-search-preview',
    allowPrivateFetch: env.RVX_ALLOW_PRIVATE_FETCH === '1',
  }
}

/** USD per million tokens (input, cached input, output); unknown models cost 0 and say so by name. */
const PRICES: Record<string, [number, number, number]> = {
  'gpt-4.1': [2, 0.5, 8],
  'gpt-4.1-mini': [0.4, 0.1, 1.6],
  'gpt-4.1-nano': [0.1, 0.025, 0.4],
  'gpt-4o': [2.5, 1.25, 10],
  'gpt-4o-mini': [0.15, 0.075, 0.6],
}

export function estimateCost(model: string, input: number, cached: number, output: number): number {
  const price = PRICES[model] ?? PRICES[Object.keys(PRICES).find((k) => model.startsWith(k)) ?? '']
  if (!price) return 0
  return ((input - cached) * price[0] + cached * price[1] + output * price[2]) / 1_000_000
}

const SYSTEM = `You research residential property-management (PM) companies for a B2B sales team.
Use the tools: search_web to find companies, fetch_page to read their sites, detect_pms to learn their property-management software from tenant/owner portal links (strongest evidence).
Facts only from what you read: unknown stays "unknown" or null, never guessed. Cite the pages you used in "sources".
When done, answer with one JSON object only (no prose, no code fences) matching the schema you are given.`

/**
 * Research with an OpenAI (or OpenAI-compatible) model: an agent loop whose
 * tools rvx runs, a zod-validated JSON answer with one repair turn, usage
 * recorded for every call, and errors shaped for the runtime (429 snoozes,
 * 401/403 fail at once naming the variable to fix, 5xx and timeouts retry).
 */
export class OpenAIProvider implements ResearchProvider {
  readonly name = 'openai'
  readonly simulated = false
  private readonly client: OpenAI
  private readonly search: SearchBackend | null

  constructor(private readonly options: OpenAIProviderOptions) {
    // One retry policy: the runtime's. The SDK does not retry on its own.
    this.client = new OpenAI({apiKey: options.apiKey, baseURL: options.baseURL, maxRetries: 0, timeout: options.timeoutMs})
    this.search = options.search === 'hosted' ? this.hostedSearch(options.searchModel ?? 'gpt-4o-mini-search-preview') : options.search
  }

  /** OpenAI's hosted web search: a search model answers the query; its URL citations are the results. */
  private hostedSearch(model: string): SearchBackend {
    return {
      name: 'openai-hosted',
      search: async (query, signal) => {
        const res = await this.client.chat.completions.create({model, web_search_options: {}, messages: [{role: 'user', content: query}]}, {signal})
        const message = res.choices[0]?.message
        const results = (message?.annotations ?? [])
          .filter((a) => a.type === 'url_citation')
          .map((a) => ({title: a.url_citation.title, url: a.url_citation.url, snippet: ''}))
        return [...results, {title: 'summary', url: '', snippet: (message?.content ?? '').slice(0, 4000)}]
      },
    }
  }

  async discover(input: {criteria: Criteria; want: number; exclude: string[]; round: number}, ctx: CallContext): Promise<CandidateCompany[]> {
    const out = await this.agent(
      `Find ${input.want} property-management companies matching these criteria: ${JSON.stringify(input.criteria)}.
Skip these domains (already known or excluded): ${input.exclude.slice(0, 500).join(', ') || 'none'}.
Return {"companies": [{"name", "domain", "website", "city", "state", "pms", "units_estimate", "sources"}]}. Domains are bare hosts like acme-pm.com.`,
      DiscoveryOutput,
      ctx,
    )
    return out.companies.map((c) => ({
      name: c.name,
      domain: c.domain,
      website: c.website ?? null,
      city: c.city ?? null,
      state: c.state ?? null,
      pms: c.pms ?? null,
      unitsEstimate: c.units_estimate ?? null,
      sources: c.sources,
    }))
  }

  async research(input: {criteria: Criteria; company: CandidateCompany}, ctx: CallContext): Promise<CompanyResearch> {
    const c = input.company
    const out = await this.agent(
      `Qualify ${c.name} (${c.website ?? c.domain}) against ${JSON.stringify(input.criteria)}.
Fit rules: mostly single-family / small multifamily residential management qualifies; HOA-only, large-multifamily-only, pure brokerage or no active management disqualify; the criteria's pms is a hard requirement when given (use detect_pms).
Units: estimate from listings x ~10 and team size; tier low <50, medium 50-150, high 150-1000, enterprise >1000.
Return {"fit": "yes"|"no"|"unknown", "score": 0-100, "tier", "confidence": "low"|"medium"|"high", "reasons": [...], "sources": [...], "pms", "units_estimate", "city", "state"}.`,
      ResearchOutput,
      ctx,
    )
    return {
      fit: out.fit,
      score: out.score,
      tier: out.tier,
      confidence: out.confidence,
      reasons: out.reasons,
      sources: out.sources,
      pms: out.pms ?? null,
      unitsEstimate: out.units_estimate ?? null,
      city: out.city ?? null,
      state: out.state ?? null,
    }
  }

  async findContacts(input: {company: CandidateCompany; min: number; max: number}, ctx: CallContext): Promise<FoundContact[]> {
    const c = input.company
    const out = await this.agent(
      `Find ${input.min}-${input.max} decision makers at ${c.name} (${c.website ?? c.domain}).
Tier 1: owner, co-owner, broker/owner, managing or designated broker, president, principal, CEO, COO, managing partner. Tier 2: director of property management, VP operations, portfolio manager, associate broker. Tier 3: operations manager. Tier 4 (leasing, admin, maintenance) only if nothing better exists.
No generic inboxes (info@, office@); an email on a PMS vendor's domain is not the company's.
Return {"contacts": [{"full_name", "title", "tier": 1-4, "email", "phone", "linkedin_url", "confidence", "sources"}]}.`,
      ContactsOutput,
      ctx,
    )
    return out.contacts
      .filter((p) => !p.email || !/^(info|office|contact|admin|hello|support)@/i.test(p.email))
      .map((p) => ({
        fullName: p.full_name,
        title: p.title,
        tier: p.tier as 1 | 2 | 3 | 4,
        email: p.email ?? null,
        phone: p.phone ?? null,
        linkedinUrl: p.linkedin_url ?? null,
        confidence: p.confidence,
        sources: p.sources,
      }))
  }

  /** The agent loop: call, run requested tools, repeat; validate the answer, repairing once. */
  async agent<T extends z.ZodTypeAny>(task: string, schema: T, ctx: CallContext): Promise<z.infer<T>> {
    const messages: ChatCompletionMessageParam[] = [
      {role: 'system', content: SYSTEM},
      {role: 'user', content: `${task}\n\nJSON schema of the answer:\n${JSON.stringify(z.toJSONSchema(schema, {io: 'input'}))}`},
    ]
    let repaired = false
    for (let turn = 0; turn < this.options.maxTurns; turn++) {
      const last = turn === this.options.maxTurns - 1
      const message = await this.complete(messages, last ? [] : this.tools(), ctx)
      messages.push(message)
      if (message.tool_calls?.length) {
        for (const call of message.tool_calls) {
          if (call.type !== 'function') continue
          const content = await this.runTool(call.function.name, call.function.arguments, ctx.signal)
          messages.push({role: 'tool', tool_call_id: call.id, content})
        }

        continue
      }

      const parsed = parseAnswer(message.content ?? '', schema)
      if (parsed.ok) return parsed.value
      if (repaired) throw new PermanentError(`the model's answer failed validation after a repair turn: ${parsed.problem}`)
      repaired = true
      messages.push({role: 'user', content: `Your answer did not validate: ${parsed.problem}. Reply with only the corrected JSON object, nothing else.`})
    }

    throw new PermanentError(`the model did not answer within ${this.options.maxTurns} turns`)
  }

  private tools(): ChatCompletionTool[] {
    const tools: ChatCompletionTool[] = [
      {
        type: 'function',
        function: {
          name: 'fetch_page',
          description: 'Fetch a public web page and return its readable text.',
          parameters: {type: 'object', properties: {url: {type: 'string'}}, required: ['url']},
        },
      },
      {
        type: 'function',
        function: {
          name: 'detect_pms',
          description: "Detect a company's property-management software from its website's portal links.",
          parameters: {type: 'object', properties: {domain: {type: 'string'}}, required: ['domain']},
        },
      },
    ]
    if (this.search) {
      tools.push({
        type: 'function',
        function: {
          name: 'search_web',
          description: 'Search the web; returns titles, URLs and snippets.',
          parameters: {type: 'object', properties: {query: {type: 'string'}}, required: ['query']},
        },
      })
    }

    return tools
  }

  /** Tools never throw into the loop: a failure becomes text the model can react to. */
  private async runTool(name: string, rawArgs: string, signal: AbortSignal): Promise<string> {
    let args: Record<string, string>
    try {
      args = JSON.parse(rawArgs || '{}')
    } catch {
      return `error: arguments are not valid JSON`
    }

    try {
      if (name === 'fetch_page') {
        const page = await fetchPage(String(args.url), {signal, allowPrivate: this.options.allowPrivateFetch})
        return `${page.url} (HTTP ${page.status})\n${page.text.slice(0, 12_000)}`
      }

      if (name === 'detect_pms') {
        const found = await detectPms(String(args.domain), {signal, allowPrivate: this.options.allowPrivateFetch})
        return JSON.stringify(found)
      }

      if (name === 'search_web' && this.search) {
        return JSON.stringify(await this.search.search(String(args.query), signal))
      }

      return `error: unknown tool ${name}`
    } catch (error) {
      return `error: ${(error as Error).message}`
    }
  }

  private async complete(messages: ChatCompletionMessageParam[], tools: ChatCompletionTool[], ctx: CallContext) {
    const started = Date.now()
    const usage: Omit<LlmUsage, 'outcome'> = {
      provider: this.name,
      model: this.options.model,
      inputTokens: 0,
      outputTokens: 0,
      cachedTokens: 0,
      latencyMs: 0,
      costUsd: 0,
    }
    try {
      const res = await this.client.chat.completions.create({model: this.options.model, messages, ...(tools.length > 0 ? {tools} : {})}, {signal: ctx.signal})
      const u = res.usage
      const cached = u?.prompt_tokens_details?.cached_tokens ?? 0
      ctx.record({
        ...usage,
        inputTokens: u?.prompt_tokens ?? 0,
        outputTokens: u?.completion_tokens ?? 0,
        cachedTokens: cached,
        latencyMs: Date.now() - started,
        costUsd: estimateCost(this.options.model, u?.prompt_tokens ?? 0, cached, u?.completion_tokens ?? 0),
        outcome: 'ok',
      })
      const message = res.choices[0]?.message
      if (!message)
        throw new ProviderUnusableError(
          `the model ${this.options.model} returned no choices: check OPENAI_MODEL${this.options.baseURL ? ' and OPENAI_BASE_URL' : ''}`,
        )
      return message
    } catch (error) {
      if (!(error instanceof OpenAI.APIError)) throw error
      const status = error.status
      ctx.record({...usage, latencyMs: Date.now() - started, outcome: status === 429 ? 'rate_limited' : 'error'})
      if (status === 401 || status === 403) {
        throw new ProviderUnusableError(
          `the model API refused the credentials (HTTP ${status}): check OPENAI_API_KEY${this.options.baseURL ? ' and OPENAI_BASE_URL' : ''}`,
        )
      }

      if (status === 429 && (error as {code?: string}).code === 'insufficient_quota') {
        throw new ProviderUnusableError('the OpenAI account behind OPENAI_API_KEY has no quota left: check its billing')
      }

      if ((error as {code?: string}).code === 'context_length_exceeded') {
        throw new ProviderUnusableError(
          `the model ${this.options.model} cannot take rvx's prompts (context length exceeded): use a model with a larger context (OPENAI_MODEL)`,
        )
      }

      if (status === 429) throw new SnoozeError(`rate limited by the model API (HTTP 429)`, retryAfterMs(error.headers), {cause: error})
      throw error
    }
  }
}

function parseAnswer<T extends z.ZodTypeAny>(content: string, schema: T): {ok: true; value: z.infer<T>} | {ok: false; problem: string} {
  const text = content
    .trim()
    .replace(/^```(?:json)?\s*/i, '')
    .replace(/\s*```$/, '')
  if (!text) return {ok: false, problem: 'the answer was empty'}
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    return {ok: false, problem: 'the answer is not JSON'}
  }

  const result = schema.safeParse(json)
  if (result.success) return {ok: true, value: result.data}
  const issue = result.error.issues[0]
  return {ok: false, problem: `${issue.path.join('.') || '(root)'}: ${issue.message}`}
}
