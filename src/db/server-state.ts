import fs from 'node:fs/promises'

import {DatabaseUnavailableError} from '../shared/errors.js'

/** server.json: how to reach the embedded server (port, credentials) and who it runs as. 0600, owned by the invoking user. */

export const STATE_VERSION = 1

export interface ServerState {
  version: number
  port: number
  user: string
  password: string
  database: string
  /** OS user the server runs as when rvx itself runs as root; null otherwise. */
  osUser: string | null
  createdAt: string
  /**
   * Set once the server has been started on this port and its database
   * created: until then (a first start interrupted after initdb) every start
   * finishes the job. Absent in files of older rvx: checked once, then set.
   */
  ready?: boolean
}

export function connectionUrl(state: ServerState, options: {database?: string; maskPassword?: boolean} = {}): string {
  const password = options.maskPassword ? '****' : encodeURIComponent(state.password)
  return `postgres://${encodeURIComponent(state.user)}:${password}@127.0.0.1:${state.port}/${encodeURIComponent(options.database ?? state.database)}`
}

/** The state in `file`; null before the first start. */
export async function readState(file: string, dataDir: string): Promise<ServerState | null> {
  let raw: string
  try {
    raw = await fs.readFile(file, 'utf8')
  } catch (error) {
    if (['ENOENT', 'ENOTDIR'].includes((error as NodeJS.ErrnoException).code ?? '')) return null
    throw new DatabaseUnavailableError(`cannot read ${file}: ${(error as Error).message}. Check the permissions of RVX_HOME.`, {cause: error})
  }

  let state: ServerState
  try {
    state = JSON.parse(raw) as ServerState
    if (state.version !== STATE_VERSION || typeof state.password !== 'string' || typeof state.user !== 'string' || typeof state.database !== 'string')
      throw new Error('unexpected content')
  } catch (error) {
    throw new DatabaseUnavailableError(
      `${file} is damaged (${(error as Error).message}): stop any server using ${dataDir} and move RVX_HOME aside to start fresh.`,
      {cause: error, code: 'embedded_state_damaged'},
    )
  }

  // The file is the setting: a bad value in it is named there, not taken for a DATABASE_URL problem later.
  if (!(Number.isInteger(state.port) && state.port >= 1 && state.port <= 65_535)) {
    throw new DatabaseUnavailableError(
      `${file} has "port": ${JSON.stringify(state.port)}, not a port from 1 to 65535: put the server's port back in that file (its log, beside the data, says which it listened on).`,
      {code: 'bad_port'},
    )
  }

  return state
}

export async function writeState(file: string, state: ServerState): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`
  await fs.writeFile(tmp, JSON.stringify(state, null, 2) + '\n', {mode: 0o600})
  await fs.rename(tmp, file)
}
