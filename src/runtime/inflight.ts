import type {ClaimedTask, Lease} from './lease.js'

/** A claimed task this worker is running, with the lease it holds. */
export interface InFlight {
  task: ClaimedTask
  lease: Lease
  controller: AbortController
  startedAt: number
  /** Settled by someone else (released on forced stop, lease lost): the handler's own outcome is dropped. */
  detached: boolean
  /** Counted once as fenced out, whichever path noticed first. */
  fenced: boolean
}

/** The tasks a worker is running, keyed by task id. */
export class InFlightTasks {
  private readonly entries = new Map<number, InFlight>()

  constructor(private readonly onFenced: () => void) {}

  add(task: ClaimedTask, workerId: string): InFlight {
    const entry: InFlight = {
      task,
      lease: {taskId: task.id, epoch: task.epoch, workerId},
      controller: new AbortController(),
      startedAt: Date.now(),
      detached: false,
      fenced: false,
    }
    this.entries.set(task.id, entry)
    return entry
  }

  delete(taskId: number): void {
    this.entries.delete(taskId)
  }

  get size(): number {
    return this.entries.size
  }

  values(): InFlight[] {
    return [...this.entries.values()]
  }

  /** The leases this worker still stands behind (what a heartbeat renews). */
  held(): Array<{id: number; epoch: number}> {
    return this.values()
      .filter((e) => !e.detached)
      .map((e) => ({id: e.task.id, epoch: e.task.epoch}))
  }

  /** Counts a task as fenced out, once. */
  fenced(entry: InFlight): void {
    if (entry.fenced) return
    entry.fenced = true
    this.onFenced()
  }

  /**
   * Detaches and aborts handlers whose lease a heartbeat did not renew
   * (canceled, or this worker presumed dead): their result would be fenced
   * out anyway. Only tasks started before the heartbeat was sent are judged.
   */
  dropLost(renewed: Map<number, number>, sentAt: number): InFlight[] {
    const lost = this.values().filter((e) => !e.detached && e.startedAt < sentAt && renewed.get(e.task.id) !== e.task.epoch)
    for (const entry of lost) {
      entry.detached = true
      this.fenced(entry)
      entry.controller.abort(new Error('lease lost'))
    }

    return lost
  }

  /** Detaches and aborts every handler (forced stop); returns them so their leases can be released. */
  detachAll(why: string): InFlight[] {
    const all = this.values()
    for (const entry of all) {
      entry.detached = true
      entry.controller.abort(new Error(`worker stopping: ${why}`))
    }

    return all
  }
}
