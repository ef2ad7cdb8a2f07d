import {type Kysely, sql} from '../db/kysely.js'
import type {AlertRow, Database} from '../db/schema.js'
import {backoffMs} from '../runtime/backoff.js'
import {errorMessage} from '../runtime/errors.js'
import type {Logger} from '../runtime/logger.js'
import type {Alert, AlertChannel} from './channels.js'
import type {Mailer} from './mail.js'
import {runNoticeMail} from './notices.js'

/** A sender holds a row this long while it sends; a sender that dies mid-way frees it after. */
const DELIVERY_LEASE_MS = 5 * 60_000
/** Rows per round: one webhook message or mail at most this long, well inside the lease. */
const BATCH = 50
/** Failed deliveries back off 30 s, 1 min, 2 min ... 30 min, and give up after this many tries (about 6 hours). */
const MAX_DELIVERY_ATTEMPTS = 16
const RETRY_BACKOFF = {baseMs: 30_000, maxMs: 30 * 60_000, jitter: 0.2}

export interface DeliveryTargets {
  /** Where alerts go (run notices go to their own recipient). */
  channels: AlertChannel[]
  /** Sends run notices; without one, notices wait for a sender that has SMTP_URL. */
  mailer?: Mailer
}

export interface DeliveryResult {
  delivered: number
  failed: number
  /** One line per failed row: what could not be sent where. */
  errors: string[]
}

/**
 * Takes due, undelivered alerts and notices (leasing them, so two senders
 * never send the same row), sends alerts to every channel as one batched
 * message per channel and each notice as its own mail, and records what
 * went where. A channel that fails is retried later with backoff; channels
 * that already succeeded are not sent again.
 */
export async function deliverPending(db: Kysely<Database>, targets: DeliveryTargets, log: Logger, options: {ids?: number[]} = {}): Promise<DeliveryResult> {
  // Take only what this sender can send: alerts need a channel, notices a mailer.
  const rows = await leaseDue(db, {ids: options.ids, alerts: targets.channels.length > 0, notices: targets.mailer !== undefined})
  if (rows.length === 0) return {delivered: 0, failed: 0, errors: []}
  const sentTo = new Map<number, Record<string, string>>(rows.map((r) => [r.id, {...(r.deliveries as Record<string, string>)}]))
  const errors = new Map<number, string>()

  const alerts = rows.filter((r) => r.recipient === null)
  for (const channel of targets.channels) {
    const batch = alerts.filter((r) => !sentTo.get(r.id)![channel.name])
    if (batch.length === 0) continue
    try {
      await channel.send(batch.map(toAlert))
      const at = new Date().toISOString()
      for (const r of batch) sentTo.get(r.id)![channel.name] = at
      log.info({channel: channel.label, alerts: batch.length}, `sent ${batch.length} alert${batch.length === 1 ? '' : 's'} to ${channel.label}`)
    } catch (error) {
      for (const r of batch) errors.set(r.id, `${channel.label}: ${errorMessage(error)}`)
      log.warn({channel: channel.label, err: errorMessage(error)}, `could not send alerts to ${channel.label}; will retry`)
    }
  }

  for (const notice of rows.filter((r) => r.recipient !== null)) {
    const name = `email:${notice.recipient}`
    if (sentTo.get(notice.id)![name] || !targets.mailer) continue
    try {
      await targets.mailer.send(await runNoticeMail(db, notice))
      sentTo.get(notice.id)![name] = new Date().toISOString()
      log.info({runId: notice.run_id, to: notice.recipient}, `mailed "${notice.subject}" to ${notice.recipient}`)
    } catch (error) {
      errors.set(notice.id, `mail to ${notice.recipient}: ${errorMessage(error)}`)
      log.warn({runId: notice.run_id, err: errorMessage(error)}, `could not mail ${notice.recipient}; will retry`)
    }
  }

  let delivered = 0
  for (const r of rows) {
    const error = errors.get(r.id)
    const attempts = r.attempts // counted when leased
    const gaveUp = error !== undefined && attempts >= MAX_DELIVERY_ATTEMPTS
    if (!error) delivered++
    if (gaveUp) log.error({alertId: r.id, err: error}, `gave up sending "${r.subject}" after ${attempts} tries`)
    await db
      .updateTable('alerts')
      .set({
        deliveries: JSON.stringify(sentTo.get(r.id)),
        last_error: error ? (gaveUp ? `gave up: ${error}` : error) : null,
        delivered_at: error && !gaveUp ? null : sql<Date>`now()`,
        next_attempt_at: error && !gaveUp ? sql<Date>`now() + ${backoffMs(attempts, RETRY_BACKOFF)}::float8 * interval '1 millisecond'` : sql<Date>`now()`,
      })
      .where('id', '=', r.id)
      // Still ours: a sender that took over after our lease ran out has counted another attempt.
      .where('attempts', '=', r.attempts)
      .execute()
  }

  return {delivered, failed: rows.length - delivered, errors: [...errors.values()]}
}

async function leaseDue(db: Kysely<Database>, o: {ids?: number[]; alerts: boolean; notices: boolean}): Promise<AlertRow[]> {
  if (!o.alerts && !o.notices) return []
  const only = o.ids ?? null
  const {rows} = await sql<AlertRow>`
    with due as materialized (
      select id from alerts
      where delivered_at is null and next_attempt_at <= now()
        and (${only}::bigint[] is null or id = any(${only}::bigint[]))
        and (${o.alerts} or recipient is not null)
        and (${o.notices} or recipient is null)
      order by id
      limit ${BATCH}
      for update skip locked
    )
    update alerts a set next_attempt_at = now() + ${DELIVERY_LEASE_MS}::float8 * interval '1 millisecond', attempts = a.attempts + 1
    from due where a.id = due.id
    returning a.*`.execute(db)
  return rows.sort((a, b) => a.id - b.id)
}

function toAlert(r: AlertRow): Alert {
  return {id: r.id, kind: r.kind, severity: r.severity, subject: r.subject, details: r.details as Record<string, unknown>, createdAt: r.created_at}
}
