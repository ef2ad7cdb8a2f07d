import type {Env} from '../shared/config.js'
import {Cron} from 'croner'
import {z} from 'zod'

import {type Kysely, sql} from '../db/kysely.js'
import type {Executor} from '../db/executor.js'
import type {Selectable} from 'kysely'

import type {Database, SchedulesTable} from '../db/schema.js'
import {createRun} from '../pipeline/runs.js'
import {errorMessage} from '../runtime/errors.js'
import type {Logger} from '../runtime/logger.js'
import {RvxError, UsageError} from '../shared/errors.js'
import {UNSAFE_CHARACTERS} from '../shared/text.js'
import {requestProblem, RunRequestSchema, runInput} from './run-request.js'

/**
 * Scheduled runs. The active monitor looks at every schedule each interval:
 * the latest slot of its cron pattern (in its time zone; croner handles DST)
 * that is past and after the schedule was created or resumed fires once,
 * whatever number of monitors there are (schedule_fires' primary key), and
 * slots missed while no monitor ran are not made up one by one: only the
 * latest fires. A slot whose schedule's previous run is still running is
 * skipped, and the skip is recorded.
 */

export const ScheduleRequestSchema = RunRequestSchema.extend({
  cron: z.string().describe('When: a five-field cron pattern (minute hour day month weekday), e.g. "0 8 * * MON".'),
  tz: z.string().optional().describe('The time zone the pattern is read in (IANA, e.g. America/Chicago; default UTC).'),
  name: z.string().optional().describe('A name to tell schedules apart (unique).'),
})

export type ScheduleRequest = z.input<typeof ScheduleRequestSchema>

export interface ScheduleView {
  id: number
  name: string | null
  cron: string
  tz: string
  criteria: unknown
  quantity: number
  provider: string
  maxUsd: number | null
  paused: boolean
  createdAt: Date
  /** The next slot that would fire (null while paused). */
  nextAt: Date | null
  /** The latest slot that fired or was skipped, and what came of it. */
  last: {slot: Date; runId: number | null; skipped: string | null} | null
}

export interface Fired {
  scheduleId: number
  slot: Date
  runId?: number
  skipped?: string
}

/** A pattern croner reads, five fields (a monitor looks once per interval: seconds are not a schedule), in a real time zone. */
export function checkCron(cron: string, tz: string): Cron {
  const fields = cron.trim().split(/\s+/)
  if (fields.length !== 5) throw new UsageError(`"${cron}" must have five fields (minute hour day month weekday), e.g. "0 8 * * MON"`, {field: 'cron'})
  try {
    new Intl.DateTimeFormat('en-US', {timeZone: tz})
  } catch {
    throw new UsageError(`"${tz}" is not a time zone: use an IANA name such as America/Chicago or UTC`, {field: 'tz'})
  }

  try {
    return new Cron(cron.trim(), {timezone: tz, paused: true})
  } catch (error) {
    throw new UsageError(`"${cron}" is not a cron pattern (${errorMessage(error).replace(/^CronPattern: /, '')})`, {field: 'cron'})
  }
}

/** Validates a schedule request (the CLI's flags and the API's body alike): a UsageError names the first problem. */
export function parseScheduleRequest(raw: unknown, env: Env) {
  const parsed = ScheduleRequestSchema.safeParse(raw)
  if (!parsed.success) throw requestProblem(parsed.error.issues[0])
  const {cron, tz, name, ...request} = parsed.data
  const zone = tz ?? 'UTC'
  checkCron(cron, zone)
  if (name !== undefined && (name.trim().length === 0 || name.length > 100 || name.match(UNSAFE_CHARACTERS)))
    throw new UsageError('must be 1-100 characters on one line, e.g. weekly-tx', {field: 'name'})
  // Checked now, as the run it will make; the provider chosen now is the one every run gets.
  const input = runInput(request, env)
  return {cron: cron.trim(), tz: zone, name: name?.trim(), request: {...request, provider: input.provider}, input}
}

export async function addSchedule(db: Executor, raw: unknown, env: Env): Promise<ScheduleView> {
  const s = parseScheduleRequest(raw, env)
  const row = await db
    .insertInto('schedules')
    .values({
      name: s.name ?? null,
      cron: s.cron,
      tz: s.tz,
      criteria: JSON.stringify(s.input.criteria),
      quantity: s.input.size.quantity,
      contacts_min: s.input.size.contactsMin,
      contacts_max: s.input.size.contactsMax,
      provider: s.input.provider,
      max_usd: s.input.maxUsd ?? null,
      options: JSON.stringify(s.request),
    })
    .onConflict((oc) => oc.column('name').where('name', 'is not', null).doNothing())
    .returning('id')
    .executeTakeFirst()
  if (!row) throw new UsageError(`"${s.name}" is taken by another schedule: pick another name`, {field: 'name'})
  return getSchedule(db, String(row.id))
}

export async function listSchedules(db: Executor, now = new Date()): Promise<ScheduleView[]> {
  const {rows} = await sql<ScheduleRow>`${scheduleQuery()} order by s.id`.execute(db)
  return rows.map((r) => view(r, now))
}

/** A schedule by id or name. */
export async function getSchedule(db: Executor, idOrName: string, now = new Date()): Promise<ScheduleView> {
  const byId = /^[0-9]{1,15}$/.test(idOrName)
  const {rows} = await sql<ScheduleRow>`${scheduleQuery()} where ${byId ? sql`s.id = ${Number(idOrName)}` : sql`s.name = ${idOrName}`}`.execute(db)
  if (rows.length === 0) throw new RvxError(`schedule ${idOrName} does not exist: rvx schedules list shows them`, {code: 'schedule_not_found'})
  return view(rows[0], now)
}

/** Pauses (no slot fires) or resumes (slots from now on fire; those missed while paused do not). */
export async function setPaused(db: Executor, idOrName: string, paused: boolean): Promise<ScheduleView> {
  const s = await getSchedule(db, idOrName)
  await db
    .updateTable('schedules')
    .set(
      paused
        ? {paused_at: sql`coalesce(paused_at, now())` as never}
        : {paused_at: null, fires_after: sql`case when paused_at is null then fires_after else now() end` as never},
    )
    .where('id', '=', s.id)
    .execute()
  return getSchedule(db, String(s.id))
}

/** Removes a schedule; the runs it made stay. */
export async function removeSchedule(db: Executor, idOrName: string): Promise<ScheduleView> {
  const s = await getSchedule(db, idOrName)
  await db.deleteFrom('schedules').where('id', '=', s.id).execute()
  return s
}

/**
 * Fires every schedule whose latest slot at `now` has not fired: creates its
 * run, or records why the slot is skipped. `now` is the caller's clock (the
 * monitor's), so slot evaluation can be looked at for any moment.
 */
export async function fireDueSchedules(db: Kysely<Database>, now: Date, log: Logger): Promise<Fired[]> {
  const schedules = await db.selectFrom('schedules').selectAll().where('paused_at', 'is', null).orderBy('id').execute()
  const fired: Fired[] = []
  for (const s of schedules) {
    const slot = latestSlot(s.cron, s.tz, now)
    if (!slot || slot <= s.fires_after) continue
    try {
      const outcome = await fire(db, s, slot)
      if (!outcome) continue
      fired.push(outcome)
      const label = s.name ? `schedule ${s.id} (${s.name})` : `schedule ${s.id}`
      if (outcome.runId) log.info({scheduleId: s.id, slot, runId: outcome.runId}, `${label} fired for ${slot.toISOString()}: run ${outcome.runId}`)
      else log.warn({scheduleId: s.id, slot, skipped: outcome.skipped}, `${label} skipped ${slot.toISOString()}: ${outcome.skipped}`)
    } catch (error) {
      // One schedule that cannot make its run must not stop the others; its slot is tried again next interval.
      log.error({scheduleId: s.id, err: errorMessage(error)}, `schedule ${s.id} could not fire: ${errorMessage(error)}`)
    }
  }

  return fired
}

async function fire(db: Kysely<Database>, s: Selectable<SchedulesTable>, slot: Date): Promise<Fired | undefined> {
  return db.transaction().execute(async (trx) => {
    const claimed = await trx
      .insertInto('schedule_fires')
      .values({schedule_id: s.id, slot})
      .onConflict((oc) => oc.doNothing())
      .returning('slot')
      .executeTakeFirst()
    if (!claimed) return undefined
    const previous = await trx
      .selectFrom('schedule_fires as f')
      .innerJoin('runs as r', 'r.id', 'f.run_id')
      .select(['r.id', 'r.status'])
      .where('f.schedule_id', '=', s.id)
      .where('f.slot', '<', slot)
      .orderBy('f.slot', 'desc')
      .limit(1)
      .executeTakeFirst()
    if (previous && previous.status === 'running') {
      const skipped = `run ${previous.id} is still running`
      await trx.updateTable('schedule_fires').set({skipped}).where('schedule_id', '=', s.id).where('slot', '=', slot).execute()
      return {scheduleId: s.id, slot, skipped}
    }

    // The provider was chosen when the schedule was added (it is in its options): no environment to consult now.
    const run = await createRun(trx, runInput(RunRequestSchema.parse(s.options), {}))
    await trx.updateTable('schedule_fires').set({run_id: run.id}).where('schedule_id', '=', s.id).where('slot', '=', slot).execute()
    return {scheduleId: s.id, slot, runId: run.id}
  })
}

/** The latest slot at or before `now` (croner's previous run), undefined when the pattern never fired. */
export function latestSlot(cron: string, tz: string, now: Date): Date | undefined {
  return checkCron(cron, tz).previousRuns(1, new Date(now.getTime() + 1))[0]
}

/** A schedule with its latest slot (scheduleQuery). */
type ScheduleRow = Pick<
  Selectable<SchedulesTable>,
  'id' | 'name' | 'cron' | 'tz' | 'criteria' | 'quantity' | 'provider' | 'max_usd' | 'paused_at' | 'fires_after' | 'created_at'
> & {last_slot: Date | null; last_run_id: number | null; last_skipped: string | null}

function scheduleQuery() {
  return sql`
    select s.id, s.name, s.cron, s.tz, s.criteria, s.quantity, s.provider, s.max_usd, s.paused_at, s.fires_after, s.created_at,
      f.slot as last_slot, f.run_id as last_run_id, f.skipped as last_skipped
    from schedules s
    left join lateral (select slot, run_id, skipped from schedule_fires where schedule_id = s.id order by slot desc limit 1) f on true`
}

function view(r: ScheduleRow, now: Date): ScheduleView {
  return {
    id: r.id,
    name: r.name,
    cron: r.cron,
    tz: r.tz,
    criteria: r.criteria,
    quantity: r.quantity,
    provider: r.provider,
    maxUsd: r.max_usd === null ? null : Number(r.max_usd),
    paused: r.paused_at !== null,
    createdAt: r.created_at,
    nextAt: r.paused_at === null ? checkCron(r.cron, r.tz).nextRun(now) : null,
    last: r.last_slot ? {slot: r.last_slot, runId: r.last_run_id, skipped: r.last_skipped} : null,
  }
}
