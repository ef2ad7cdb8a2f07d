import {spawnSync} from 'node:child_process'

import {DatabaseUnavailableError} from '../shared/errors.js'

/** The unprivileged OS user the embedded server runs as when rvx runs as root (PostgreSQL refuses root). */
export interface OsUser {
  name: string
  uid: number
  gid: number
}

export function lookupUser(name: string): OsUser | null {
  const res = spawnSync('id', ['-u', '--', name], {encoding: 'utf8'})
  const gid = spawnSync('id', ['-g', '--', name], {encoding: 'utf8'})
  if (res.status !== 0 || gid.status !== 0) return null
  return {name, uid: Number(res.stdout.trim()), gid: Number(gid.stdout.trim())}
}

/**
 * The OS user the embedded server runs as when rvx is root: the one asked for
 * (RVX_PG_OS_USER), else the one it ran as before, else `postgres`, else a
 * system user `rvx-postgres` created for it. A user that was asked for or
 * remembered but does not exist is an error: the server never silently runs
 * as someone else.
 */
export function serverOsUser(wanted: string | undefined, remembered: string | undefined): OsUser {
  if (wanted) return namedUser(wanted, 'RVX_PG_OS_USER')
  if (remembered) return namedUser(remembered, 'remembered')
  for (const name of ['postgres', 'rvx-postgres']) {
    const user = lookupUser(name)
    if (user) return user
  }

  const created = spawnSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', 'rvx-postgres'], {stdio: 'ignore'})
  const user = created.status === 0 ? lookupUser('rvx-postgres') : lookupUser('nobody')
  if (!user) {
    throw new DatabaseUnavailableError(
      'rvx runs as root and PostgreSQL refuses root, but no unprivileged OS user could be found or created: set RVX_PG_OS_USER to one.',
      {code: 'embedded_no_os_user'},
    )
  }

  return user
}

/** Without root, the server runs as the invoking user; RVX_PG_OS_USER may name only that user. */
export function assertOwnUser(wanted: string | undefined): void {
  if (!wanted) return
  const user = namedUser(wanted, 'RVX_PG_OS_USER')
  if (typeof process.getuid === 'function' && user.uid !== process.getuid()) {
    throw new DatabaseUnavailableError(
      `RVX_PG_OS_USER=${wanted}: only root can run the embedded server as another OS user; unset RVX_PG_OS_USER (the server runs as you) or run rvx as root.`,
      {code: 'embedded_os_user'},
    )
  }
}

function namedUser(name: string, source: 'RVX_PG_OS_USER' | 'remembered'): OsUser {
  const user = lookupUser(name)
  if (!user) {
    throw new DatabaseUnavailableError(
      source === 'RVX_PG_OS_USER'
        ? `RVX_PG_OS_USER=${name} names no such OS user: create it (useradd --system ${name}) or unset RVX_PG_OS_USER to let rvx choose.`
        : `the embedded server ran as OS user ${name}, which no longer exists: create it again (useradd --system ${name}), or set RVX_PG_OS_USER to another unprivileged user and give it the data (rvx db status shows where).`,
      {code: 'embedded_os_user'},
    )
  }

  if (user.uid === 0) {
    throw new DatabaseUnavailableError(`OS user ${name} is root, and PostgreSQL refuses to run as root: set RVX_PG_OS_USER to an unprivileged user.`, {
      code: 'embedded_os_user',
    })
  }

  return user
}
