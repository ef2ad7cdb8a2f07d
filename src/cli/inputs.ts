import fs from 'node:fs/promises'

import {directoryProblem} from '../shared/directories.js'
import {UsageError} from '../shared/errors.js'

/** --criteria takes JSON text, @file.json, or - for stdin. */
export async function readCriteriaText(value: string, stdin: NodeJS.ReadStream = process.stdin): Promise<string> {
  if (value === '-') {
    const chunks: Buffer[] = []
    for await (const chunk of stdin) chunks.push(Buffer.from(chunk))
    return Buffer.concat(chunks).toString('utf8')
  }

  if (value.startsWith('@')) {
    try {
      return await fs.readFile(value.slice(1), 'utf8')
    } catch (error) {
      throw new UsageError(
        `cannot read criteria file ${value.slice(1)} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}): check the path after @`,
      )
    }
  }

  return value
}

/**
 * --output-dir before anything is created or paid for: the export at the end
 * of a run must have somewhere to go. Creates nothing. Without the flag the
 * export goes under ./exports/ (in a folder named after the database's id,
 * not known before the database is opened): ./exports is what is checked.
 */
export async function checkOutputDir(dir: string | undefined): Promise<void> {
  if (dir === undefined) return checkOutputDir('./exports')
  const problem = await directoryProblem(dir)
  if (problem) throw new UsageError(`${dir} cannot hold the export: ${problem}; pick another directory`, {field: 'output_dir'})
}

/** A CRM export larger than this is refused (a list of domains is a few MB at most). */
const MAX_EXCLUDE_BYTES = 64 * 1024 * 1024
const DOMAIN_COLUMNS = ['domain', 'website', 'url']

/**
 * --exclude: @file.csv (a CRM export with a column named domain, website or
 * url; the first of those found is used) or a comma-separated list of domains.
 * Returns the unique company keys (`companyKey`: blog.acme.com excludes acme.com); unreadable or column-less files are
 * a usage error that names the file and what it needs.
 */
export async function readExcludeDomains(value: string): Promise<string[]> {
  const {parse} = await import('csv-parse/sync')
  const {companyKey, normalizeDomain} = await import('../pipeline/domains.js')
  const keep = (values: Array<string | undefined>) => [
    ...new Set(
      values
        .map((v) => normalizeDomain(v ?? ''))
        .filter((d) => /^[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(d))
        .map(companyKey),
    ),
  ]
  if (!value.startsWith('@')) return keep(value.split(','))

  const file = value.slice(1)
  let text: string
  try {
    const stat = await fs.stat(file)
    if (stat.size > MAX_EXCLUDE_BYTES)
      throw new UsageError(`${file} is ${Math.round(stat.size / 1e6)} MB: give a CSV of at most 64 MB (only its domain column is needed)`, {field: 'exclude'})
    text = await fs.readFile(file, 'utf8')
  } catch (error) {
    if (error instanceof UsageError) throw error
    throw new UsageError(`cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}): check the path after @`, {
      field: 'exclude',
    })
  }

  let rows: string[][]
  try {
    rows = parse(text, {bom: true, skip_empty_lines: true, relax_column_count: true, trim: true})
  } catch (error) {
    throw new UsageError(`${file} is not a CSV file (${(error as Error).message.split('\n')[0]}): export it from your CRM as CSV`, {field: 'exclude'})
  }

  const header = (rows[0] ?? []).map((h) => h.toLowerCase())
  const column = DOMAIN_COLUMNS.map((name) => header.indexOf(name)).find((i) => i >= 0)
  if (column === undefined) {
    throw new UsageError(
      `${file} has no column named ${DOMAIN_COLUMNS.join(', ')} (its header: ${header.slice(0, 8).join(', ') || 'empty'}): rename the column that holds the companies' domains`,
      {field: 'exclude'},
    )
  }

  return keep(rows.slice(1).map((r) => r[column]))
}
