import fs from 'node:fs/promises'
import path from 'node:path'
import {stringify} from 'csv-stringify/sync'
import type {Kysely} from 'kysely'

import {sql} from '../db/kysely.js'
import {databaseId} from '../db/meta.js'
import type {Database, RunRow} from '../db/schema.js'
import {makeDirectory} from '../shared/directories.js'
import {withoutEscapes} from '../shared/text.js'
import {deliveredCompanyIds} from './run-counts.js'
import {getRun} from './runs.js'
import {stageFacts} from './stage-facts.js'
import {stagesOf} from './stages/index.js'
import {type FinalVerdict, VERDICT_KEYS} from './verification.js'

/** The columns of every run's companies export; the run's stages add theirs after these (`companyColumns`). */
export const COMPANY_COLUMNS = [
  'company_name',
  'domain',
  'website',
  'city',
  'state',
  'pms',
  'units_estimate',
  'icp_fit',
  'icp_score',
  'icp_tier',
  'confidence',
  'reasons',
  'sources',
  'discovered_by',
  'researched_at',
  'from_cache',
  ...VERDICT_KEYS.flatMap((k) => [`${k}_verdict`, `${k}_evidence`] as const),
] as const
/** A run's companies columns: COMPANY_COLUMNS, then the columns each of its stages declares. */
export function companyColumns(run: Pick<RunRow, 'options'>): string[] {
  return [...COMPANY_COLUMNS, ...stagesOf(run).flatMap((s) => (s.columns ?? []).map((c) => c.name))]
}

export const CONTACT_COLUMNS = [
  'company_name',
  'company_domain',
  'full_name',
  'title',
  'tier',
  'email',
  'phone',
  'linkedin_url',
  'confidence',
  'sources',
  'email_status',
  'from_cache',
] as const

export interface ExportResult {
  runId: number
  status: string
  files: {companies: string; contacts: string}
  companies: number
  contacts: number
}

export interface RenderedRun {
  runId: number
  status: string
  companies: number
  contacts: number
  /** File contents by name: companies.<format>, contacts.<format>. */
  files: {companies: string; contacts: string}
}

/**
 * The run's companies and contacts as CSV (or JSON) text: the companies it
 * delivers (`deliveredCompanyIds`: the selected, else the best qualified) and
 * their contacts.
 */
export async function renderRun(db: Kysely<Database>, runId: number, format: 'csv' | 'json' = 'csv'): Promise<RenderedRun> {
  const run = await getRun(db, runId)
  const companies = await db
    .selectFrom('companies')
    .selectAll()
    .where(sql<boolean>`id in (${deliveredCompanyIds(runId)})`)
    .orderBy('icp_score', 'desc')
    .orderBy('id')
    .execute()

  const ids = companies.map((c) => c.id)
  const contacts =
    ids.length === 0
      ? []
      : await db.selectFrom('contacts').selectAll().where('company_id', 'in', ids).orderBy('company_id').orderBy('tier').orderBy('id').execute()
  const byId = new Map(companies.map((c) => [c.id, c]))
  const facts = await stageFacts(db, ids)
  const stages = stagesOf(run).filter((s) => s.columns)
  const list = (v: unknown) => (Array.isArray(v) ? v.join('; ') : '')
  const companyRows = companies.map((c) => ({
    company_name: c.name,
    domain: c.domain,
    website: c.website,
    city: c.city,
    state: c.state,
    pms: c.pms,
    units_estimate: c.units_estimate,
    icp_fit: c.icp_fit,
    icp_score: c.icp_score,
    icp_tier: c.icp_tier,
    confidence: c.confidence,
    reasons: list(c.reasons),
    sources: list(c.sources),
    discovered_by: c.discovered_by,
    researched_at: c.researched_at?.toISOString() ?? null,
    from_cache: c.from_cache,
    ...verdictColumns(c.verdicts as Partial<Record<string, FinalVerdict>>),
    ...Object.fromEntries(stages.flatMap((s) => s.columns!.map((col) => [col.name, col.value(facts.get(c.id)?.[s.name])]))),
    // JSON only (CSV takes the columns above): every verdict with its full evidence, URL and quote, and what each
    // stage found with its evidence.
    verdicts: c.verdicts,
    ...(stages.length > 0 ? {facts: Object.fromEntries(stages.map((s) => [s.name, facts.get(c.id)?.[s.name] ?? null]))} : {}),
  }))
  const contactRows = contacts.map((k) => ({
    company_name: byId.get(k.company_id)?.name ?? null,
    company_domain: byId.get(k.company_id)?.domain ?? null,
    full_name: k.full_name,
    title: k.title,
    tier: k.tier,
    email: k.email,
    phone: k.phone,
    linkedin_url: k.linkedin_url,
    confidence: k.confidence,
    sources: list(k.sources),
    email_status: k.email_status,
    from_cache: k.from_cache,
  }))
  const files =
    format === 'json'
      ? {companies: JSON.stringify(companyRows, null, 2) + '\n', contacts: JSON.stringify(contactRows, null, 2) + '\n'}
      : {
          companies: stringify(companyRows, {header: true, columns: companyColumns(run), cast: {string: csvCell, boolean: (b) => String(b)}}),
          contacts: stringify(contactRows, {header: true, columns: [...CONTACT_COLUMNS], cast: {string: csvCell, boolean: (b) => String(b)}}),
        }
  return {runId, status: run.status, companies: companyRows.length, contacts: contactRows.length, files}
}

/**
 * Where a database's exports go unless told otherwise: ./exports/ and the
 * first 8 characters of the database's id, so run 1 of one database never
 * overwrites run 1 of another (the embedded one and a DATABASE_URL, say).
 */
export async function defaultExportDir(db: Kysely<Database>): Promise<string> {
  return path.join('exports', (await databaseId(db)).replaceAll('-', '').slice(0, 8))
}

/**
 * Writes the run's export to `<dir>/run-<id>/` (so runs never overwrite each
 * other), `dir` by default defaultExportDir(). Writing twice gives the same
 * files (temp file + rename, so a crash leaves no half file).
 */
export async function exportRun(db: Kysely<Database>, runId: number, outputDir?: string, format: 'csv' | 'json' = 'csv'): Promise<ExportResult> {
  const rendered = await renderRun(db, runId, format)
  const dir = path.resolve(outputDir ?? (await defaultExportDir(db)), `run-${runId}`)
  await makeDirectory(dir)
  const files = {companies: path.join(dir, `companies.${format}`), contacts: path.join(dir, `contacts.${format}`)}
  await writeAtomic(files.companies, rendered.files.companies)
  await writeAtomic(files.contacts, rendered.files.contacts)
  // runs show and runs watch say where it is.
  await db.updateTable('runs').set({export_path: dir}).where('id', '=', runId).execute()
  return {runId, status: rendered.status, files, companies: rendered.companies, contacts: rendered.contacts}
}

/** Per verdict: `<key>_verdict` and `<key>_evidence` (the URLs that show it). */
function verdictColumns(verdicts: Partial<Record<string, FinalVerdict>>): Record<string, string | null> {
  const out: Record<string, string | null> = {}
  for (const key of VERDICT_KEYS) {
    const v = verdicts?.[key]
    out[`${key}_verdict`] = v?.verdict ?? null
    out[`${key}_evidence`] = v ? [...new Set(v.evidence.map((e) => e.url))].join('; ') || null : null
  }

  return out
}

async function writeAtomic(file: string, content: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`
  await fs.writeFile(tmp, content)
  await fs.rename(tmp, file)
}

/** A CSV cell: no terminal escapes or direction overrides (`cat companies.csv` must not clear the screen), no formula. */
function csvCell(value: string): string {
  return neutralizeFormula(withoutEscapes(value))
}

/**
 * A phone number as people write it ("+1-555-2847", "+44 20 7946 0958 ext. 12"):
 * digits, spaces and + - . ( ) only, so a spreadsheet could at most do
 * arithmetic with it, never call a function or reach another cell.
 */
const PHONE = /^\+?[\d(][\d\s().-]*(?:\s*ext\.?\s*\d+)?$/i

/**
 * A CSV cell a spreadsheet would run as a formula (it starts with =, +, -, @,
 * a tab or a carriage return) gets a leading apostrophe, so it is shown as
 * text: company names and sources come from web pages and models. A phone
 * number is written as it is (a CRM import would keep the apostrophe). The
 * JSON export keeps the raw value.
 */
export function neutralizeFormula(value: string): string {
  return /^[=+\-@\t\r]/.test(value) && !PHONE.test(value) ? `'${value}` : value
}
