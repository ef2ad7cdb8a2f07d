import type {Env} from '../shared/config.js'
import {randomBytes} from 'node:crypto'
import {isIP} from 'node:net'
import {Webhook} from 'standardwebhooks'

import {checkAddress} from '../agents/tools/ssrf.js'
import {guardedAgent} from '../agents/tools/guarded-agent.js'
import {resolveHost} from '../agents/tools/resolve.js'
import {type Kysely, sql} from '../db/kysely.js'
import type {Executor} from '../db/executor.js'
import type {Database, DeliveryStatus} from '../db/schema.js'
import {LOCK_CLASS_MONITOR} from '../runtime/config.js'
import {backoffMs} from '../runtime/backoff.js'
import {errorMessage} from '../runtime/errors.js'
import type {Logger} from '../runtime/logger.js'
import {RvxError, UsageError} from '../shared/errors.js'
import {PostFailed, postWithRetries} from './channels.js'

/**
 * Webhooks after the Standard Webhooks specification: each event is a JSON
 * POST `{type, timestamp, data}` with `webhook-id` (the same on every retry),
 * `webhook-timestamp` and `webhook-signature: v1,<HMAC-SHA256>`, signed with
 * the webhook's secret. Events come from the outbox (webhook_events, written
 * by triggers in the transaction of the change they report); the active
 * monitor delivers them, at least once, in order per webhook and run.
 */

export const WEBHOOK_EVENTS = ['run.completed', 'run.needs_decision', 'run.failed', 'lead.selected'] as const
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number]
/** What `webhooks test` sends: to that webhook only, whatever its events. */
export const TEST_EVENT = 'webhook.test'

/** A sender holds a delivery this long while it sends (the retries of one round fit well inside). */
const DELIVERY_LEASE_MS = 5 * 60_000
const BATCH = 50
/** Failed rounds back off 30 s, 1 min, 2 min ... 30 min, and give up after this many (about 6 hours). */
const MAX_ROUNDS = 16
const ROUND_BACKOFF = {baseMs: 30_000, maxMs: 30 * 60_000, jitter: 0.2}
/** Second key of the advisory lock (under the monitor's class) that makes leasing one sender at a time. */
const LEASE_LOCK = 1

export interface WebhookView {
  id: number
  url: string
  events: string[]
  createdAt: Date
}

export interface DeliveryView {
  id: number
  webhookId: number
  eventId: number
  type: string
  runId: number | null
  status: DeliveryStatus
  attempts: number
  lastStatus: number | null
  lastError: string | null
  nextAttemptAt: Date | null
  deliveredAt: Date | null
  createdAt: Date
}

/** RVX_ALLOW_PRIVATE_WEBHOOKS=1: webhooks may point at private and loopback addresses (tests, a receiver on the same host). */
export function privateWebhooksAllowed(env: Env): boolean {
  return env.RVX_ALLOW_PRIVATE_WEBHOOKS === '1'
}

/** --events: a comma-separated list of event types (or an array from the API), each known. */
export function parseEvents(value: string | string[]): WebhookEvent[] {
  const events = [...new Set((Array.isArray(value) ? value : value.split(',')).map((e) => e.trim()).filter(Boolean))]
  const bad = events.filter((e) => !(WEBHOOK_EVENTS as readonly string[]).includes(e))
  if (events.length === 0 || bad.length > 0)
    throw new UsageError(`${bad.length > 0 ? `names ${bad.map((b) => `"${b}"`).join(', ')}, not an event` : 'is empty'}: use ${WEBHOOK_EVENTS.join(', ')}`, {
      field: 'events',
    })
  return events as WebhookEvent[]
}

/**
 * A webhook URL checked like any outbound address: http(s), and a host
 * whose every address is public (unless RVX_ALLOW_PRIVATE_WEBHOOKS=1). The
 * check is made again at every connection (a name may change its address).
 */
export async function checkWebhookUrl(value: string, allowPrivate: boolean): Promise<string> {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new UsageError('is not a URL: give e.g. https://crm.example.com/hooks/rvx', {field: 'url'})
  }

  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new UsageError(`must be an http(s) URL (got ${url.protocol})`, {field: 'url'})
  if (url.username || url.password) throw new UsageError('must not carry a user or password: the signature proves who sends', {field: 'url'})
  const host = url.hostname.replace(/^\[|\]$/g, '')
  let addresses: string[]
  try {
    addresses = isIP(host) ? [host] : await resolveHost(host)
  } catch (error) {
    throw new UsageError(`names ${host}, which does not resolve (${errorMessage(error)}): check the host`, {field: 'url'})
  }

  for (const address of addresses) {
    const verdict = checkAddress(address, allowPrivate)
    if (!verdict.allowed)
      throw new UsageError(
        `reaches ${verdict.reason}: webhooks go to public addresses${verdict.metadata ? '' : ' (RVX_ALLOW_PRIVATE_WEBHOOKS=1 allows private ones)'}`,
        {field: 'url'},
      )
  }

  return url.href
}

/** Adds a webhook; its signing secret is returned once (the monitor keeps it to sign, nobody is shown it again). */
export async function addWebhook(db: Executor, o: {url: string; events: WebhookEvent[]}): Promise<{id: number; secret: string}> {
  const secret = `whsec_${randomBytes(32).toString('base64')}`
  const row = await db.insertInto('webhooks').values({url: o.url, events: o.events, secret}).returning('id').executeTakeFirstOrThrow()
  return {id: row.id, secret}
}

export async function listWebhooks(db: Executor): Promise<WebhookView[]> {
  const rows = await db.selectFrom('webhooks').select(['id', 'url', 'events', 'created_at']).orderBy('id').execute()
  return rows.map((r) => ({id: r.id, url: r.url, events: r.events, createdAt: r.created_at}))
}

export async function getWebhook(db: Executor, id: number): Promise<WebhookView> {
  const row = await db.selectFrom('webhooks').select(['id', 'url', 'events', 'created_at']).where('id', '=', id).executeTakeFirst()
  if (!row) throw new RvxError(`webhook ${id} does not exist: rvx webhooks list shows them`, {code: 'webhook_not_found'})
  return {id: row.id, url: row.url, events: row.events, createdAt: row.created_at}
}

/** Removes a webhook and its delivery log; what it had pending is not sent. */
export async function removeWebhook(db: Executor, id: number): Promise<void> {
  await getWebhook(db, id)
  await db.deleteFrom('webhooks').where('id', '=', id).execute()
  await sql`delete from webhook_events e where not exists (select 1 from webhook_deliveries d where d.event_id = e.id)`.execute(db)
}

/** Queues a `webhook.test` event for this webhook only; returns its delivery's id. */
export async function queueTestEvent(db: Kysely<Database>, id: number): Promise<number> {
  await getWebhook(db, id)
  return db.transaction().execute(async (trx) => {
    const event = await trx
      .insertInto('webhook_events')
      .values({type: TEST_EVENT, run_id: null, data: JSON.stringify({webhookId: id, message: 'a test event from rvx webhooks test'})})
      .returning('id')
      .executeTakeFirstOrThrow()
    const delivery = await trx
      .insertInto('webhook_deliveries')
      .values({webhook_id: id, event_id: event.id, run_id: null})
      .returning('id')
      .executeTakeFirstOrThrow()
    return delivery.id
  })
}

/** The delivery log of a webhook, newest first. */
export async function listDeliveries(db: Executor, webhookId: number, o: {limit?: number; beforeId?: number} = {}): Promise<DeliveryView[]> {
  await getWebhook(db, webhookId)
  const rows = await db
    .selectFrom('webhook_deliveries as d')
    .innerJoin('webhook_events as e', 'e.id', 'd.event_id')
    .select([
      'd.id',
      'd.webhook_id',
      'd.event_id',
      'e.type',
      'd.run_id',
      'd.status',
      'd.attempts',
      'd.last_status',
      'd.last_error',
      'd.next_attempt_at',
      'd.delivered_at',
      'd.created_at',
    ])
    .where('d.webhook_id', '=', webhookId)
    .$if(o.beforeId !== undefined, (q) => q.where('d.id', '<', o.beforeId!))
    .orderBy('d.id', 'desc')
    .limit(o.limit ?? 50)
    .execute()
  return rows.map((r) => ({
    id: r.id,
    webhookId: r.webhook_id,
    eventId: r.event_id,
    type: r.type,
    runId: r.run_id,
    status: r.status,
    attempts: r.attempts,
    lastStatus: r.last_status,
    lastError: r.last_error,
    nextAttemptAt: r.status === 'pending' ? r.next_attempt_at : null,
    deliveredAt: r.delivered_at,
    createdAt: r.created_at,
  }))
}

/** Sends a delivery again (delivered or given up): pending now, with its attempts counted afresh. */
export async function redeliver(db: Executor, webhookId: number, deliveryId: number): Promise<void> {
  const row = await db
    .updateTable('webhook_deliveries')
    .set({status: 'pending', attempts: 0, next_attempt_at: sql`now()` as never, delivered_at: null, last_error: null})
    .where('id', '=', deliveryId)
    .where('webhook_id', '=', webhookId)
    .returning('id')
    .executeTakeFirst()
  if (!row)
    throw new RvxError(`webhook ${webhookId} has no delivery ${deliveryId}: rvx webhooks deliveries ${webhookId} lists them`, {code: 'delivery_not_found'})
}

/**
 * Monitor retention: deliveries delivered or given up longer ago than
 * `olderThanMs` leave the log (a batch per interval), and events with no
 * delivery left go with them. Returns the deliveries removed.
 */
export async function pruneDeliveryLog(db: Kysely<Database>, olderThanMs: number): Promise<number> {
  const {rows} = await sql<{event_id: number}>`
    delete from webhook_deliveries where id in (
      select id from webhook_deliveries
      where status <> 'pending' and coalesce(delivered_at, next_attempt_at) < now() - ${olderThanMs}::float8 * interval '1 millisecond'
      order by id limit 5000)
    returning event_id`.execute(db)
  if (rows.length === 0) return 0
  const events = [...new Set(rows.map((r) => r.event_id))]
  await sql`delete from webhook_events e where e.id = any(${events}::bigint[]) and not exists (select 1 from webhook_deliveries d where d.event_id = e.id)`.execute(
    db,
  )
  return rows.length
}

export interface WebhookDeliveryOptions {
  /** Only these deliveries (`webhooks test`). */
  ids?: number[]
  allowPrivate?: boolean
  /** host:port of the DNS server webhook hosts are looked up on (RVX_DNS_SERVER; unset: the system's). */
  dnsServer?: string
  /** Tries within one round (postWithRetries), and its first backoff step. */
  tries?: number
  baseDelayMs?: number
}

interface Leased {
  id: number
  webhook_id: number
  run_id: number | null
  attempts: number
  url: string
  secret: string
  type: string
  data: unknown
  event_at: Date
}

/**
 * One round: leases due deliveries (one sender at a time), then sends each
 * webhook's deliveries of a run one after another in event order (a run's
 * events never overtake each other; a failure holds the ones after it until
 * it is delivered or given up), different webhooks and runs side by side.
 */
export async function deliverWebhooks(db: Kysely<Database>, log: Logger, o: WebhookDeliveryOptions = {}): Promise<{delivered: number; failed: number}> {
  const rows = await leaseDue(db, o.ids)
  const groups = new Map<string, Leased[]>()
  for (const r of rows) {
    const key = r.run_id === null ? `d${r.id}` : `${r.webhook_id}:${r.run_id}`
    groups.set(key, [...(groups.get(key) ?? []), r])
  }

  const agent = guardedAgent({allowPrivate: o.allowPrivate ?? false, dnsServer: o.dnsServer})
  let delivered = 0
  let failed = 0
  await Promise.all(
    [...groups.values()].map(async (group) => {
      for (const [i, d] of group.entries()) {
        const label = `webhook ${d.webhook_id} (${new URL(d.url).host})`
        try {
          const status = await send(d, label, {...o, dispatcher: agent})
          delivered++
          await db
            .updateTable('webhook_deliveries')
            .set({status: 'delivered', attempts: d.attempts + 1, last_status: status, last_error: null, delivered_at: sql`now()` as never})
            .where('id', '=', d.id)
            .execute()
          log.info({webhookId: d.webhook_id, deliveryId: d.id, event: d.type, runId: d.run_id}, `delivered ${d.type} to ${label}`)
        } catch (error) {
          failed++
          const attempts = d.attempts + 1
          const gaveUp = attempts >= MAX_ROUNDS
          const message = errorMessage(error)
          await db
            .updateTable('webhook_deliveries')
            .set({
              status: gaveUp ? 'failed' : 'pending',
              attempts,
              last_status: error instanceof PostFailed ? (error.status ?? null) : null,
              last_error: message.slice(0, 1000),
              next_attempt_at: sql`now() + ${backoffMs(attempts, ROUND_BACKOFF)}::float8 * interval '1 millisecond'` as never,
            })
            .where('id', '=', d.id)
            .execute()
          // The rest of this run's events wait behind it (due again at once, held by the order rule).
          const later = group.slice(i + 1).map((r) => r.id)
          if (later.length > 0)
            await db
              .updateTable('webhook_deliveries')
              .set({next_attempt_at: sql`now()` as never})
              .where('id', 'in', later)
              .execute()
          if (gaveUp) log.error({webhookId: d.webhook_id, deliveryId: d.id, err: message}, `gave up delivering ${d.type} to ${label} after ${attempts} rounds`)
          else log.warn({webhookId: d.webhook_id, deliveryId: d.id, err: message}, `could not deliver ${d.type} to ${label}; will retry`)
          return
        }
      }
    }),
  )
  return {delivered, failed}
}

async function send(d: Leased, label: string, o: WebhookDeliveryOptions & {dispatcher: ReturnType<typeof guardedAgent>}): Promise<number> {
  const id = `msg_${d.id}`
  const body = JSON.stringify({type: d.type, timestamp: d.event_at.toISOString(), data: d.data})
  const now = new Date()
  const signature = new Webhook(d.secret).sign(id, now, body)
  return postWithRetries(d.url, {
    body,
    label,
    headers: {'webhook-id': id, 'webhook-timestamp': String(Math.floor(now.getTime() / 1000)), 'webhook-signature': signature, 'user-agent': 'rvx-webhooks'},
    tries: o.tries,
    baseDelayMs: o.baseDelayMs,
    dispatcher: o.dispatcher,
  })
}

/**
 * Due deliveries, leased. A delivery of a run waits while an earlier one of
 * the same webhook and run is pending and not due (backing off, or leased by
 * a sender): due ones come in id order, so a group is taken from its head.
 */
async function leaseDue(db: Kysely<Database>, ids: number[] | undefined): Promise<Leased[]> {
  const only = ids ?? null
  return db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(${LOCK_CLASS_MONITOR}, ${LEASE_LOCK})`.execute(trx)
    const {rows} = await sql<Leased>`
      with due as materialized (
        select d.id from webhook_deliveries d
        where d.status = 'pending' and d.next_attempt_at <= now()
          and (${only}::bigint[] is null or d.id = any(${only}::bigint[]))
          and (d.run_id is null or not exists (
            select 1 from webhook_deliveries e
            where e.webhook_id = d.webhook_id and e.run_id = d.run_id and e.id < d.id and e.status = 'pending' and e.next_attempt_at > now()))
        order by d.id
        limit ${BATCH}
      ), leased as (
        update webhook_deliveries d set next_attempt_at = now() + ${DELIVERY_LEASE_MS}::float8 * interval '1 millisecond'
        from due where d.id = due.id
        returning d.id, d.webhook_id, d.run_id, d.attempts, d.event_id
      )
      select l.id, l.webhook_id, l.run_id, l.attempts, w.url, w.secret, e.type, e.data, e.created_at as event_at
      from leased l join webhooks w on w.id = l.webhook_id join webhook_events e on e.id = l.event_id
      order by l.id`.execute(trx)
    return rows
  })
}
