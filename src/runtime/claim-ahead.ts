/**
 * How many tasks a worker claims ahead of its free slots. A claim is a round
 * trip to the database; while it is on its way, every slot of a worker whose
 * tasks take less time than that would sit idle. So a worker whose tasks are
 * short holds enough claimed-ahead tasks to keep its slots busy for a claim's
 * round trip (Little's law: concurrency x claim time / task time), refilled
 * in batches; a worker whose tasks take longer than a claim holds none, and
 * leaves the queue to idle workers.
 */
export class ClaimAhead {
  private taskMs?: number
  private claimMs?: number

  constructor(
    private readonly concurrency: number,
    private readonly max: number,
  ) {}

  /** A handler ran for `ms`. */
  taskTook(ms: number): void {
    this.taskMs = ewma(this.taskMs, Math.max(0, ms))
  }

  /** A claim (or a completion batch with its claim) took `ms`. */
  claimTook(ms: number): void {
    this.claimMs = ewma(this.claimMs, Math.max(0, ms))
  }

  /** Tasks to hold beyond the running ones: 0 until tasks are known to be short. */
  target(): number {
    if (this.taskMs === undefined || this.claimMs === undefined || this.max <= 0) return 0
    return Math.min(this.max, Math.floor((2 * this.concurrency * this.claimMs) / Math.max(this.taskMs, 0.05)))
  }
}

function ewma(previous: number | undefined, sample: number): number {
  return previous === undefined ? sample : previous * 0.8 + sample * 0.2
}
