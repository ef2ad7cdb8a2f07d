/**
 * Requests per token: a bucket of `perMinute` requests that refills
 * continuously, in this process (each server counts its own).
 */
export class RateLimiter {
  private readonly buckets = new Map<number, {tokens: number; at: number}>()

  constructor(private readonly perMinute: number) {}

  /** Takes one request from the token's bucket; when empty, how many seconds until one is back. */
  take(tokenId: number, now = Date.now()): {ok: true} | {ok: false; retryAfterS: number} {
    const refillPerMs = this.perMinute / 60_000
    const b = this.buckets.get(tokenId) ?? {tokens: this.perMinute, at: now}
    b.tokens = Math.min(this.perMinute, b.tokens + (now - b.at) * refillPerMs)
    b.at = now
    this.buckets.set(tokenId, b)
    if (b.tokens >= 1) {
      b.tokens -= 1
      return {ok: true}
    }

    return {ok: false, retryAfterS: Math.max(1, Math.ceil((1 - b.tokens) / refillPerMs / 1000))}
  }
}
