import type {ClaimedTask, Lease} from './lease.js'

/** A task this worker holds the lease of: running its handler, or claimed ahead and waiting for a free slot. */
export interface InFlight {
  task: ClaimedTask
  lease: Lease
  /** Aborted when the lease is lost or the worker is forced to stop (made on first use: most handlers finish first). */
  readonly signal: AbortSignal
  abort(reason: Error): void
  /** When its handler started (0 while it waits for a slot). */
  startedAt: number
  running: boolean
  /** Settled by someone else (released on forced stop, lease lost): the handler's own outcome is dropped. */
  detached: boolean
  /**
   * Its lease was lost (canceled, or this worker presumed dead). A handler that still finishes offers its result
   * anyway: the fence, not this worker's guess, rejects it (and records it as fenced_out, unless it was canceled).
   */
  lost: boolean
  /** Counted (and logged) once, as fenced out or as canceled, whichever path noticed first. */
  counted: boolean
}

/** One per task a worker holds, thousands a second on a busy worker: methods on the prototype, no closures of its own. */
class HeldTask implements InFlight {
  readonly lease: Lease
  startedAt = 0
  running = false
  detached = false
  lost = false
  counted = false
  private controller?: AbortController
  private abortedWith?: Error

  constructor(
    readonly task: ClaimedTask,
    workerId: string,
  ) {
    this.lease = {taskId: task.id, epoch: task.epoch, workerId}
  }

  get signal(): AbortSignal {
    this.controller ??= new AbortController()
    if (this.abortedWith && !this.controller.signal.aborted) this.controller.abort(this.abortedWith)
    return this.controller.signal
  }

  abort(reason: Error): void {
    this.abortedWith ??= reason
    this.controller?.abort(reason)
  }
}

/**
 * The tasks a worker holds, keyed by task id: the running ones (at most its
 * concurrency) and the ones claimed ahead, which start in claim order as
 * slots free up, with no round trip to the database. Every one of them is
 * leased to the worker, so the heartbeat renews them all.
 */
export class InFlightTasks {
  private readonly entries = new Map<number, InFlight>()
  private readonly waiting: InFlight[] = []
  private runningCount = 0

  constructor(private readonly on: {fenced(): void; canceled(): void}) {}

  /** Takes a claimed task: running at once (`run`), or waiting for a slot. */
  add(task: ClaimedTask, workerId: string, run: boolean): InFlight {
    const entry = new HeldTask(task, workerId)
    this.entries.set(task.id, entry)
    if (run) this.markRunning(entry)
    else this.waiting.push(entry)
    return entry
  }

  /** The next waiting task, now running; undefined when none waits. */
  startNext(): InFlight | undefined {
    while (this.waiting.length > 0) {
      const entry = this.waiting.shift()!
      if (entry.detached) continue
      this.markRunning(entry)
      return entry
    }

    return undefined
  }

  /** Its handler is done and only a batched completion is left: the slot is free for the next task; the lease is still held. */
  settling(entry: InFlight): void {
    if (!entry.running) return
    entry.running = false
    this.runningCount--
  }

  /**
   * Forgets a settled task. By the entry, not its id: a task canceled here, reopened and claimed again holds a newer
   * entry under the same id while the old handler winds down, and that one must stay.
   */
  delete(entry: InFlight): void {
    if (this.entries.get(entry.task.id) === entry) this.entries.delete(entry.task.id)
    if (!entry.running) return
    entry.running = false
    this.runningCount--
  }

  /** Tasks held: running, waiting, and settling (a completion on its way). */
  get size(): number {
    return this.entries.size
  }

  /** Tasks running or waiting for a slot (not those only settling). */
  get unsettled(): number {
    return this.runningCount + this.waiting.length
  }

  get running(): number {
    return this.runningCount
  }

  values(): InFlight[] {
    return [...this.entries.values()]
  }

  /** Waiting tasks, taken out (a graceful stop releases them at once). */
  takeWaiting(): InFlight[] {
    const taken = this.waiting.splice(0).filter((e) => !e.detached)
    for (const entry of taken) {
      entry.detached = true
      this.entries.delete(entry.task.id)
    }

    return taken
  }

  /** The leases this worker still stands behind (what a heartbeat renews). */
  held(): Array<{id: number; epoch: number}> {
    return this.values()
      .filter((e) => !e.detached)
      .map((e) => ({id: e.task.id, epoch: e.task.epoch}))
  }

  /**
   * Counts a task as fenced out (its lease moved on: another worker has it, or this one was presumed dead), once.
   * True the first time (the caller logs it then): the heartbeat and the refused settlement may both notice.
   */
  fenced(entry: InFlight): boolean {
    if (entry.counted) return false
    entry.counted = true
    this.on.fenced()
    return true
  }

  /** Counts a task as canceled while held here (its run met its target, or was canceled), once: no fence. True the first time. */
  canceled(entry: InFlight): boolean {
    if (entry.counted) return false
    entry.counted = true
    this.on.canceled()
    return true
  }

  /**
   * Drops the tasks whose lease a heartbeat did not renew (canceled, or this
   * worker presumed dead): waiting ones are forgotten, running ones are
   * aborted (their result would be fenced out anyway). Only the tasks the
   * heartbeat named (`sent`) are judged. Returns the running ones dropped
   * (the caller finds out why, and counts them).
   */
  dropLost(renewed: Map<number, number>, sent: Set<number>): InFlight[] {
    const lost = this.values().filter((e) => !e.detached && sent.has(e.task.id) && renewed.get(e.task.id) !== e.task.epoch)
    const aborted: InFlight[] = []
    for (const entry of lost) {
      entry.detached = true
      entry.lost = true
      if (!entry.running) {
        this.entries.delete(entry.task.id)
        continue
      }

      entry.abort(new Error('lease lost'))
      aborted.push(entry)
    }

    return aborted
  }

  /** Detaches every task (forced stop): running handlers are aborted; all are returned so their leases can be released. */
  detachAll(why: string): InFlight[] {
    const all = this.values().filter((e) => !e.detached)
    for (const entry of all) {
      entry.detached = true
      if (entry.running) entry.abort(new Error(`worker stopping: ${why}`))
    }

    this.waiting.length = 0
    return all
  }

  private markRunning(entry: InFlight): void {
    entry.running = true
    entry.startedAt = Date.now()
    this.runningCount++
  }
}
