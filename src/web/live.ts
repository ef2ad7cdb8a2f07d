import type {Logger} from '../runtime/logger.js'
import type {SourceKey} from './data.js'
import {liveStatus, type Regions} from './pages/layout.js'
import type {View} from './pages/view.js'

export interface LiveOptions {
  /** Reads one source (the database work). */
  load: (key: SourceKey) => Promise<unknown>
  intervalMs: number
  /** Sources read less often than every interval (the hour-long chart), in ms. */
  everyMs?: (key: SourceKey) => number
  maxClients: number
  log: Logger
  /** A running count of database queries, to report how many each tick took. */
  queries?: () => number
  /** Told after each tick. */
  onTick?: (tick: TickReport) => void
}

export interface TickReport {
  tick: number
  clients: number
  /** Sources read in this tick. */
  reads: number
  /** Database queries sent while reading them. */
  queries: number
}

/** One viewer's stream: `send` writes an SSE event; a viewer that falls behind is closed. */
export interface LiveSink {
  send(event: string, data: string): Promise<void>
  close(): void
}

interface Client {
  view: View
  sink: LiveSink
  /** What it was last sent, by region: only regions that changed are sent again. */
  sent: Map<string, string>
  pending: number
}

/** Writes a slow viewer may have unfinished before it is dropped (it reconnects and starts afresh). */
const MAX_PENDING_WRITES = 4

/**
 * One shared read per interval for every viewer: each tick reads every source
 * that some open stream needs once, renders each view once, and sends each
 * viewer the regions that changed since what it was last sent. Ten tabs on a
 * page cost the database what one does; no tabs cost nothing (the loop stops).
 */
export class LiveHub {
  private readonly clients = new Set<Client>()
  private readonly cache = new Map<SourceKey, {at: number; value: unknown}>()
  private loop?: Promise<void>
  private wake?: () => void
  private closed = false
  private ticks = 0

  constructor(private readonly o: LiveOptions) {}

  get size(): number {
    return this.clients.size
  }

  get full(): boolean {
    return this.closed || this.clients.size >= this.o.maxClients
  }

  /** Adds a viewer; it gets its first regions at the next tick. Returns how to remove it. False when the hub is full. */
  subscribe(view: View, sink: LiveSink): (() => void) | false {
    if (this.closed || this.clients.size >= this.o.maxClients) return false
    const client: Client = {view, sink, sent: new Map(), pending: 0}
    this.clients.add(client)
    this.loop ??= this.run()
    return () => this.clients.delete(client)
  }

  /** Ends every stream and the loop. */
  async close(): Promise<void> {
    this.closed = true
    for (const c of this.clients) c.sink.close()
    this.clients.clear()
    this.wake?.()
    await this.loop
  }

  private async run(): Promise<void> {
    try {
      while (this.clients.size > 0 && !this.closed) {
        await this.tick().catch((error: Error) => this.o.log.error({error: error.message}, 'dashboard: a live update failed'))
        await this.pause()
      }
    } finally {
      // In the same step as the last check of the loop: a viewer that comes later starts a new one.
      this.loop = undefined
    }
  }

  private pause(): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, this.o.intervalMs)
      timer.unref()
      this.wake = () => {
        clearTimeout(timer)
        resolve()
      }
    }).finally(() => (this.wake = undefined))
  }

  private async tick(): Promise<void> {
    const tick = ++this.ticks
    const clients = [...this.clients]
    const needed = new Set(clients.flatMap((c) => c.view.sources))
    for (const key of this.cache.keys()) if (!needed.has(key)) this.cache.delete(key)

    const queriesBefore = this.o.queries?.() ?? 0
    const failed = new Map<SourceKey, string>()
    let reads = 0
    const now = Date.now()
    for (const key of needed) {
      const cached = this.cache.get(key)
      if (cached && now - cached.at < (this.o.everyMs?.(key) ?? 0)) continue
      reads++
      try {
        this.cache.set(key, {at: now, value: await this.o.load(key)})
      } catch (error) {
        failed.set(key, describe(error))
        this.o.log.warn({source: key, error: (error as Error)?.message ?? String(error)}, `dashboard: reading ${key} failed`)
      }
    }

    const queries = (this.o.queries?.() ?? 0) - queriesBefore
    const byView = new Map<string, Regions>()
    for (const c of clients) {
      if (!this.clients.has(c)) continue
      const problem = c.view.sources.map((k) => failed.get(k) ?? (this.cache.has(k) ? undefined : 'not read yet')).find(Boolean)
      let regions: Regions
      if (problem) {
        regions = {'live-status': liveStatus(new Date(), problem)}
      } else {
        regions = byView.get(c.view.key) ?? this.render(c.view)
        byView.set(c.view.key, regions)
      }

      this.push(c, regions)
    }

    this.o.onTick?.({tick, clients: clients.length, reads, queries})
  }

  private render(view: View): Regions {
    try {
      return {...view.regions((key) => this.cache.get(key)!.value), 'live-status': liveStatus(new Date())}
    } catch (error) {
      this.o.log.error({error: (error as Error)?.message ?? String(error), view: view.key}, 'dashboard: a view failed to render')
      return {'live-status': liveStatus(new Date(), 'this page failed to render: see the dashboard log')}
    }
  }

  private push(c: Client, regions: Regions): void {
    const changed: Record<string, string> = {}
    for (const [id, content] of Object.entries(regions)) {
      const text = String(content)
      if (c.sent.get(id) !== text) changed[id] = text
    }

    if (Object.keys(changed).length === 0) return
    if (c.pending >= MAX_PENDING_WRITES) {
      this.clients.delete(c)
      c.sink.close()
      return
    }

    for (const [id, text] of Object.entries(changed)) c.sent.set(id, text)
    c.pending++
    c.sink.send('regions', JSON.stringify(changed)).then(
      () => c.pending--,
      () => {
        this.clients.delete(c)
        c.sink.close()
      },
    )
  }
}

/** One line for a viewer: what kind of trouble, never a stack or a connection string. */
function describe(error: unknown): string {
  const code = (error as {code?: string})?.code
  if (code === 'run_not_found') return (error as Error).message
  return 'cannot read the database'
}
