import net from 'node:net'

import {fetch, type Response} from 'undici'

import {PermanentError, TransientError} from '../../runtime/errors.js'
import type {FetchBudget} from './fetch-budget.js'
import {htmlToText} from './html.js'
import {guardedAgent, type GuardOptions} from './guarded-agent.js'
import {AddressRefusedError, checkAddress, refusal} from './ssrf.js'

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
    allowPrivate: options.allowPrivate ?? false,
    dnsServer: options.dnsServer,
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

    const read = await readLimited(response, o.budget ? Math.min(o.maxBytes, o.budget.remainingBytes()) : o.maxBytes, o.budget)
    const contentType = response.headers.get('content-type') ?? ''
    // A PDF, an image or an archive is not text: the model and the checks get a line saying what it was, not its bytes.
    if (isBinary(contentType, read.body)) {
      const text = `(not a text page: ${contentType.split(';')[0].trim() || 'binary content'}, ${read.bytes} bytes, not shown)`
      return {url: url.href, status: response.status, contentType, html: '', text, truncated: read.truncated}
    }

    const body = read.body.toString('utf8')
    const html = /html/i.test(contentType) || /<html|<body/i.test(body.slice(0, 2000))
    const text = options.text === false ? '' : html ? htmlToText(body) : body
    return {url: url.href, status: response.status, contentType, html: body, text, truncated: read.truncated}
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

/** Types whose bodies are text; anything else declared is binary, and an undeclared body is judged by its first bytes. */
const TEXTUAL = /^(text\/|application\/(xhtml\+xml|xml|json|ld\+json|rss\+xml|atom\+xml)\b|$)/i

function isBinary(contentType: string, body: Buffer): boolean {
  if (!TEXTUAL.test(contentType.trim())) return true
  // Declared text (or nothing) but NUL bytes all over its start: binary whatever the header says (a stray NUL in a title
  // is text with a bad character, cleaned later).
  let nul = 0
  for (const byte of body.subarray(0, 4096)) if (byte === 0 && ++nul > 8) return true
  return false
}

async function readLimited(response: Response, maxBytes: number, budget?: FetchBudget): Promise<{body: Buffer; bytes: number; truncated: boolean}> {
  if (!response.body) return {body: Buffer.alloc(0), bytes: 0, truncated: false}
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
  return {body, bytes: body.byteLength, truncated}
}
