import type {Env as Environment} from '../../shared/config.js'
import {createRoute, OpenAPIHono, type RouteConfig, z} from '@hono/zod-openapi'
import type {Context, MiddlewareHandler} from 'hono'
import {bodyLimit} from 'hono/body-limit'
import type {Kysely} from 'kysely'

import type {Database} from '../../db/schema.js'
import {fleetStatus} from '../../monitor/fleet.js'
import {createRunOnce, requestProblem, RunRequestSchema, runInput} from '../../monitor/run-request.js'
import {addSchedule, getSchedule, listSchedules, removeSchedule, ScheduleRequestSchema, setPaused} from '../../monitor/schedules.js'
import {
  addWebhook,
  checkWebhookUrl,
  deliverWebhooks,
  getWebhook,
  listDeliveries,
  listWebhooks,
  parseEvents,
  queueTestEvent,
  redeliver,
  removeWebhook,
} from '../../monitor/webhooks.js'
import {renderRun} from '../../pipeline/export.js'
import {contactsPage, leadsPage} from '../../pipeline/leads.js'
import {RUN_STATUSES, runIdsPage} from '../../pipeline/run-listing.js'
import {continueRun, pauseRun} from '../../pipeline/pause.js'
import {acceptRun, cancelRun, createRun, getRun} from '../../pipeline/runs.js'
import {runProgress, runsOverview} from '../../pipeline/run-views.js'
import type {RunRow, RunStatus} from '../../db/schema.js'
import type {Logger} from '../../runtime/logger.js'
import {UsageError} from '../../shared/errors.js'
import {problemOf, problemResponse} from './problem.js'
import {RateLimiter} from './rate-limit.js'
import {
  CompanyPageSchema,
  ContactPageSchema,
  CreatedWebhookSchema,
  DeliveryParams,
  DeliverySchema,
  FleetSchema,
  IdParam,
  NewWebhookSchema,
  PageQuery,
  ProblemSchema,
  RunPageSchema,
  RunSchema,
  ScheduleSchema,
  WebhookSchema,
} from './schemas.js'
import {allows, authenticate, type Scope} from '../../db/api-tokens.js'

export interface ApiOptions {
  db: Kysely<Database>
  log: Logger
  /** Requests per minute per token (default 600). */
  ratePerMinute?: number
  /** Request bodies larger than this are refused (default 1 MiB). */
  maxBodyBytes?: number
  /** RVX_ALLOW_PRIVATE_WEBHOOKS=1: webhooks may point at private and loopback addresses. */
  allowPrivateWebhooks?: boolean
  /** The server's environment (read once by its command): the provider a run gets when its request names none. */
  env: Environment
}

type Env = {Variables: {token: {id: number; name: string; scope: Scope}}}

const json = (schema: z.ZodType, description: string) => ({content: {'application/json': {schema}}, description})
const problems = {
  400: {content: {'application/problem+json': {schema: ProblemSchema}}, description: 'Bad input: detail says which and what to do.'},
  401: {content: {'application/problem+json': {schema: ProblemSchema}}, description: 'No token, or one that is unknown or revoked.'},
  403: {content: {'application/problem+json': {schema: ProblemSchema}}, description: 'The token lacks the write scope.'},
  404: {content: {'application/problem+json': {schema: ProblemSchema}}, description: 'No such thing.'},
  429: {content: {'application/problem+json': {schema: ProblemSchema}}, description: 'Over the rate limit: wait Retry-After seconds.'},
}
const actionProblems = {...problems, 409: {content: {'application/problem+json': {schema: ProblemSchema}}, description: 'Not in a state that allows it.'}}
const body = (schema: z.ZodType, required = true) => ({body: {content: {'application/json': {schema}}, required}})

/** A page size from ?limit (1-100). */
function pageSize(limit: string | undefined, fallback = 50): number {
  const n = limit === undefined ? fallback : Number(limit)
  if (!Number.isInteger(n) || n < 1 || n > 100) throw new UsageError(`must be from 1 to 100 (got ${limit})`, {field: 'limit'})
  return n
}

const nextCursor = <T extends {id: number}>(items: T[], limit: number) => (items.length === limit ? String(items.at(-1)!.id) : null)

/**
 * The HTTP API under /api/v1: runs (create, list, read, export, cancel,
 * resume, accept), the fleet, webhooks and schedules. Every request needs a
 * token (Authorization: Bearer rvx_...); GETs need read, the rest write.
 * Request bodies are validated by the schemas the CLI uses, and errors are
 * problem details with the CLI's wording. The OpenAPI 3.1 document is
 * generated from the same schemas (GET /api/v1/openapi.json).
 */
export function apiApp(o: ApiOptions): OpenAPIHono<Env> {
  const db = o.db
  const limiter = new RateLimiter(o.ratePerMinute ?? 600)
  const allowPrivate = o.allowPrivateWebhooks ?? false
  const app = new OpenAPIHono<Env>({
    // A body the schema refuses: the first problem, worded as the CLI words it.
    defaultHook: (result, c) => {
      if (!result.success) return problemResponse({status: 400, ...wordingOf(requestProblem(result.error.issues[0]))}, {}, c.req.path)
    },
  }).basePath('/api/v1')

  app.openAPIRegistry.registerComponent('securitySchemes', 'token', {
    type: 'http',
    scheme: 'bearer',
    description: 'An API token from rvx tokens create (read or write scope).',
  })

  const maxBytes = o.maxBodyBytes ?? 1024 * 1024
  const limit = bodyLimit({
    maxSize: maxBytes,
    onError: (c) => problemResponse({status: 413, detail: `request bodies are limited to ${maxBytes} bytes`, code: 'usage'}, {}, c.req.path),
  })
  // Only POST carries a body here (hono's limiter also fails on a DELETE).
  app.use('*', (c, next) => (c.req.method === 'POST' ? limit(c, next) : next()))
  app.use('*', authenticated(o, limiter))
  app.use('*', async (c, next) => {
    await next()
    if (!c.res.headers.has('Cache-Control')) c.header('Cache-Control', 'no-store')
  })

  /** Registers a documented route; handlers build their answers from the pipeline's own types, which the response schemas describe. */
  const route = <R extends RouteConfig>(config: R, handler: (c: Context<Env>) => Promise<Response>) =>
    app.openapi({...config, security: [{token: []}]}, handler as never)

  // --- runs

  route(
    createRoute({
      method: 'post',
      path: '/runs',
      summary: 'Create a run (the fleet drives it, as orchestrate --detach).',
      description: 'An Idempotency-Key header makes a retried POST return the run the first one created.',
      request: {...body(RunRequestSchema), headers: z.object({'idempotency-key': z.string().max(200).optional()})},
      responses: {
        201: json(RunSchema, 'The run.'),
        ...problems,
        422: {content: {'application/problem+json': {schema: ProblemSchema}}, description: 'The Idempotency-Key was used for a different request.'},
      },
    }),
    async (c) => {
      const raw = (c.req as unknown as {valid(t: 'json'): z.output<typeof RunRequestSchema>}).valid('json')
      const input = runInput(raw, o.env)
      const key = c.req.header('idempotency-key')
      const run = key === undefined ? await createRun(db, input) : await createRunOnce(db, {tokenId: c.get('token').id, key, request: raw}, input)
      return c.json(await runProgress(db, run.id), 201)
    },
  )

  route(
    createRoute({
      method: 'get',
      path: '/runs',
      summary: 'Runs, newest first, a page at a time.',
      request: {query: PageQuery.extend({status: z.enum(RUN_STATUSES as [string, ...string[]]).optional()})},
      responses: {200: json(RunPageSchema, 'A page of runs; next_cursor gives the next.'), ...problems},
    }),
    async (c) => {
      const limit = pageSize(c.req.query('limit'), 20)
      const cursor = c.req.query('cursor')
      const status = c.req.query('status') as RunStatus | undefined
      const ids = await runIdsPage(db, {status, beforeId: cursor === undefined ? undefined : Number(cursor), limit})
      const runs = (await Promise.all(ids.map((r) => runsOverview(db, {id: r.id, limit: 1})))).flat()
      return c.json({runs, next_cursor: nextCursor(ids, limit)})
    },
  )

  route(
    createRoute({
      method: 'get',
      path: '/runs/{id}',
      summary: 'One run (as rvx runs show --json).',
      request: {params: IdParam},
      responses: {200: json(RunSchema, 'The run.'), ...problems},
    }),
    async (c) => c.json(await runProgress(db, Number(c.req.param('id')))),
  )

  route(
    createRoute({
      method: 'get',
      path: '/runs/{id}/companies',
      summary: "A run's companies with their verdicts and evidence, in id order (pages stay stable while the run writes).",
      request: {params: IdParam, query: PageQuery.extend({status: z.enum(['candidate', 'qualified', 'disqualified', 'selected']).optional()})},
      responses: {200: json(CompanyPageSchema, 'A page of companies.'), ...problems},
    }),
    async (c) => {
      const runId = (await getRun(db, Number(c.req.param('id')))).id
      const limit = pageSize(c.req.query('limit'))
      const status = c.req.query('status') as 'candidate' | 'qualified' | 'disqualified' | 'selected' | undefined
      const companies = await leadsPage(db, runId, {status, afterId: Number(c.req.query('cursor') ?? 0), limit})
      return c.json({companies, next_cursor: nextCursor(companies, limit)})
    },
  )

  route(
    createRoute({
      method: 'get',
      path: '/runs/{id}/contacts',
      summary: "A run's contacts, in id order.",
      request: {params: IdParam, query: PageQuery},
      responses: {200: json(ContactPageSchema, 'A page of contacts.'), ...problems},
    }),
    async (c) => {
      const runId = (await getRun(db, Number(c.req.param('id')))).id
      const limit = pageSize(c.req.query('limit'))
      const contacts = await contactsPage(db, runId, {afterId: Number(c.req.query('cursor') ?? 0), limit})
      return c.json({contacts, next_cursor: nextCursor(contacts, limit)})
    },
  )

  route(
    createRoute({
      method: 'get',
      path: '/runs/{id}/export.csv',
      summary: 'The CSV rvx runs export writes (the same bytes).',
      request: {params: IdParam, query: z.object({table: z.enum(['companies', 'contacts']).optional().describe('Which file (default companies).')})},
      responses: {200: {content: {'text/csv': {schema: z.string()}}, description: 'companies.csv or contacts.csv.'}, ...problems},
    }),
    async (c) => {
      const id = Number(c.req.param('id'))
      const table = (c.req.query('table') ?? 'companies') as 'companies' | 'contacts'
      const rendered = await renderRun(db, id, 'csv')
      return c.body(rendered.files[table], 200, {
        'Content-Type': 'text/csv; charset=utf-8',
        'Content-Disposition': `attachment; filename="run-${id}-${table}.csv"`,
      })
    },
  )

  const action = (name: string, summary: string, act: (id: number, c: Context<Env>) => Promise<RunRow>, request: RouteConfig['request'] = {}) =>
    route(
      createRoute({
        method: 'post',
        path: `/runs/{id}/${name}`,
        summary,
        request: {params: IdParam, ...request},
        responses: {200: json(RunSchema, 'The run now.'), ...actionProblems},
      }),
      async (c) => c.json(await runProgress(db, (await act(Number(c.req.param('id')), c)).id)),
    )
  action('cancel', 'Cancel a run: its queued and running tasks stop.', (id) => cancelRun(db, id))
  action('accept', 'Accept a run that needs a decision as it is (it completes).', (id) => acceptRun(db, id))
  action('pause', 'Pause a run fleet-wide: no worker claims its tasks; those running finish. Resume lifts it.', (id) => pauseRun(db, id))
  const ResumeSchema = z.strictObject({quantity: z.number().int().optional(), max_usd: z.number().positive().optional()})
  action(
    'resume',
    'Resume a run that stopped short, was interrupted or failed, or lift its pause; quantity and max_usd may change.',
    async (id, c) => {
      const text = await c.req.text()
      const parsed = ResumeSchema.safeParse(text.trim() === '' ? {} : JSON.parse(text))
      if (!parsed.success) throw requestProblem(parsed.error.issues[0])
      await continueRun(db, id, {quantity: parsed.data.quantity, maxUsd: parsed.data.max_usd})
      return getRun(db, id)
    },
    {body: {content: {'application/json': {schema: ResumeSchema}}, required: false}},
  )

  route(
    createRoute({
      method: 'get',
      path: '/fleet',
      summary: 'The fleet (as rvx workers status --json).',
      responses: {200: json(FleetSchema, 'Workers, queue, runs in progress.'), ...problems},
    }),
    async (c) => c.json(await fleetStatus(db)),
  )

  // --- webhooks

  route(
    createRoute({
      method: 'get',
      path: '/webhooks',
      summary: 'Webhooks (without their secrets).',
      responses: {200: json(z.object({webhooks: z.array(WebhookSchema)}), 'The webhooks.'), ...problems},
    }),
    async (c) => c.json({webhooks: await listWebhooks(db)}),
  )

  route(
    createRoute({
      method: 'post',
      path: '/webhooks',
      summary: 'Add a webhook; the answer carries its signing secret, shown this once.',
      request: body(NewWebhookSchema),
      responses: {201: json(CreatedWebhookSchema, 'The webhook and its secret.'), ...problems},
    }),
    async (c) => {
      const input = (c.req as unknown as {valid(t: 'json'): z.output<typeof NewWebhookSchema>}).valid('json')
      const url = await checkWebhookUrl(input.url, allowPrivate)
      const {id, secret} = await addWebhook(db, {url, events: parseEvents(input.events)})
      return c.json({...(await getWebhook(db, id)), secret}, 201)
    },
  )

  route(
    createRoute({
      method: 'delete',
      path: '/webhooks/{id}',
      summary: 'Remove a webhook (what it had pending is not sent).',
      request: {params: IdParam},
      responses: {204: {description: 'Removed.'}, ...problems},
    }),
    async (c) => {
      await removeWebhook(db, Number(c.req.param('id')))
      return c.body(null, 204)
    },
  )

  route(
    createRoute({
      method: 'post',
      path: '/webhooks/{id}/test',
      summary: 'Send a webhook.test event to this webhook now; the answer says how it went.',
      request: {params: IdParam},
      responses: {200: json(DeliverySchema, 'The delivery.'), ...problems},
    }),
    async (c) => {
      const id = Number(c.req.param('id'))
      const deliveryId = await queueTestEvent(db, id)
      await deliverWebhooks(db, o.log, {ids: [deliveryId], allowPrivate, dnsServer: o.env.RVX_DNS_SERVER, tries: 1})
      return c.json((await listDeliveries(db, id, {limit: 1, beforeId: deliveryId + 1}))[0])
    },
  )

  route(
    createRoute({
      method: 'get',
      path: '/webhooks/{id}/deliveries',
      summary: 'The delivery log of a webhook, newest first: status, attempts, last answer, next attempt.',
      request: {params: IdParam, query: PageQuery},
      responses: {200: json(z.object({deliveries: z.array(DeliverySchema), next_cursor: z.string().nullable()}), 'A page of deliveries.'), ...problems},
    }),
    async (c) => {
      const limit = pageSize(c.req.query('limit'))
      const cursor = c.req.query('cursor')
      const deliveries = await listDeliveries(db, Number(c.req.param('id')), {limit, beforeId: cursor === undefined ? undefined : Number(cursor)})
      return c.json({deliveries, next_cursor: nextCursor(deliveries, limit)})
    },
  )

  route(
    createRoute({
      method: 'post',
      path: '/webhooks/{id}/deliveries/{deliveryId}/redeliver',
      summary: 'Send a delivery again (the active monitor sends it within an interval).',
      request: {params: DeliveryParams},
      responses: {202: {description: 'Queued.'}, ...problems},
    }),
    async (c) => {
      await redeliver(db, Number(c.req.param('id')), Number(c.req.param('deliveryId')))
      return c.body(null, 202)
    },
  )

  // --- schedules

  route(
    createRoute({
      method: 'get',
      path: '/schedules',
      summary: 'Schedules with their next fire time.',
      responses: {200: json(z.object({schedules: z.array(ScheduleSchema)}), 'The schedules.'), ...problems},
    }),
    async (c) => c.json({schedules: await listSchedules(db)}),
  )

  route(
    createRoute({
      method: 'post',
      path: '/schedules',
      summary: 'Add a schedule: the active monitor creates its run at each slot.',
      request: body(ScheduleRequestSchema),
      responses: {201: json(ScheduleSchema, 'The schedule.'), ...problems},
    }),
    async (c) => c.json(await addSchedule(db, (c.req as unknown as {valid(t: 'json'): unknown}).valid('json'), o.env), 201),
  )

  for (const [name, paused] of [
    ['pause', true],
    ['resume', false],
  ] as const)
    route(
      createRoute({
        method: 'post',
        path: `/schedules/{id}/${name}`,
        summary: paused ? 'Pause a schedule (no slot fires).' : 'Resume a schedule (slots missed while paused do not fire).',
        request: {params: IdParam},
        responses: {200: json(ScheduleSchema, 'The schedule.'), ...problems},
      }),
      async (c) => c.json(await setPaused(db, c.req.param('id')!, paused)),
    )

  route(
    createRoute({
      method: 'delete',
      path: '/schedules/{id}',
      summary: 'Remove a schedule (its runs stay).',
      request: {params: IdParam},
      responses: {204: {description: 'Removed.'}, ...problems},
    }),
    async (c) => {
      await removeSchedule(db, (await getSchedule(db, c.req.param('id')!)).id.toString())
      return c.body(null, 204)
    },
  )

  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: {
      title: 'rvx API',
      version: '1',
      description: 'Lead-list runs, their results, webhooks and schedules. Every request needs a token: Authorization: Bearer rvx_...',
    },
  })

  app.all('*', (c) =>
    problemResponse(
      {status: 404, detail: `no such API route: ${c.req.method} ${c.req.path} (GET /api/v1/openapi.json lists them)`, code: 'not_found'},
      {},
      c.req.path,
    ),
  )
  app.onError((error, c) => {
    const p = problemOf(error)
    if (p.unexpected) o.log.error({error: (error as Error).message, path: c.req.path}, 'api: request failed')
    return problemResponse(p, {}, c.req.path)
  })
  return app
}

/** The UsageError of a refused body as problem fields. */
function wordingOf(error: UsageError): {detail: string; code: string} {
  return {detail: error.message, code: error.code}
}

/** Bearer token, known and live, within its rate, with the scope the method needs (GET: read; anything else: write). */
function authenticated(o: ApiOptions, limiter: RateLimiter): MiddlewareHandler<Env> {
  return async (c, next) => {
    const bearer = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header('authorization') ?? '')?.[1]
    const token = bearer === undefined ? undefined : await authenticate(o.db, bearer)
    if (!token)
      return problemResponse(
        {
          status: 401,
          detail: `${bearer === undefined ? 'a token is required' : 'the token is unknown or revoked'}: send Authorization: Bearer TOKEN (rvx tokens create makes one)`,
          code: 'unauthorized',
        },
        {'WWW-Authenticate': 'Bearer realm="rvx api"'},
        c.req.path,
      )
    const taken = limiter.take(token.id)
    if (!taken.ok)
      return problemResponse(
        {status: 429, detail: `token ${token.name} is over its rate limit: retry in ${taken.retryAfterS}s`, code: 'rate_limited'},
        {'Retry-After': String(taken.retryAfterS)},
        c.req.path,
      )
    const needs: Scope = c.req.method === 'GET' || c.req.method === 'HEAD' ? 'read' : 'write'
    if (!allows(token.scope, needs))
      return problemResponse(
        {
          status: 403,
          detail: `token ${token.name} has the ${token.scope} scope; ${c.req.method} needs write (rvx tokens create --scope write)`,
          code: 'forbidden',
        },
        {},
        c.req.path,
      )
    c.set('token', token)
    await next()
  }
}
