/**
 * A quota-enforcing, billing OpenAI-compatible chat-completions server on
 * 127.0.0.1 for the quota bench (bench/quota.ts).
 *
 * Quota: a sliding 60-second window per limit. A request is admitted when
 * fewer than `rpm` requests were admitted in the last 60 s and the tokens of
 * those requests plus its own stay within `tpm`; otherwise it is answered 429
 * at once. Only admitted requests count toward the window (a 429 does not).
 * A request's tokens are its prompt tokens plus the completion tokens of the
 * answer it gets, counted when it is admitted.
 *
 * Variants: (a) 429 + `retry-after` (whole seconds until the request would be
 * admitted); (b) the same plus OpenAI's `x-ratelimit-*` headers on every
 * answer, 200 and 429 alike; (c) a bare 429, no rate-limit header at all.
 *
 * Billing: every admitted request is billed when it is admitted, at
 * gpt-4.1-mini's list prices, whether or not the client is still there when
 * the answer is ready (a provider bills the tokens it generated). Tokens are
 * estimated as characters / 4 (prompt: the tools and messages as JSON;
 * completion: the content or the tool calls as JSON). Prompt caching as
 * OpenAI does it: a prompt of at least 1,024 tokens whose leading messages
 * were sent before (within 10 minutes) has that prefix cached, in steps of
 * 128 tokens.
 */
import {createHash} from 'node:crypto'
import http from 'node:http'
import type {AddressInfo} from 'node:net'

export type QuotaVariant = 'a' | 'b' | 'c'

export const VARIANTS: Record<QuotaVariant, string> = {
  a: '429 + retry-after only',
  b: '429 + retry-after, x-ratelimit-* headers on every answer',
  c: 'bare 429: no retry-after, no rate-limit headers',
}

/** USD per million tokens: OpenAI's list prices for gpt-4.1-mini (input, cached input, output), as a provider bills them. */
export const BILLED_PRICES = {model: 'gpt-4.1-mini', input: 0.4, cached: 0.1, output: 1.6}

const WINDOW_MS = 60_000
const CACHE_MIN_TOKENS = 1024
const CACHE_STEP = 128
const CACHE_TTL_MS = 10 * 60_000
const CACHE_MAX_ENTRIES = 200_000
/** Bound on the request body read (the biggest prompt rvx sends is far below it). */
const MAX_BODY = 4 * 1024 * 1024

export const tokensOf = (text: string) => Math.ceil(text.length / 4)

/** An assistant message: text, or tool calls. */
export interface ModelMessage {
  content?: string | null
  tool_calls?: Array<{id: string; type: 'function'; function: {name: string; arguments: string}}>
}

/** What the scripted model answers one request with: a message, or an error for a request it does not understand. */
export type ModelReply = {stage: string; turn: number; message: ModelMessage} | {stage: string; turn: number; error: string}

/** One request as the server saw it. */
export interface ServedCall {
  /** Arrival, ms since the epoch. */
  at: number
  /** When the answer was sent or the client went away. */
  doneAt: number
  status: number
  stage: string
  /** Model turns of this conversation before this one (assistant messages in the request). */
  turn: number
  inputTokens: number
  cachedTokens: number
  outputTokens: number
  /** Billed: admitted requests only. */
  costUsd: number
  /** For a 429: the limit it hit. */
  limitedBy?: 'requests' | 'tokens'
  /** Admitted and billed, but the client closed the connection before the answer. */
  abandoned: boolean
  /** This turn of this conversation was admitted before (since the last resetConversations): paid again. */
  repeat: boolean
}

export interface QuotaServerOptions {
  variant: QuotaVariant
  rpm: number
  tpm: number
  /** Answer time of an admitted request, uniform in [min, max]. */
  latencyMs: [number, number]
  model: (body: any) => ModelReply
}

export class QuotaServer {
  readonly calls: ServedCall[] = []
  url = ''
  private server?: http.Server
  private readonly window: Array<{at: number; tokens: number}> = []
  private windowTokens = 0
  private readonly prefixes = new Map<string, number>()
  private conversations = new Map<string, number>()
  private open = 0
  private seq = 0

  constructor(readonly options: QuotaServerOptions) {}

  /** Requests read but not yet answered (or abandoned). */
  get inFlight(): number {
    return this.open
  }

  /** What the sliding window holds now: admitted requests and their tokens in the last 60 s. */
  windowNow(): {requests: number; tokens: number} {
    this.expire(Date.now())
    return {requests: this.window.length, tokens: this.windowTokens}
  }

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => this.handle(req, res))
    this.server.keepAliveTimeout = 30_000
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve))
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/v1`
    return this
  }

  /** Forgets which conversation turns were answered: "paid again" counts from here (a new run). */
  resetConversations(): void {
    this.conversations = new Map()
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections()
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()))
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (d: Buffer) => {
      size += d.length
      if (size > MAX_BODY) req.destroy()
      else chunks.push(d)
    })
    req.on('end', () => {
      let body: any
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
      } catch {
        return send(res, 400, {}, {error: {message: 'the body is not JSON', type: 'invalid_request_error', code: null}})
      }

      if (req.method !== 'POST' || !req.url?.endsWith('/chat/completions') || !Array.isArray(body?.messages)) {
        return send(res, 404, {}, {error: {message: `no such endpoint here: ${req.method} ${req.url}`, type: 'invalid_request_error', code: null}})
      }

      this.complete(body, res)
    })
  }

  private complete(body: any, res: http.ServerResponse): void {
    const at = Date.now()
    const reply = this.options.model(body)
    const call: ServedCall = {
      at,
      doneAt: at,
      status: 200,
      stage: reply.stage,
      turn: reply.turn,
      inputTokens: 0,
      cachedTokens: 0,
      outputTokens: 0,
      costUsd: 0,
      abandoned: false,
      repeat: false,
    }
    this.calls.push(call)
    if ('error' in reply) {
      call.status = 400
      return send(res, 400, {}, {error: {message: reply.error, type: 'invalid_request_error', code: null}})
    }

    const units = [JSON.stringify({model: body.model, tools: body.tools ?? []}), ...body.messages.map((m: unknown) => JSON.stringify(m))]
    const prompt = units.join('')
    const completion = reply.message.tool_calls ? JSON.stringify(reply.message.tool_calls) : (reply.message.content ?? '')
    call.inputTokens = tokensOf(prompt)
    call.outputTokens = tokensOf(completion)
    const tokens = call.inputTokens + call.outputTokens

    this.expire(at)
    const overRequests = this.window.length >= this.options.rpm
    const overTokens = this.windowTokens + tokens > this.options.tpm
    if (overRequests || overTokens) {
      call.status = 429
      call.limitedBy = overRequests ? 'requests' : 'tokens'
      const waitMs = overRequests ? this.window[0].at + WINDOW_MS - at : this.tokensFreeAt(this.windowTokens + tokens - this.options.tpm) - at
      const headers: Record<string, string> = {}
      if (this.options.variant !== 'c') headers['retry-after'] = String(Math.max(1, Math.ceil(waitMs / 1000)))
      if (this.options.variant === 'b') Object.assign(headers, this.rateHeaders(at))
      const limit = overRequests
        ? `requests per min (RPM): Limit ${this.options.rpm}, Used ${this.window.length}, Requested 1`
        : `tokens per min (TPM): Limit ${this.options.tpm}, Used ${this.windowTokens}, Requested ${tokens}`
      return send(res, 429, headers, {
        error: {
          message: `Rate limit reached for ${body.model} in organization org-bench on ${limit}. Please try again in ${goDuration(Math.max(1, waitMs))}.`,
          type: overRequests ? 'requests' : 'tokens',
          param: null,
          code: 'rate_limit_exceeded',
        },
      })
    }

    // Admitted: counted in the window, billed now.
    this.window.push({at, tokens})
    this.windowTokens += tokens
    call.cachedTokens = this.cached(units, call.inputTokens, at)
    call.costUsd =
      ((call.inputTokens - call.cachedTokens) * BILLED_PRICES.input + call.cachedTokens * BILLED_PRICES.cached + call.outputTokens * BILLED_PRICES.output) /
      1_000_000
    const conversation = createHash('sha1')
      .update(String(body.messages[1]?.content ?? ''))
      .digest('hex')
    const answered = this.conversations.get(conversation) ?? -1
    call.repeat = reply.turn <= answered
    this.conversations.set(conversation, Math.max(answered, reply.turn))
    const headers = this.options.variant === 'b' ? this.rateHeaders(at) : {}

    const [min, max] = this.options.latencyMs
    this.open++
    let settled = false
    const settle = (abandoned: boolean) => {
      if (settled) return
      settled = true
      this.open--
      call.doneAt = Date.now()
      call.abandoned = abandoned
    }

    const timer = setTimeout(
      () => {
        if (res.destroyed) return settle(true)
        settle(false)
        send(res, 200, headers, {
          id: `chatcmpl-${++this.seq}`,
          object: 'chat.completion',
          created: Math.floor(at / 1000),
          model: body.model,
          choices: [
            {
              index: 0,
              finish_reason: reply.message.tool_calls ? 'tool_calls' : 'stop',
              message: {role: 'assistant', content: reply.message.content ?? null, ...(reply.message.tool_calls ? {tool_calls: reply.message.tool_calls} : {})},
            },
          ],
          usage: {
            prompt_tokens: call.inputTokens,
            completion_tokens: call.outputTokens,
            total_tokens: call.inputTokens + call.outputTokens,
            prompt_tokens_details: {cached_tokens: call.cachedTokens},
          },
        })
      },
      min + Math.random() * (max - min),
    )
    res.on('close', () => {
      if (settled) return
      clearTimeout(timer)
      settle(true)
    })
  }

  /** Drops what left the window. */
  private expire(now: number): void {
    while (this.window.length > 0 && this.window[0].at <= now - WINDOW_MS) this.windowTokens -= this.window.shift()!.tokens
  }

  /** When `needed` tokens will have left the window. */
  private tokensFreeAt(needed: number): number {
    let freed = 0
    for (const entry of this.window) {
      freed += entry.tokens
      if (freed >= needed) return entry.at + WINDOW_MS
    }

    return Date.now() + WINDOW_MS
  }

  /**
   * OpenAI's names and formats. Remaining: the limit less what the window holds now. Reset: the time until the limit
   * is back to its initial state ("resets to its initial state", OpenAI's definition): here, until the newest counted
   * request leaves the window.
   */
  private rateHeaders(now: number): Record<string, string> {
    const newest = this.window.at(-1)
    const reset = goDuration(newest ? newest.at + WINDOW_MS - now : 0)
    return {
      'x-ratelimit-limit-requests': String(this.options.rpm),
      'x-ratelimit-remaining-requests': String(Math.max(0, this.options.rpm - this.window.length)),
      'x-ratelimit-reset-requests': reset,
      'x-ratelimit-limit-tokens': String(this.options.tpm),
      'x-ratelimit-remaining-tokens': String(Math.max(0, this.options.tpm - this.windowTokens)),
      'x-ratelimit-reset-tokens': reset,
    }
  }

  /** Cached prompt tokens: the longest run of leading units seen within the TTL, if the prompt is long enough to be cached. */
  private cached(units: string[], promptTokens: number, now: number): number {
    const hash = createHash('sha1')
    let length = 0
    let cachedLength = 0
    const keys: string[] = []
    for (const unit of units) {
      hash.update(unit)
      length += unit.length
      const key = hash.copy().digest('hex')
      keys.push(key)
      const seen = this.prefixes.get(key)
      if (seen !== undefined && now - seen < CACHE_TTL_MS) cachedLength = length
    }

    for (const key of keys) {
      this.prefixes.delete(key)
      this.prefixes.set(key, now)
    }

    while (this.prefixes.size > CACHE_MAX_ENTRIES) this.prefixes.delete(this.prefixes.keys().next().value!)
    const cached = Math.ceil(cachedLength / 4)
    return promptTokens >= CACHE_MIN_TOKENS && cached >= CACHE_MIN_TOKENS ? Math.floor(cached / CACHE_STEP) * CACHE_STEP : 0
  }
}

function send(res: http.ServerResponse, status: number, headers: Record<string, string>, body: unknown): void {
  if (res.destroyed) return
  res.writeHead(status, {'content-type': 'application/json', ...headers})
  res.end(JSON.stringify(body))
}

/** A duration as OpenAI's rate-limit headers write it (Go's format): 20ms, 8.64s, 6m0s, 1m2.5s. */
export function goDuration(ms: number): string {
  const whole = Math.max(0, Math.round(ms))
  if (whole < 1000) return `${whole}ms`
  const seconds = (s: number) => `${Number(s.toFixed(3))}s`
  if (whole < 60_000) return seconds(whole / 1000)
  const minutes = Math.floor(whole / 60_000)
  return `${minutes}m${seconds((whole - minutes * 60_000) / 1000)}`
}
