import {createRequire} from 'node:module'
import type PgModule from 'pg'

/**
 * node-postgres, as every rvx module gets it (import pg from here, not from 'pg').
 *
 * When pg loads, it asks whether it runs on Cloudflare Workers: by
 * `navigator.userAgent` where there is a navigator (Node >= 21), else by
 * constructing a fetch `Response`. On Node 20, which has no navigator, that
 * one `Response` loads Node's whole built-in fetch implementation (undici),
 * a cost every rvx command paid at start for nothing. So pg's stream module is
 * loaded first with the navigator Node 21 would have, which is removed again at
 * once (the require is synchronous: no other code sees it).
 */
const require = createRequire(import.meta.url)
if (!('navigator' in globalThis)) {
  Object.defineProperty(globalThis, 'navigator', {value: {userAgent: `Node.js/${process.versions.node.split('.')[0]}`}, configurable: true})
  try {
    require('pg/lib/stream.js')
  } finally {
    delete (globalThis as {navigator?: unknown}).navigator
  }
}

const pg = require('pg') as typeof PgModule
export default pg
