import type {CallContext} from '../../pipeline/provider.js'
import {PermanentError, TransientError} from '../../runtime/errors.js'
import type {Env} from '../../shared/config.js'

export interface SearchResult {
  title: string
  url: string
  snippet: string
}

export interface SearchBackend {
  name: string
  /** `ctx` is for backends that are themselves paid model calls (OpenAI's hosted search): admitted and recorded like any other. */
  search(query: string, signal?: AbortSignal, ctx?: CallContext): Promise<SearchResult[]>
}

const BRAVE_URL = 'https://api.search.brave.com/res/v1/web/search'
const SERPER_URL = 'https://google.serper.dev/search'

/**
 * The search_web backend, chosen by environment: a SearXNG instance
 * (RVX_SEARXNG_URL), Brave (BRAVE_API_KEY) or Serper (SERPER_API_KEY).
 * None set: the agent works without search_web. RVX_BRAVE_URL and
 * RVX_SERPER_URL replace those APIs' endpoints (a proxy, a test server).
 */
export function searchBackendFromEnv(env: Env): SearchBackend | null {
  if (env.RVX_SEARXNG_URL) {
    const base = env.RVX_SEARXNG_URL.replace(/\/+$/, '')
    return {
      name: 'searxng',
      async search(query, signal) {
        const data = await getJson(`${base}/search?format=json&q=${encodeURIComponent(query)}`, {}, signal)
        return ((data.results as Array<Record<string, string>>) ?? []).slice(0, 10).map((r) => ({title: r.title, url: r.url, snippet: r.content ?? ''}))
      },
    }
  }

  if (env.BRAVE_API_KEY) {
    const key = env.BRAVE_API_KEY
    return {
      name: 'brave',
      async search(query, signal) {
        const url = new URL(env.RVX_BRAVE_URL || BRAVE_URL)
        url.searchParams.set('count', '10')
        url.searchParams.set('q', query)
        const data = await getJson(url.href, {'x-subscription-token': key, accept: 'application/json'}, signal)
        const web = (data.web as {results?: Array<Record<string, string>>}) ?? {}
        return (web.results ?? []).map((r) => ({title: r.title, url: r.url, snippet: r.description ?? ''}))
      },
    }
  }

  if (env.SERPER_API_KEY) {
    const key = env.SERPER_API_KEY
    return {
      name: 'serper',
      async search(query, signal) {
        const data = await getJson(
          env.RVX_SERPER_URL || SERPER_URL,
          {'x-api-key': key, 'content-type': 'application/json'},
          signal,
          JSON.stringify({q: query, num: 10}),
        )
        return ((data.organic as Array<Record<string, string>>) ?? []).map((r) => ({title: r.title, url: r.link, snippet: r.snippet ?? ''}))
      },
    }
  }

  return null
}

async function getJson(url: string, headers: Record<string, string>, signal?: AbortSignal, body?: string): Promise<Record<string, unknown>> {
  const timeout = AbortSignal.timeout(20_000)
  const res = await fetch(url, {method: body ? 'POST' : 'GET', headers, body, signal: signal ? AbortSignal.any([signal, timeout]) : timeout}).catch((error) => {
    throw new TransientError(`search backend unreachable: ${(error as Error).message}`)
  })
  // Keys are never echoed: the message names the backend's status only.
  if (res.status === 401 || res.status === 403) throw new PermanentError(`the search backend refused its API key (HTTP ${res.status})`)
  if (res.status >= 500 || res.status === 429) throw new TransientError(`search backend answered HTTP ${res.status}`)
  if (!res.ok) throw new PermanentError(`search backend answered HTTP ${res.status}`)
  return (await res.json()) as Record<string, unknown>
}
