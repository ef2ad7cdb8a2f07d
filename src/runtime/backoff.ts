import type {BackoffPolicy} from './config.js'

/** The one backoff function: base x 2^(n-1), capped, with jitter. n starts at 1. */
export function backoffMs(n: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const raw = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, n - 1))
  const spread = raw * policy.jitter
  return Math.max(0, Math.round(raw - spread + random() * 2 * spread))
}

/**
 * How long to wait when a server said how long (Retry-After): its word held
 * between `minMs` and `maxMs`, so a hostile or broken server can neither make
 * us hammer it (0) nor park work for years; without a usable word, backoff
 * number `n`.
 */
export function serverDelayMs(serverMs: number | undefined, n: number, policy: {minMs: number; maxMs: number; backoff: BackoffPolicy}): number {
  if (serverMs === undefined || !Number.isFinite(serverMs) || serverMs <= 0) return Math.min(policy.maxMs, Math.max(policy.minMs, backoffMs(n, policy.backoff)))
  return Math.min(policy.maxMs, Math.max(policy.minMs, serverMs))
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
