import type {AddressInfo} from 'node:net'
import type {Server} from 'node:http'
import {createAdaptorServer} from '@hono/node-server'
import type {Kysely} from 'kysely'

import type {Database} from '../db/schema.js'
import type {Logger} from '../runtime/logger.js'
import {UsageError} from '../shared/errors.js'
import {apiApp, type ApiOptions} from './api/app.js'
import {dashboardApp} from './app.js'
import {loadAssets} from './assets.js'
import {CHART_KEY, loadSource} from './data.js'
import {LiveHub, type TickReport} from './live.js'
import {QueryCounter} from './query-counter.js'

export interface DashboardOptions {
  db: Kysely<Database>
  host: string
  port: number
  /** Required of every request when set (see auth.ts). */
  token?: string
  /** How often live pages are refreshed (one read for all viewers). */
  intervalMs: number
  /** How often the hour-long chart is read again (default 10 s). */
  chartEveryMs?: number
  /** Live viewers at most (default 200). */
  maxStreams?: number
  /** Also serve the HTTP API under /api/ (rvx serve); its requests carry API tokens, not the dashboard's. */
  api?: Omit<ApiOptions, 'db' | 'log'>
  log: Logger
}

export interface Dashboard {
  /** http://host:port/ (never with the token). */
  url: string
  /** Queries sent so far, live viewers now, and the latest ticks (reads and queries each). */
  stats(): {queries: number; streams: number; ticks: TickReport[]}
  close(): Promise<void>
}

/** Serves the dashboard until closed. Port 0 picks a free one. */
export async function startDashboard(o: DashboardOptions): Promise<Dashboard> {
  const counter = new QueryCounter()
  const db = o.db.withPlugin(counter)
  const ticks: TickReport[] = []
  const chartEveryMs = Math.max(o.intervalMs, o.chartEveryMs ?? 10_000)
  const hub = new LiveHub({
    load: (key) => loadSource(db, key),
    intervalMs: o.intervalMs,
    everyMs: (key) => (key === CHART_KEY ? chartEveryMs : 0),
    maxClients: o.maxStreams ?? 200,
    log: o.log,
    queries: () => counter.count,
    onTick: (t) => {
      ticks.push(t)
      if (ticks.length > 100) ticks.shift()
    },
  })
  const app = dashboardApp({db, hub, token: o.token, assets: loadAssets(), log: o.log})
  // The API has its own tokens and answers: /api/ never reaches the pages' guard.
  const api = o.api ? apiApp({...o.api, db, log: o.log}) : undefined
  const fetch = (request: Request) => (api && new URL(request.url).pathname.startsWith('/api/') ? api.fetch(request) : app.fetch(request))
  const server = createAdaptorServer({fetch, overrideGlobalObjects: false}) as Server

  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'EADDRINUSE'
          ? new UsageError(`${o.port} on ${o.host} is in use: pick another (--port)`, {code: 'port_in_use'})
          : error.code === 'EADDRNOTAVAIL' || error.code === 'ENOTFOUND'
            ? new UsageError(`cannot listen on ${o.host}: use an address of this machine (--host)`, {code: 'bad_host'})
            : error,
      ),
    )
    server.listen(o.port, o.host, () => resolve())
  })
  const {port} = server.address() as AddressInfo
  const host = o.host.includes(':') ? `[${o.host}]` : o.host

  return {
    url: `http://${host}:${port}/`,
    stats: () => ({queries: counter.count, streams: hub.size, ticks: [...ticks]}),
    async close() {
      await hub.close()
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
    },
  }
}
