import type {BackoffPolicy} from './config.js'

/** The one backoff function: base x 2^(n-1), capped, with jitter. n starts at 1. */
export function backoffMs(n: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const raw = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, n - 1))
  const spread = raw * policy.jitter
  return Math.max(0, Math.round(raw - spread + random() * 2 * spread))
}

/** Resolves after ms, or at once (without throwing) when the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve()
    const timer = setTimeout(done, ms)
    function done() {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }

    signal?.addEventListener('abort', done, {once: true})
  })
}
