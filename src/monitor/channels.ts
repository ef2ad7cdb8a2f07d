import {type Dispatcher, fetch} from 'undici'

import {backoffMs, serverDelayMs, sleep} from '../runtime/backoff.js'
import {errorMessage, retryAfterMs} from '../runtime/errors.js'
import type {Mailer} from './mail.js'

/** What a channel is given to send: open alerts, oldest first. */
export interface Alert {
  id: number
  kind: string
  severity: 'info' | 'warning' | 'critical'
  subject: string
  details: Record<string, unknown>
  createdAt: Date
}

/** Somewhere alerts go. `name` is stable (it keys delivery records); `label` is safe to log. */
export interface AlertChannel {
  readonly name: string
  readonly label: string
  /** Sends the batch as one message; throws when it could not (the batch is retried later). */
  send(alerts: Alert[]): Promise<void>
}

const SEVERITY_MARK = {info: 'ℹ️', warning: '⚠️', critical: '🚨'} as const

/** One line per alert, most severe first: the body of every channel's message. */
export function alertLines(alerts: Alert[]): string[] {
  const order = {critical: 0, warning: 1, info: 2}
  return [...alerts].sort((a, b) => order[a.severity] - order[b.severity] || a.id - b.id).map((a) => `${SEVERITY_MARK[a.severity]} ${a.subject}`)
}

export function alertTitle(alerts: Alert[]): string {
  return alerts.length === 1 ? `rvx: ${alerts[0].subject}` : `rvx: ${alerts.length} alerts`
}

/** A POST that did not get a 2xx; `status` is the last HTTP status, when there was an answer. */
export class PostFailed extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message)
  }
}

/** A 4xx other than 408/429: retrying will not help. */
class HttpRefused extends PostFailed {}

export interface PostOptions {
  body: string
  headers?: Record<string, string>
  /** How the target is named in errors (never the URL: its path may be a secret). */
  label: string
  tries?: number
  baseDelayMs?: number
  timeoutMs?: number
  /** The HTTP agent (e.g. one that checks the addresses it connects to). */
  dispatcher?: Dispatcher
}

/**
 * POSTs a JSON body, retried with exponential backoff on network errors,
 * 5xx, 408 and 429 (honouring Retry-After); other 4xx fail at once. Returns
 * the 2xx status; throws PostFailed after the last try.
 */
export async function postWithRetries(url: string, o: PostOptions): Promise<number> {
  const tries = o.tries ?? 4
  const backoff = {baseMs: o.baseDelayMs ?? 1000, maxMs: 15_000, jitter: 0.2}
  for (let attempt = 1; ; attempt++) {
    let waitMs = backoffMs(attempt, backoff)
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: {'content-type': 'application/json', ...o.headers},
        body: o.body,
        signal: AbortSignal.timeout(o.timeoutMs ?? 10_000),
        redirect: 'error',
        dispatcher: o.dispatcher,
      })
      await response.body?.cancel().catch(() => {})
      if (response.ok) return response.status
      const message = `${o.label} answered HTTP ${response.status}`
      if (response.status >= 400 && response.status < 500 && response.status !== 408 && response.status !== 429) throw new HttpRefused(message, response.status)
      const after = retryAfterMs(response.headers)
      // The receiver's Retry-After, held between the first backoff step and 30 s.
      if (after !== undefined) waitMs = serverDelayMs(after, attempt, {minMs: backoff.baseMs, maxMs: 30_000, backoff})
      if (attempt >= tries) throw new PostFailed(message, response.status)
    } catch (error) {
      if (error instanceof HttpRefused || attempt >= tries) throw error instanceof PostFailed ? error : new PostFailed(fetchFailure(error))
    }

    await sleep(waitMs)
  }
}

/** What a failed fetch says, with the reason undici keeps in its cause (a refused address, a reset connection). */
function fetchFailure(error: unknown): string {
  const cause = (error as {cause?: {message?: string}})?.cause?.message
  return cause ? `${(error as Error).message}: ${cause}` : errorMessage(error)
}

/**
 * Slack-compatible incoming webhook: a JSON POST with `text` (what Slack,
 * Mattermost and Rocket.Chat show) plus `alerts` (the same, structured, for
 * anything else), sent with postWithRetries.
 */
export class WebhookChannel implements AlertChannel {
  readonly name = 'webhook'
  readonly label: string

  constructor(
    private readonly url: string,
    private readonly options: {tries?: number; baseDelayMs?: number; timeoutMs?: number} = {},
  ) {
    // The path of a Slack webhook is its secret: only the host is ever shown.
    this.label = `webhook ${new URL(url).host}`
  }

  async send(alerts: Alert[]): Promise<void> {
    const body = JSON.stringify({
      text: [alertTitle(alerts), ...(alerts.length > 1 ? alertLines(alerts) : [])].join('\n'),
      alerts: alerts.map((a) => ({id: a.id, kind: a.kind, severity: a.severity, subject: a.subject, details: a.details, createdAt: a.createdAt.toISOString()})),
    })
    await postWithRetries(this.url, {body, label: this.label, ...this.options})
  }
}

/** Alerts as one mail to an operator address. */
export class EmailChannel implements AlertChannel {
  readonly name: string
  readonly label: string

  constructor(
    private readonly mailer: Mailer,
    private readonly to: string,
  ) {
    this.name = `email:${to}`
    this.label = `mail to ${to} via ${mailer.host}`
  }

  async send(alerts: Alert[]): Promise<void> {
    const lines = alertLines(alerts)
    await this.mailer.send({
      to: this.to,
      subject: alertTitle(alerts),
      text: [
        ...lines,
        '',
        'Details: rvx workers status, rvx runs list. Each alert is sent once; it is sent again only if the condition clears and comes back.',
      ].join('\n'),
    })
  }
}
