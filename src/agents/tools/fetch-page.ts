import net from 'node:net'

import {fetch, type Response} from 'undici'

import {PermanentError, TransientError} from '../../runtime/errors.js'
import type {FetchBudget} from './fetch-budget.js'
import {htmlToText} from './html.js'
import {guardedAgent, type GuardOptions} from './guarded-agent.js'
import {AddressRefusedError, checkAddress, privateFetchAllowed, refusal} from './ssrf.js'

export interface FetchOptions extends Partial<GuardOptions> {
  signal?: AbortSignal
  timeoutMs?: number
  maxBytes?: number
  maxRedirects?: number
  /** The agent call's budget: each request (redirect hops too) and its body bytes are taken from it. */
  budget?: FetchBudget
  /** false: skip turning the HTML into text (callers that only read links). */
  text?: boolean
}

export interface FetchedPage {
  url: string
  status: number
  contentType: string
  html: string
  text: string
  truncated: boolean
}

const DEFAULTS = {timeoutMs: 15_000, maxBytes: 1_000_000, maxRedirects: 5}

/**
 * Fetches a page for an agent: public addresses only (the guarded agent
 * checks the address of every connection, so every redirect hop), a time
 * limit, a size limit (the rest is cut, not buffered), and the HTML turned
 * into readable text.
 */
export async function fetchPage(rawUrl: string, options: FetchOptions = {}): Promise<FetchedPage> {
  const o = {...DEFAULTS, ...options}
  const guard: GuardOptions = {
    allowPrivate: options.allowPrivate ?? privateFetchAllowed(),
    dnsServer: options.dnsServer ?? (process.env.RVX_DNS_SERVER || undefined),
    localAddress: options.localAddress,
    allowOrigins: options.allowOrigins,
  }
  let url: URL
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:/i.test(rawUrl) ? rawUrl : `https://${rawUrl}`)
  } catch {
    throw new PermanentError(`not a URL: ${rawUrl}`)
  }

  const timeout = AbortSignal.timeout(o.timeoutMs)
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout
  for (let hop = 0; ; hop++) {
    checkUrl(url, guard)
    o.budget?.take(url.href)
    let response: Response
    try {
      response = await fetch(url, {
        dispatcher: guardedAgent(guard),
        redirect: 'manual',
        signal,
        headers: {'user-agent': 'rvx-research/0.1 (+https://example.invalid/rvx)', accept: 'text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.5'},
      })
    } catch (error) {
      const cause = (error as Error).cause as NodeJS.ErrnoException | undefined
      if (cause instanceof AddressRefusedError) throw cause.forUrl(url.href)
      if (timeout.aborted) throw new TransientError(`timed out after ${o.timeoutMs} ms fetching ${url.href}`)
      if (cause?.code === 'ENOTFOUND' || cause?.code === 'ENODATA') throw new PermanentError(`cannot resolve ${url.hostname}`)
      throw new TransientError(`could not fetch ${url.href}: ${cause ? String(cause.message) : (error as Error).message}`, {cause: error})
    }

    if (response.status >= 300 && response.status < 400 && response.headers.get('location')) {
      await response.body?.cancel()
      if (hop >= o.maxRedirects) throw new PermanentError(`too many redirects from ${rawUrl}`)
      try {
        url = new URL(response.headers.get('location')!, url)
      } catch {
        throw new PermanentError(`${url.href} redirects to something that is not a URL`)
      }

      continue
    }

    const {body, truncated} = await readLimited(response, o.budget ? Math.min(o.maxBytes, o.budget.remainingBytes()) : o.maxBytes, o.budget)
    const contentType = response.headers.get('content-type') ?? ''
    const html = /html/i.test(contentType) || /<html|<body/i.test(body.slice(0, 2000))
    const text = options.text === false ? '' : html ? htmlToText(body) : body
    return {url: url.href, status: response.status, contentType, html: body, text, truncated}
  }
}

/** Before connecting: the scheme, and a literal IP host (the agent checks it again, and resolves names itself). */
function checkUrl(url: URL, guard: GuardOptions): void {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new PermanentError(`refusing to fetch ${url.protocol} URLs: only http and https`)
  const host = url.hostname.replace(/^\[|\]$/g, '')
  if (!net.isIP(host) || guard.allowOrigins?.includes(url.origin)) return
  const verdict = checkAddress(host, guard.allowPrivate)
  if (!verdict.allowed) throw refusal(verdict).forUrl(url.href)
}

async function readLimited(response: Response, maxBytes: number, budget?: FetchBudget): Promise<{body: string; truncated: boolean}> {
  if (!response.body) return {body: '', truncated: false}
  const reader = response.body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  let truncated = false
  while (true) {
    const {done, value} = await reader.read()
    if (done) break
    chunks.push(value)
    size += value.byteLength
    if (size >= maxBytes) {
      truncated = true
      await reader.cancel()
      break
    }
  }

  const body = Buffer.concat(chunks).subarray(0, maxBytes)
  budget?.spend(body.byteLength)
  return {body: body.toString('utf8'), truncated}
}
