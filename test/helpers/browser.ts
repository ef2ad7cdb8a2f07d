import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {type BrowserContext, chromium} from 'playwright-core'

/** Debian's Chromium (apt-get install chromium; .ci/run installs it): playwright-core never downloads a browser of its own here. */
export const CHROMIUM = process.env.RVX_CHROMIUM ?? '/usr/bin/chromium'

export interface Browser {
  context: BrowserContext
  close(): Promise<void>
}

/** Headless Chromium with a fresh profile that is removed on close; nothing reaches the network but what the test asks for. */
export async function launchBrowser(): Promise<Browser> {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium), as .ci/run does`)
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-chromium-'))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    acceptDownloads: true,
    viewport: {width: 1280, height: 1000},
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    timeout: 30_000,
  })
  return {
    context,
    async close() {
      await context.close().catch(() => {})
      fs.rmSync(profile, {recursive: true, force: true})
    },
  }
}
