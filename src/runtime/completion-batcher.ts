import {isTransientDatabaseError} from '../db/connection-errors.js'

/**
 * Completions without writes of their own share one statement: the first goes
 * at once; those that finish while it is in flight go together next. Low load
 * keeps its latency, high load gets batches. One flush at a time (two contend
 * on the same index pages and go slower).
 */
export interface Completion {
  taskId: number
  epoch: number
  result: unknown
}

export interface CompletionSink {
  /** Completes a batch in one statement; resolves with the ids that completed. */
  completeBatch(items: Completion[]): Promise<Set<number>>
  /** Settles one that was not in the batch's answer: fenced out, or committed by an earlier try whose answer was lost. */
  completeOne(item: Completion): Promise<boolean>
}

const MAX_BATCH = 500

export class CompletionBatcher {
  private pending: Array<{item: Completion; resolve: (ok: boolean) => void; reject: (error: unknown) => void}> = []
  private flushing = false

  constructor(private readonly sink: CompletionSink) {}

  /** Resolves true when the task completed under this lease, false when it was fenced out. */
  complete(item: Completion): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.pending.push({item, resolve, reject})
      if (!this.flushing) void this.flush()
    })
  }

  private async flush(): Promise<void> {
    this.flushing = true
    try {
      while (this.pending.length > 0) {
        const batch = this.pending.splice(0, MAX_BATCH)
        let done: Set<number>
        try {
          done = await this.sink.completeBatch(batch.map((b) => b.item))
        } catch (error) {
          if (isTransientDatabaseError(error)) for (const b of batch) b.reject(error)
          // One result the database refuses must not fail the others of its batch: each is settled on its own.
          else for (const b of batch) this.sink.completeOne(b.item).then(b.resolve, b.reject)
          continue
        }

        for (const b of batch) {
          if (done.has(b.item.taskId)) b.resolve(true)
          else this.sink.completeOne(b.item).then(b.resolve, b.reject)
        }
      }
    } finally {
      this.flushing = false
    }
  }
}
