import {type Context, Hono} from 'hono'
import {secureHeaders} from 'hono/secure-headers'
import {streamSSE} from 'hono/streaming'
import type {Kysely} from 'kysely'

import {isConnectionError} from '../db/connection-errors.js'
import type {Database, RunStatus} from '../db/schema.js'
import {renderRun} from '../pipeline/export.js'
import {getRun} from '../pipeline/runs.js'
import type {Logger} from '../runtime/logger.js'
import {DatabaseUnavailableError, RvxError} from '../shared/errors.js'
import type {Asset} from './assets.js'
import {guard} from './auth.js'
import {loadSource, MAX_PAGE, RUN_STATUSES, type RunPages} from './data.js'
import type {LiveHub} from './live.js'
import {fleetView} from './pages/fleet.js'
import {layout, messagePage} from './pages/layout.js'
import {isRunStatus} from './pages/parts.js'
import {runView} from './pages/run.js'
import {runsView} from './pages/runs.js'
import type {View} from './pages/view.js'

export interface AppOptions {
  db: Kysely<Database>
  hub: LiveHub
  token?: string
  assets: Map<string, Asset>
  log: Logger
}

class BadRequest extends Error {}

/**
 * The dashboard's routes, all GET (it changes nothing a person asked for):
 * pages, the SSE stream that keeps them live, the run downloads, assets.
 */
export function dashboardApp(o: AppOptions): Hono {
  const app = new Hono()

  app.use(
    '*',
    secureHeaders({
      contentSecurityPolicy: {
        defaultSrc: ["'none'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'"],
        connectSrc: ["'self'"],
        baseUri: ["'none'"],
        formAction: ["'none'"],
        frameAncestors: ["'none'"],
      },
      xFrameOptions: 'DENY',
      referrerPolicy: 'no-referrer',
      // TLS is a proxy's business; HSTS from here could bind other hosts of the domain.
      strictTransportSecurity: false,
    }),
  )
  app.use('*', guard(o.token))
  app.use('*', async (c, next) => {
    await next()
    if (!c.res.headers.has('Cache-Control')) c.header('Cache-Control', 'no-store')
  })

  const page = async (c: Context, view: View) => {
    const data = new Map<string, unknown>()
    for (const key of view.sources) data.set(key, await loadSource(o.db, key))
    const regions = view.regions((key) => data.get(key))
    return c.html(String(layout({title: view.title, nav: view.nav, live: view.live, body: view.page(regions)})))
  }

  app.get('/', (c) => c.redirect('/runs', 302))
  app.get('/runs', (c) => page(c, runsView(statusParam(c.req.query('status')), pageParam(c.req.query('p'), 'p'))))
  app.get('/runs/:id{[0-9]{1,15}}', (c) => page(c, runView(Number(c.req.param('id')), runPages(c.req.query()))))
  app.get('/fleet', (c) => page(c, fleetView()))

  app.get('/runs/:id{[0-9]{1,15}}/:file{(companies|contacts)\\.(csv|json)}', async (c) => {
    const id = Number(c.req.param('id'))
    const [name, format] = c.req.param('file').split('.') as ['companies' | 'contacts', 'csv' | 'json']
    const rendered = await renderRun(o.db, id, format)
    return c.body(rendered.files[name], 200, {
      'Content-Type': format === 'csv' ? 'text/csv; charset=utf-8' : 'application/json; charset=utf-8',
      'Content-Disposition': `attachment; filename="run-${id}-${name}.${format}"`,
    })
  })

  app.get('/events', async (c) => {
    const view = viewOf(c.req.query())
    // A run that does not exist is a 404 now (EventSource then stops), not a stream whose every tick fails and logs.
    if (c.req.query('page') === 'run') await getRun(o.db, Number(c.req.query('id')))
    if (o.hub.full) return c.text('rvx dashboard: too many live viewers; try again later\n', 503)
    return streamSSE(c, async (stream) => {
      let end: () => void = () => {}
      const ended = new Promise<void>((resolve) => (end = resolve))
      stream.onAbort(() => end())
      const unsubscribe = o.hub.subscribe(view, {send: (event, data) => stream.writeSSE({event, data}), close: () => end()})
      if (!unsubscribe) return
      // Reconnect quickly after a restart of the dashboard.
      await stream.writeSSE({event: 'hello', data: view.key, retry: 2000})
      await ended
      unsubscribe()
    })
  })

  app.get('/assets/:name', (c) => {
    const asset = o.assets.get(c.req.param('name'))
    if (!asset) return c.notFound()
    return c.body(asset.body, 200, {'Content-Type': asset.type, 'Cache-Control': 'public, max-age=300'})
  })

  // Browsers ask for /favicon.ico whatever a page links: the same icon, not a 404.
  app.get('/favicon.ico', (c) => {
    const icon = o.assets.get('favicon.svg')!
    return c.body(icon.body, 200, {'Content-Type': icon.type, 'Cache-Control': 'public, max-age=86400'})
  })

  app.get('/healthz', (c) => c.text('ok\n'))

  app.notFound((c) => c.html(String(messagePage('Not found', 'Nothing here: the dashboard has /runs and /fleet.')), 404))
  app.onError((error, c) => {
    if (error instanceof BadRequest) return c.html(String(messagePage('Bad request', error.message)), 400)
    if (error instanceof RvxError && error.code === 'run_not_found') return c.html(String(messagePage('Not found', `${error.message}.`)), 404)
    if (error instanceof DatabaseUnavailableError || isConnectionError(error)) {
      o.log.warn({error: error.message}, 'dashboard: the database is unavailable')
      return c.html(String(messagePage('Database unavailable', 'The dashboard cannot reach the database right now; reload in a moment.')), 503)
    }

    o.log.error({error: error.message, path: c.req.path}, 'dashboard: request failed')
    return c.html(String(messagePage('Error', 'Something went wrong on the server; its log says what.')), 500)
  })
  return app
}

function statusParam(value: string | undefined): RunStatus | null {
  if (value === undefined || value === '' || value === 'all') return null
  if (!isRunStatus(value, RUN_STATUSES)) throw new BadRequest(`status must be one of ${RUN_STATUSES.join(', ')} (or all)`)
  return value
}

/** A page number from the address (absent: the first); anything but 1 to MAX_PAGE is a bad request naming `name`. */
function pageParam(value: string | undefined, name: string): number {
  if (value === undefined || value === '') return 1
  const n = /^[0-9]{1,6}$/.test(value) ? Number(value) : Number.NaN
  if (!(n >= 1 && n <= MAX_PAGE)) throw new BadRequest(`${name} must be a page number from 1 to ${MAX_PAGE}`)
  return n
}

/** Which page of its selected and disqualified companies a run page shows (?selected=N&disqualified=N). */
function runPages(q: Record<string, string>): RunPages {
  return {selected: pageParam(q.selected, 'selected'), disqualified: pageParam(q.disqualified, 'disqualified')}
}

/** The view a stream follows: ?page=runs[&status=S][&p=N], ?page=run&id=N[&selected=N&disqualified=N], ?page=fleet. */
function viewOf(q: Record<string, string>): View {
  if (q.page === 'runs') return runsView(statusParam(q.status), pageParam(q.p, 'p'))
  if (q.page === 'fleet') return fleetView()
  if (q.page === 'run' && /^[0-9]{1,15}$/.test(q.id ?? '')) return runView(Number(q.id), runPages(q))
  throw new BadRequest('events: use ?page=runs[&status=S][&p=N], ?page=run&id=N or ?page=fleet')
}
