/**
 * A worker's periodic jobs (heartbeat, sweep) and other background writes:
 * each periodic job runs at most once at a time, timers never keep the
 * process alive, and stop() waits for whatever is still in flight.
 */
export class Housekeeping {
  private readonly timers: NodeJS.Timeout[] = []
  private readonly inFlight = new Set<Promise<unknown>>()

  /** Runs `fn` every `ms`, skipping a tick while the previous run is still going. */
  every(ms: number, fn: () => Promise<void>): void {
    let running = false
    const timer = setInterval(() => {
      if (running) return
      running = true
      this.track(
        fn().finally(() => {
          running = false
        }),
      )
    }, ms)
    timer.unref()
    this.timers.push(timer)
  }

  /** Remembers a background promise so stop() can wait for it. */
  track(p: Promise<unknown>): void {
    this.inFlight.add(p)
    void p.finally(() => this.inFlight.delete(p))
  }

  /** No more ticks; resolves when every tracked promise has settled. */
  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t)
    await Promise.allSettled([...this.inFlight])
  }
}
