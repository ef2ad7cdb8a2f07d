import net from 'node:net'

import {DatabaseUnavailableError} from '../shared/errors.js'

/** Ports of the embedded server: RVX_PG_PORT, a free one, and a check that one is free. */

export function envPort(env: NodeJS.ProcessEnv): number | undefined {
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

export async function assertPortFree(port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE') {
        reject(
          new DatabaseUnavailableError(`port ${port} on 127.0.0.1 is already in use: stop what holds it, or set RVX_PG_PORT to a free port.`, {
            code: 'port_in_use',
          }),
        )
      } else {
        reject(
          new DatabaseUnavailableError(`cannot listen on 127.0.0.1:${port} (${error.code}): set RVX_PG_PORT to another port.`, {
            cause: error,
            code: 'port_in_use',
          }),
        )
      }
    })
    server.listen(port, '127.0.0.1', () => server.close(() => resolve()))
  })
}
