/**
 * One statement at a time on a lane: `run` waits its turn (first come, first
 * served); `tryRun` takes the lane only if it is free at once, and otherwise
 * returns undefined without waiting, so a holder of another lane can ask for
 * this one without risking a deadlock.
 */
export class Lane {
  private held = false
  private readonly waiting: Array<() => void> = []

  get busy(): boolean {
    return this.held
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.held) await new Promise<void>((resolve) => this.waiting.push(resolve))
    else this.held = true
    return this.holding(fn)
  }

  tryRun<T>(fn: () => Promise<T>): Promise<T> | undefined {
    if (this.held) return undefined
    this.held = true
    return this.holding(fn)
  }

  private async holding<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn()
    } finally {
      // Handed to the next in line (still held), or freed.
      const next = this.waiting.shift()
      if (next) next()
      else this.held = false
    }
  }
}
