import fs from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {Kysely, PostgresDialect} from 'kysely'

import {createPool} from '../src/db/connect.js'
import type {Database} from '../src/db/schema.js'
import {sleep} from '../src/runtime/index.js'

/** The repository root. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

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
