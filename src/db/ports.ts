import net from 'node:net'

import {DatabaseUnavailableError} from '../shared/errors.js'
import type {Env} from '../shared/config.js'

/** Ports of the embedded server: RVX_PG_PORT, a free one, and a check that one is free. */

export function envPort(env: Env): number | undefined {
  const raw = env.RVX_PG_PORT?.trim()
  if (!raw) return undefined
  const port = Number(raw)
  if (!Number.isInteger(port) || port < 1 || port > 65_535) {
    throw new DatabaseUnavailableError(`RVX_PG_PORT must be a port number from 1 to 65535 (got "${raw}").`, {code: 'bad_port'})
  }

  return port
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const {port} = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}

/** Refuses a port this process cannot listen on; `source` (RVX_PG_PORT, server.json) is where it came from. */
export async function assertPortFree(port: number, source = 'RVX_PG_PORT'): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.once('error', (error: NodeJS.ErrnoException) => reject(portRefused(port, error.code ?? error.message, source, error)))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve()))
  })
}

/** The port the embedded server could not listen on (EADDRINUSE, EACCES, ...), named with where it came from. */
export function portRefused(port: number, code: string, source: string, cause?: unknown): DatabaseUnavailableError {
  const from = source === 'RVX_PG_PORT' ? '' : ` (from ${source})`
  const other = source === 'RVX_PG_PORT' ? 'set RVX_PG_PORT to another port (or unset it)' : `set RVX_PG_PORT, or change "port" in ${source}, to another port`
  if (code === 'EADDRINUSE') {
    return new DatabaseUnavailableError(`port ${port} on 127.0.0.1${from} is already in use: stop what holds it, or ${other}.`, {cause, code: 'port_in_use'})
  }

  if (code === 'EACCES') {
    return new DatabaseUnavailableError(
      `port ${port} on 127.0.0.1${from}: permission denied (ports below 1024 need privileges the embedded server does not have): ${other}, from 1024 to 65535.`,
      {cause, code: 'port_refused'},
    )
  }

  return new DatabaseUnavailableError(`cannot listen on 127.0.0.1:${port}${from} (${code}): ${other}.`, {cause, code: 'port_refused'})
}
