import http from 'node:http'
import type {AddressInfo} from 'node:net'
import {Flags} from '@oclif/core'

import {listenFailure} from '../monitor/metrics.js'
import type {Health} from '../runtime/health.js'
import {UsageError} from '../shared/errors.js'
import {onCommandLine, ranged} from './flags.js'

/** The flags of a long-running command with a health endpoint (rvx worker, rvx monitor). */
export const healthFlags = {
  'health-port': Flags.integer(
    ranged({summary: 'Serve GET /livez and /readyz for an orchestrator on this port (0: any free port).', env: 'RVX_HEALTH_PORT', min: 0, max: 65_535}),
  ),
  'health-host': Flags.string({summary: 'Address the health server listens on.', default: '127.0.0.1'}),
}

export interface HealthServer {
  url: string
  close(): Promise<void>
}

/**
 * The health endpoints, when --health-port asks for them (undefined
 * otherwise). /livez answers 200 whenever the event loop does; /readyz asks
 * `check` (the worker's or monitor's health(), bounded by its own timeout)
 * and answers 200, or 503 with the reason, as JSON. Probes that arrive while
 * a check is under way share it, so a busy prober costs one query at a time.
 */
export async function serveHealth(
  flags: {'health-port'?: number; 'health-host': string},
  argv: string[],
  check: () => Promise<Health>,
): Promise<HealthServer | undefined> {
  if (onCommandLine(argv, 'health-host') && flags['health-port'] === undefined)
    throw new UsageError('--health-host needs --health-port (or RVX_HEALTH_PORT): without a port there is no health server')
  const port = flags['health-port']
  if (port === undefined) return undefined
  const host = flags['health-host']
  let checking: Promise<Health> | undefined
  const server = http.createServer((req, res) => {
    const reply = (status: number, body: object) =>
      res.writeHead(status, {'content-type': 'application/json', 'cache-control': 'no-store'}).end(`${JSON.stringify(body)}\n`)
    const path = (req.url ?? '/').split('?')[0]
    if (req.method !== 'GET' && req.method !== 'HEAD') reply(405, {error: 'use GET'})
    else if (path === '/livez') reply(200, {alive: true})
    else if (path === '/readyz') {
      checking ??= check()
        .catch((error: unknown): Health => ({ready: false, reason: `health check failed: ${error instanceof Error ? error.message : String(error)}`}))
        .finally(() => {
          checking = undefined
        })
      void checking.then((health) => reply(health.ready ? 200 : 503, health))
    } else reply(404, {error: 'not found: try /livez or /readyz'})
  })
  // A prober that hangs up or sends garbage must not take the process down.
  server.on('clientError', (_error, socket) => socket.destroy())
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => reject(listenFailure(error, port, host, 'health')))
    server.listen(port, host, resolve)
  })
  const address = server.address() as AddressInfo
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}
