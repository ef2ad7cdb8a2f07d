import path from 'node:path'
import {fileURLToPath} from 'node:url'

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
