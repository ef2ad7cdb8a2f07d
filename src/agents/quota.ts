/** OpenAI's own endpoint: where calls go when OPENAI_BASE_URL is not set. */
export const DEFAULT_ENDPOINT = 'https://api.openai.com/v1'

/**
 * The fleet-wide quota a model call draws on: one per endpoint and model (a
 * provider's limits are per key and model; rvx runs one key per database).
 * The endpoint without credentials or query, so the key can be shown.
 */
export function quotaKey(model: string, baseURL?: string): string {
  return `${endpointName(baseURL ?? DEFAULT_ENDPOINT)} ${model}`
}

/** An endpoint as rvx shows and stores it: scheme, host and path, never credentials, query or fragment. */
export function endpointName(url: string): string {
  try {
    const u = new URL(url)
    return `${u.protocol}//${u.host}${u.pathname.replace(/\/$/, '')}`
  } catch {
    return 'a custom endpoint'
  }
}
