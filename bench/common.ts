import fs from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {Kysely, PostgresDialect} from 'kysely'

import {createPool} from '../src/db/connect.js'
import type {EmbeddedServer} from '../src/db/embedded.js'
import type {Database} from '../src/db/schema.js'
import {sleep} from '../src/runtime/index.js'

/** The repository root. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

// The compiled CLI when it is built (what users run), else the same CLI from source.
export const BIN = fs.existsSync(path.join(ROOT, 'dist', 'src', 'commands')) ? path.join(ROOT, 'bin', 'run.js') : path.join(ROOT, 'bin', 'dev.js')

/** The newest modification time of the files under `dir` (recursively), 0 when there are none. */
function newest(dir: string, ext: string): number {
  if (!fs.existsSync(dir)) return 0
  let max = 0
  for (const entry of fs.readdirSync(dir, {withFileTypes: true, recursive: true})) {
    if (entry.isFile() && entry.name.endsWith(ext)) max = Math.max(max, fs.statSync(path.join(entry.parentPath, entry.name)).mtimeMs)
  }

  return max
}

/** True when BIN runs dist/ and some file of src/ changed after the last build: the bench would measure old code. */
export function distIsStale(): boolean {
  return BIN.endsWith('run.js') && newest(path.join(ROOT, 'src'), '.ts') > newest(path.join(ROOT, 'dist', 'src'), '.js')
}

/** Polls `check` until it holds; throws after timeoutMs. */
export async function waitUntil(check: () => Promise<boolean>, timeoutMs = 600_000, everyMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('bench step timed out')
    await sleep(everyMs)
  }
}

export function kysely(url: string, max = 4): Kysely<Database> {
  return new Kysely<Database>({dialect: new PostgresDialect({pool: createPool(url, {max})})})
}

/** The version in a package.json (read from the file: some packages do not export it). */
export function packageVersion(dir: string): string {
  return (JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as {version: string}).version
}

/** The installed version of a dependency. */
export const installedVersion = (name: string) => packageVersion(path.join(ROOT, 'node_modules', name))

/**
 * For exit handlers, which cannot await: stops the bench's embedded server at once (SIGQUIT), waits up to 10 s for
 * its postmaster to go, and removes its cluster (as root, in the system directory) and `home`.
 */
export function destroyServerSync(server: EmbeddedServer, home: string): void {
  const pidFile = path.join(server.dataDir, 'postmaster.pid')
  const pid = fs.existsSync(pidFile) ? Number(fs.readFileSync(pidFile, 'utf8').split('\n')[0]) : Number.NaN
  server.stopNowSync()
  const alive = () => {
    try {
      process.kill(pid, 0)
      return true
    } catch {
      return false
    }
  }

  const nap = new Int32Array(new SharedArrayBuffer(4))
  const deadline = Date.now() + 10_000
  while (Number.isInteger(pid) && pid > 0 && alive() && Date.now() < deadline) Atomics.wait(nap, 0, 0, 50)
  if (server.clusterDir) fs.rmSync(server.clusterDir, {recursive: true, force: true})
  fs.rmSync(home, {recursive: true, force: true})
}
