/**
 * An agent call's deadline that stands still while the call waits in line
 * for rvx's own quota: the deadline bounds the agent's work (turns, pages,
 * a slow model), and a fleet lined up for a tight quota is not a call going
 * nowhere. Aborts its signal with a TimeoutError once the time running is up.
 */
export class Deadline {
  private readonly controller = new AbortController()
  private timer: NodeJS.Timeout | undefined
  private leftMs: number
  private since = 0
  private waiting = 0

  constructor(readonly ms: number) {
    this.leftMs = ms
    this.arm()
  }

  get signal(): AbortSignal {
    return this.controller.signal
  }

  /** Runs fn with the clock stopped (nested and overlapping waits count once). */
  async outside<T>(fn: () => Promise<T>): Promise<T> {
    if (this.waiting++ === 0 && !this.signal.aborted) {
      clearTimeout(this.timer)
      this.leftMs -= Date.now() - this.since
    }

    try {
      return await fn()
    } finally {
      if (--this.waiting === 0 && !this.signal.aborted) this.arm()
    }
  }

  dispose(): void {
    clearTimeout(this.timer)
  }

  private arm(): void {
    this.since = Date.now()
    this.timer = setTimeout(() => this.controller.abort(new DOMException(`the deadline of ${this.ms} ms passed`, 'TimeoutError')), Math.max(0, this.leftMs))
    this.timer.unref?.()
  }
}
