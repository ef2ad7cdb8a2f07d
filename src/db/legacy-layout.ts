import fs from 'node:fs/promises'
import path from 'node:path'

import type {OsUser} from './os-user.js'
import {exists, lastLine, run} from './server-process.js'

/**
 * The layout before the system directory (system-dir.ts): as root, older rvx
 * kept the cluster in $RVX_HOME/pg/data and log/, reachable by the server's OS
 * user only because it opened every directory above RVX_HOME to all users
 * (o+x). Such a cluster keeps serving while it runs; once stopped, the next
 * start moves it into the system directory.
 */
export interface LegacyLayout {
  /** $RVX_HOME/pg */
  dir: string
  data: string
  log: string
}

export function legacyLayout(pgDir: string): LegacyLayout {
  return {dir: pgDir, data: path.join(pgDir, 'data'), log: path.join(pgDir, 'log')}
}

/** True when the cluster is still where older rvx kept it (and not yet in `dataDir`, its place now). */
export async function legacyInUse(legacy: LegacyLayout, dataDir: string): Promise<boolean> {
  return !(await exists(path.join(dataDir, 'PG_VERSION'))) && (await exists(path.join(legacy.data, 'PG_VERSION')))
}

/** Moves a stopped legacy cluster to `to`, closes $RVX_HOME/pg again, and returns what a person should hear. */
export async function moveLegacyCluster(legacy: LegacyLayout, to: {data: string; log: string}, user: OsUser): Promise<string> {
  await fs.rm(to.data, {recursive: true, force: true})
  await move(legacy.data, to.data)
  if ((await exists(legacy.log)) && !(await exists(to.log))) await move(legacy.log, to.log)
  await fs.chmod(legacy.dir, 0o700)
  const opened = await searchOnlyAncestors(legacy.dir)
  const undo =
    opened.length > 0
      ? `; older rvx opened ${opened.join(', ')} to all users (o+x): chmod o-x ${opened.join(' ')} closes that again if nothing else needs it`
      : ''
  return `moved the embedded server's data from ${legacy.data} to ${to.data}: as root, rvx keeps it where only OS user ${user.name} (the server) and root can read it${undo}`
}

async function move(from: string, to: string): Promise<void> {
  try {
    await fs.rename(from, to)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error
    // Another file system: copy with owners and modes (as root), then remove the original.
    const result = await run('cp', ['-a', from, to], null)
    if (result.code !== 0) throw new Error(`cp -a ${from} ${to}: ${lastLine(result.output)}`)
    await fs.rm(from, {recursive: true, force: true})
  }
}

/**
 * Directories above `dir` that others may enter but not list (o+x without
 * o+r): what older rvx did to /root and the like. Reported so a person can
 * close them again; rvx does not change them back on its own, since something
 * else may rely on them by now.
 */
async function searchOnlyAncestors(dir: string): Promise<string[]> {
  const found: string[] = []
  for (let d = path.dirname(dir); path.dirname(d) !== d; d = path.dirname(d)) {
    const st = await fs.stat(d).catch(() => null)
    if (st && (st.mode & 0o005) === 0o001) found.unshift(d)
  }

  return found
}
