import {createHash} from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'

import {DatabaseUnavailableError} from '../shared/errors.js'
import {hydrateSymlinks, type InstalledPrograms, programPath} from './binaries.js'
import type {OsUser} from './os-user.js'
import {exists, lastLine, run} from './server-process.js'
import type {Env} from '../shared/config.js'

/**
 * As root, the embedded server runs as an unprivileged OS user, which must
 * reach its data and its programs. $RVX_HOME (typically under /root, 0700)
 * and the rvx install (anywhere, perhaps under a 0700 directory) are not
 * reachable, and opening them to all users is not acceptable. So a root-run
 * cluster lives in a root-owned system directory instead:
 *
 *   /var/lib/rvx/                   root, 0711 (RVX_PG_SYSTEM_DIR)
 *     <home-slug>-<hash>/           root:<server group>, 0750: one per RVX_HOME
 *       rvx-home                    which RVX_HOME it belongs to (for people)
 *       pgsql/                      a copy of the install's PostgreSQL programs, root:<server group>, 0750
 *       data/                       the cluster, the server user's, 0700
 *       log/                        server log, the server user's, 0700
 *
 * $RVX_HOME/pg keeps only root's files: server.json (credentials) and the start lock.
 */

export const DEFAULT_SYSTEM_DIR = '/var/lib/rvx'

export function systemDir(env: Env): string {
  const dir = env.RVX_PG_SYSTEM_DIR?.trim()
  return dir ? path.resolve(dir) : DEFAULT_SYSTEM_DIR
}

/** The directory of the cluster that belongs to `home`: readable name, unique by hash. */
export function clusterDirFor(home: string, env: Env): string {
  const slug =
    home
      .replace(/^\/+/, '')
      .replace(/[^\w.-]+/g, '-')
      .slice(-40) || 'root'
  const hash = createHash('sha256').update(home).digest('hex').slice(0, 10)
  return path.join(systemDir(env), `${slug}-${hash}`)
}

function systemDirError(message: string, cause?: unknown): DatabaseUnavailableError {
  return new DatabaseUnavailableError(message, {cause, code: 'embedded_system_dir'})
}

/** Creates (or checks) the system directory and the cluster's directory in it, with the ownership described above. */
export async function prepareClusterDir(clusterDir: string, home: string, user: OsUser): Promise<void> {
  try {
    await prepare(clusterDir, home, user)
  } catch (error) {
    if (error instanceof DatabaseUnavailableError) throw error
    throw systemDirError(
      `cannot prepare ${clusterDir} for the embedded server (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}): check that root can write ${path.dirname(clusterDir)}, or set RVX_PG_SYSTEM_DIR elsewhere.`,
      error,
    )
  }
}

async function prepare(clusterDir: string, home: string, user: OsUser): Promise<void> {
  const base = path.dirname(clusterDir)
  try {
    await fs.mkdir(path.dirname(base), {recursive: true, mode: 0o755})
    // A base rvx creates is 0711: the server user may pass through, nobody may list which homes have clusters.
    if (await mkdirOwn(base)) await fs.chmod(base, 0o711)
  } catch (error) {
    throw systemDirError(
      `as root, rvx keeps the embedded server's data in ${base}, which cannot be created (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}): set RVX_PG_SYSTEM_DIR to a directory root can write, or set DATABASE_URL.`,
      error,
    )
  }

  // Root writes and chowns in here: nobody else may be able to plant files or links in it.
  const st = await fs.lstat(base)
  if (!st.isDirectory() || st.uid !== 0 || (st.mode & 0o022) !== 0) {
    throw systemDirError(
      `${base} must be a directory owned by root and writable only by root (it is ${st.isDirectory() ? `mode ${octal(st.mode)}, owner uid ${st.uid}` : 'not a directory'}): fix it, or set RVX_PG_SYSTEM_DIR elsewhere.`,
    )
  }

  // Said before anything is copied there: the server user must be able to pass through every directory down to it.
  const closed = await firstClosedDirectory(clusterDir, user)
  if (closed) throw unreachable(user, closed)

  await mkdirOwn(clusterDir)
  const own = await fs.lstat(clusterDir)
  if (!own.isDirectory() || own.uid !== 0) {
    throw systemDirError(`${clusterDir} is not a directory owned by root: move it aside and run rvx again.`)
  }

  await fs.chown(clusterDir, 0, user.gid)
  await fs.chmod(clusterDir, 0o750)
  await fs.writeFile(path.join(clusterDir, 'rvx-home'), home + '\n', {mode: 0o640})
}

/** An existing cluster runs as the OS user that owns it; another one (RVX_PG_OS_USER changed) could not read it. */
export async function assertClusterOwner(dataDir: string, logDir: string, user: OsUser): Promise<void> {
  const {uid} = await fs.stat(dataDir)
  if (uid !== user.uid) {
    throw new DatabaseUnavailableError(
      `the embedded server's data in ${dataDir} belongs to uid ${uid}, not to OS user ${user.name}: unset RVX_PG_OS_USER, or chown -R ${user.name} ${dataDir} ${logDir}.`,
      {code: 'embedded_os_user'},
    )
  }
}

/** mkdir that tells whether it created the directory. */
async function mkdirOwn(dir: string): Promise<boolean> {
  try {
    await fs.mkdir(dir, {mode: 0o700})
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw error
  }
}

const STAMP = '.rvx-release'

/**
 * The cluster's copy of the install's PostgreSQL programs, made when missing,
 * and on `start` (the server is stopped) replaced when the installed release
 * changed and checked to run as `user`. Returns its native dir.
 */
export async function clusterPrograms(clusterDir: string, installed: InstalledPrograms, user: OsUser, options: {start: boolean}): Promise<string> {
  const dir = path.join(clusterDir, 'pgsql')
  const current = await fs.readFile(path.join(dir, STAMP), 'utf8').catch(() => null)
  const copy = current === null || (options.start && current.trim() !== installed.release)
  if (copy) await copyPrograms(installed, dir, user)
  if (copy || options.start) await probe(dir, user)
  return dir
}

async function copyPrograms(installed: InstalledPrograms, dir: string, user: OsUser): Promise<void> {
  const tmp = `${dir}.new-${process.pid}`
  const old = `${dir}.old-${process.pid}`
  await fs.rm(tmp, {recursive: true, force: true})
  try {
    await fs.cp(installed.nativeDir, tmp, {recursive: true, verbatimSymlinks: true})
    const missing = await hydrateSymlinks(tmp)
    if (missing.length > 0) throw new Error(`cannot link ${missing[0]}`)
    await restrict(tmp, user.gid)
    await fs.writeFile(path.join(tmp, STAMP), installed.release + '\n', {mode: 0o640})
    await fs.chown(path.join(tmp, STAMP), 0, user.gid)
  } catch (error) {
    await fs.rm(tmp, {recursive: true, force: true})
    throw systemDirError(
      `cannot copy the PostgreSQL programs from ${installed.nativeDir} to ${dir} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}): check that the rvx install is complete and ${path.dirname(dir)} is writable.`,
      error,
    )
  }

  if (await exists(dir)) await fs.rename(dir, old)
  await fs.rename(tmp, dir)
  await fs.rm(old, {recursive: true, force: true})
}

/** root:<group>, directories and programs 0750, other files 0640; symlinks as they are. */
async function restrict(dir: string, gid: number): Promise<void> {
  for (const entry of await fs.readdir(dir, {withFileTypes: true})) {
    const p = path.join(dir, entry.name)
    if (entry.isSymbolicLink()) {
      await fs.lchown(p, 0, gid)
    } else if (entry.isDirectory()) {
      await restrict(p, gid)
    } else {
      const st = await fs.stat(p)
      await fs.chown(p, 0, gid)
      await fs.chmod(p, st.mode & 0o100 ? 0o750 : 0o640)
    }
  }

  await fs.chown(dir, 0, gid)
  await fs.chmod(dir, 0o750)
}

/** The copy must run as the server user: `postgres --version` proves the path is reachable and the libraries load. */
async function probe(dir: string, user: OsUser): Promise<void> {
  const program = programPath(dir, 'postgres')
  let result: {code: number; output: string}
  try {
    result = await run(program, ['--version'], user)
  } catch (error) {
    throw unreachable(user, await firstClosedDirectory(program, user), program, error)
  }

  if (result.code !== 0) {
    throw systemDirError(`the PostgreSQL programs copied to ${dir} do not run as OS user ${user.name}: ${lastLine(result.output)}.`)
  }
}

function unreachable(user: OsUser, closed: {dir: string; mode: number} | null, target?: string, cause?: unknown): DatabaseUnavailableError {
  const where = closed ? `${closed.dir} (mode ${octal(closed.mode)}) is closed to it` : `it cannot reach ${target}`
  return systemDirError(
    `PostgreSQL runs as OS user ${user.name}, and ${where}: set RVX_PG_SYSTEM_DIR to a directory that user can reach (default ${DEFAULT_SYSTEM_DIR}), or set DATABASE_URL.`,
    cause,
  )
}

/** The first directory on the way to `target` that `user` may not pass through (by its mode bits), if any. */
export async function firstClosedDirectory(target: string, user: OsUser): Promise<{dir: string; mode: number} | null> {
  const chain: string[] = []
  for (let dir = path.dirname(target); ; dir = path.dirname(dir)) {
    chain.unshift(dir)
    if (path.dirname(dir) === dir) break
  }

  for (const dir of chain) {
    const st = await fs.stat(dir).catch(() => null)
    if (!st) return null
    const bit = st.uid === user.uid ? 0o100 : st.gid === user.gid ? 0o010 : 0o001
    if ((st.mode & bit) === 0) return {dir, mode: st.mode}
  }

  return null
}

export function octal(mode: number): string {
  return '0' + (mode & 0o7777).toString(8).padStart(3, '0')
}
