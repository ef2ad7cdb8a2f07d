import {convert} from 'html-to-text'

import {PermanentError, TransientError} from '../../runtime/errors.js'
import {assertPublicUrl, privateFetchAllowed} from './ssrf.js'

export interface FetchOptions {
  signal?: AbortSignal
  timeoutMs?: number
  maxBytes?: number
  maxRedirects?: number
  allowPrivate?: boolean
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
 * Fetches a page for an agent: public addresses only (each redirect hop
 * checked), a time limit, a size limit (the rest is cut, not buffered), and
 * the HTML turned into readable text.
 */
export async function fetchPage(rawUrl: string, options: FetchOptions = {}): Promise<FetchedPage> {
  const o = {...DEFAULTS, ...options}
  const allowPrivate = options.allowPrivate ?? privateFetchAllowed()
  let url: URL
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:/i.test(rawUrl) ? rawUrl : `https://${rawUrl}`)
  } catch {
    throw new PermanentError(`not a URL: ${rawUrl}`)
  }

  const timeout = AbortSignal.timeout(o.timeoutMs)
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout
  for (let hop = 0; ; hop++) {
    await assertPublicUrl(url, allowPrivate)
    let response: Response
    try {
      response = await fetch(url, {
        redirect: 'manual',
        signal,
        headers: {'user-agent': 'rvx-research/0.1 (+https://example.invalid/rvx)', accept: 'text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.5'},
      })
    } catch (error) {
      if (timeout.aborted) throw new TransientError(`timed out after ${o.timeoutMs} ms fetching ${url.href}`)
      throw new TransientError(
        `could not fetch ${url.href}: ${(error as Error).cause ? String(((error as Error).cause as Error).message) : (error as Error).message}`,
        {cause: error},
      )
    }

    if (response.status >= 300 && response.status < 400 && response.headers.get('location')) {
      if (hop >= o.maxRedirects) throw new PermanentError(`too many redirects from ${rawUrl}`)
      await response.body?.cancel()
      url = new URL(response.headers.get('location')!, url)
      continue
    }

    const {body, truncated} = await readLimited(response, o.maxBytes)
    const contentType = response.headers.get('content-type') ?? ''
    const text = /html/i.test(contentType) || /<html|<body/i.test(body.slice(0, 2000)) ? htmlToText(body) : body
    return {url: url.href, status: response.status, contentType, html: body, text, truncated}
  }
}

export function htmlToText(html: string): string {
  return convert(html, {
    wordwrap: false,
    selectors: [
      {selector: 'a', options: {ignoreHref: true}},
      {selector: 'img', format: 'skip'},
      {selector: 'nav', format: 'skip'},
      ...['h1', 'h2', 'h3', 'h4', 'h5', 'h6'].map((selector) => ({selector, options: {uppercase: false}})),
    ],
  })
    .replace(/\n{3,}/g, '\n\n')
    .trim()
}

async function readLimited(response: Response, maxBytes: number): Promise<{body: string; truncated: boolean}> {
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

  return {body: Buffer.concat(chunks).subarray(0, maxBytes).toString('utf8'), truncated}
}
