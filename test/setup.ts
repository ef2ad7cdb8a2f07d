/**
 * Root hooks: one real embedded PostgreSQL per test run (temp dir, free
 * port, 127.0.0.1), stopped at the end even when tests fail or mocha is
 * interrupted. Test files get their own databases from helpers/db.ts.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {EmbeddedServer} from '../src/db/embedded.js'

let server: EmbeddedServer | undefined
let home: string | undefined
let systemDir: string | undefined

function stopNow(): void {
  server?.stopNowSync()
}

export async function mochaGlobalSetup(): Promise<void> {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-test-'))
  // As root, clusters live in a system directory (default /var/lib/rvx): every server of this run, and every rvx it
  // spawns, keeps its cluster in one of our own instead, removed with the rest at the end. 0711 as rvx makes it.
  systemDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-test-system-'))
  fs.chmodSync(systemDir, 0o711)
  process.env.RVX_PG_SYSTEM_DIR = systemDir
  server = new EmbeddedServer({
    home,
    env: {...process.env, RVX_PG_PORT: ''},
    // Durability is not under test here (a clean or immediate stop keeps data in the page cache); speed is welcome.
    settings: {fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off', max_connections: '400'},
  })
  const {url} = await server.start()
  process.env.RVX_TEST_ADMIN_URL = url
  process.env.RVX_TEST_HOME = home
  process.once('exit', stopNow)
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      stopNow()
      process.exit(signal === 'SIGINT' ? 130 : 143)
    })
  }
}

export async function mochaGlobalTeardown(): Promise<void> {
  await server?.stop()
  if (home) fs.rmSync(home, {recursive: true, force: true})
  if (systemDir) fs.rmSync(systemDir, {recursive: true, force: true})
  process.removeListener('exit', stopNow)
}
