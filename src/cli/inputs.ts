import {readFileBounded, ReadLimitError, readStreamBounded} from '../shared/bounded-read.js'
import {directoryProblem} from '../shared/directories.js'
import {UsageError} from '../shared/errors.js'

/** Criteria are a few KB; with 10,000 exclude_domains a few MB. */
const MAX_CRITERIA_BYTES = 8 * 1024 * 1024
/** A named file that is a pipe or FIFO must have been written within this. */
const READ_TIMEOUT_MS = 10_000

/** --criteria takes JSON text, @file.json, or - for stdin; each read with a byte limit, and a leading byte-order mark dropped. */
export async function readCriteriaText(value: string, stdin: NodeJS.ReadStream = process.stdin): Promise<string> {
  if (value === '-') {
    if (stdin.isTTY)
      throw new UsageError('- reads the criteria from standard input, which is a terminal: pipe them in, or give @file.json', {field: 'criteria'})
    try {
      return withoutBom((await readStreamBounded(stdin, MAX_CRITERIA_BYTES)).toString('utf8'))
    } catch (error) {
      if (error instanceof ReadLimitError) throw new UsageError(`from standard input ${error.message}: give a JSON object of criteria`, {field: 'criteria'})
      throw error
    }
  }

  if (value.startsWith('@')) return withoutBom(readNamedFile(value.slice(1), MAX_CRITERIA_BYTES, 'criteria', 'criteria file').toString('utf8'))
  return withoutBom(value)
}

/** Editors on Windows start UTF-8 files with U+FEFF; it is not part of the JSON. */
function withoutBom(text: string): string {
  return text.replace(/^\uFEFF/, '')
}

/** A file named after @, read within its limits, or a usage error naming the flag, the file and what to do. */
function readNamedFile(file: string, maxBytes: number, field: string, what?: string): Buffer {
  const named = what ? `${what} ${file}` : file
  try {
    return readFileBounded(file, {maxBytes, timeoutMs: READ_TIMEOUT_MS})
  } catch (error) {
    if (error instanceof ReadLimitError) throw new UsageError(`${file} ${error.message}: give a smaller regular file`, {field})
    throw new UsageError(`cannot read ${named} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}): check the path after @`, {field})
  }
}

/**
 * --output-dir before anything is created or paid for: the export at the end
 * of a run must have somewhere to go. Creates nothing. Without the flag the
 * export goes under ./exports/ (in a folder named after the database's id,
 * not known before the database is opened): ./exports is what is checked.
 */
export async function checkOutputDir(dir: string | undefined, field = 'output_dir'): Promise<void> {
  if (dir === undefined) return checkOutputDir('./exports', field)
  const problem = await directoryProblem(dir)
  if (problem) throw new UsageError(`${dir} cannot hold the export: ${problem}; pick another directory`, {field})
}

/** A CRM export larger than this is refused (a list of domains is a few MB at most). */
const MAX_EXCLUDE_BYTES = 64 * 1024 * 1024
const DOMAIN_COLUMNS = ['domain', 'website', 'url']

/** What --exclude gave: the domains kept, and the entries that are not domains with why (the first few are shown). */
export interface ExcludeList {
  domains: string[]
  skipped: Array<{entry: string; problem: string}>
}

/**
 * --exclude: @file.csv (a CRM export with a column named domain, website or
 * url; the first of those found is used) or a comma-separated list of domains.
 * Returns the unique company keys (`companyKey`: a Unicode or fullwidth domain
 * is kept as its xn-- key, and blog.acme.com excludes acme.com) and the
 * entries that are not domains; unreadable or column-less files are a usage
 * error that names the file and what it needs.
 */
export async function readExcludeDomains(value: string): Promise<ExcludeList> {
  const {parse} = await import('csv-parse/sync')
  const {companyKey, parseDomain} = await import('../pipeline/domains.js')
  const keep = (values: Array<string | undefined>): ExcludeList => {
    const domains = new Set<string>()
    const skipped: ExcludeList['skipped'] = []
    for (const entry of values.map((v) => (v ?? '').trim()).filter(Boolean)) {
      const parsed = parseDomain(entry)
      if ('domain' in parsed) domains.add(companyKey(parsed.domain))
      else skipped.push({entry: entry.length > 60 ? `${entry.slice(0, 60)}...` : entry, problem: parsed.problem})
    }

    return {domains: [...domains], skipped}
  }

  if (!value.startsWith('@')) return keep(value.split(','))

  const file = value.slice(1)
  const text = readNamedFile(file, MAX_EXCLUDE_BYTES, 'exclude').toString('utf8')

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
