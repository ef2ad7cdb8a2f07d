import {createRequire} from 'node:module'
import type TableClass from 'cli-table3'
import stringWidth from 'string-width'

import type {Env} from '../shared/config.js'
import {codePoint, UNSAFE_CHARACTERS} from '../shared/text.js'

export interface OutputMode {
  json: boolean
  /** stderr is an interactive terminal: spinners animate, colours allowed. */
  tty: boolean
  color: boolean
}

export function detectMode(json: boolean, env: Env, stream: NodeJS.WriteStream = process.stderr): OutputMode {
  const tty = Boolean(stream.isTTY) && env.TERM !== 'dumb' && !env.CI
  return {json, tty, color: tty && !('NO_COLOR' in env)}
}

export interface Column<Row> {
  header: string
  get: (row: Row) => unknown
  /** 'right' for figures given as text ("$0.41", "12 MB"); columns of plain numbers are right-aligned anyway. */
  align?: 'left' | 'right'
  /** Free text (criteria, notes): the first cut, with …, when the table is wider than the terminal. */
  wide?: boolean
  /** Less important columns: when cutting text is not enough they go, highest rank first. */
  drop?: number
  /** A status: coloured on a colour terminal. */
  status?: boolean
}

/** How a table prints: at most `width` columns wide (none: as wide as its rows), coloured or not. */
export interface TableMode {
  width?: number
  color: boolean
}

/**
 * Tables on stdout: on a terminal, fitted to its width and coloured (unless
 * NO_COLOR or TERM=dumb); piped, plain and complete, unless the COLUMNS
 * environment variable gives a width to fit.
 */
export function tableMode(env: Env, stream: NodeJS.WriteStream = process.stdout): TableMode {
  const fromEnv = Number(env.COLUMNS)
  const envWidth = Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : undefined
  if (!stream.isTTY) return {width: envWidth, color: false}
  return {width: stream.columns || envWidth, color: env.TERM !== 'dumb' && !('NO_COLOR' in env)}
}

const GAP = 2
/** How narrow a wide text column gets before less important columns are dropped. */
const WIDE_MIN = 20
const ANSI = {bold: [1, 22], green: [32, 39], yellow: [33, 39], red: [31, 39]} as const
const STATUS_COLOR: Record<string, keyof typeof ANSI> = {
  completed: 'green',
  idle: 'green',
  needs_decision: 'yellow',
  draining: 'yellow',
  paused: 'yellow',
  stalled: 'yellow',
  failed: 'red',
  dead: 'red',
}

const paint = (style: keyof typeof ANSI, text: string) => `\u001B[${ANSI[style][0]}m${text}\u001B[${ANSI[style][1]}m`

/**
 * A table as text, kubectl-style: no borders, an upper-case header row (bold
 * in colour), one line per row, numbers right-aligned. Wider than
 * `mode.width`, it first cuts the wide text columns with …, then drops the
 * columns marked `drop`, then cuts the widest: a row never wraps.
 */
export function renderTable<Row>(rows: Row[], columns: Array<Column<Row>>, mode: TableMode): string {
  const values = rows.map((row) => columns.map((c) => c.get(row)))
  const cells = values.map((r) => r.map(formatCell))
  const widths = columns.map((c, i) => Math.max(stringWidth(c.header), ...cells.map((r) => stringWidth(r[i]))))
  const kept = fit(columns, widths, mode.width)
  const numeric = (v: unknown) => v === null || v === undefined || typeof v === 'number' || typeof v === 'bigint'
  const right = columns.map((c, i) => c.align === 'right' || (c.align === undefined && values.length > 0 && values.every((r) => numeric(r[i]))))
  const head = kept.map((i) => (mode.color ? paint('bold', columns[i].header.toUpperCase()) : columns[i].header.toUpperCase()))
  const body = cells.map((r) => kept.map((i) => (mode.color && columns[i].status && STATUS_COLOR[r[i]] ? paint(STATUS_COLOR[r[i]], r[i]) : r[i])))
  return draw([head, ...body], {
    colWidths: kept.map((i) => widths[i]),
    colAligns: kept.map((i) => (right[i] ? 'right' : 'left')),
    wordWrap: false,
  })
}

/**
 * Key/value lines (a record rather than a list): the keys in a column, each
 * value beside its key; fitted to `mode.width` by wrapping the value at word
 * boundaries under itself, so nothing is lost.
 */
export function renderPairs(pairs: Array<[string, unknown]>, mode: TableMode): string {
  const cells = pairs.map(([k, v]) => [k, formatCell(v)])
  const keyWidth = Math.max(...cells.map((c) => stringWidth(c[0])))
  const natural = Math.max(...cells.map((c) => stringWidth(c[1])))
  const valueWidth = mode.width === undefined ? natural : Math.max(10, Math.min(natural, mode.width - keyWidth - GAP))
  return draw(
    cells.map(([k, v]) => [mode.color ? paint('bold', k) : k, v]),
    {colWidths: [keyWidth, valueWidth], wordWrap: true, wrapOnWordBoundary: true},
  )
}

/** Which columns fit in `width` (all of them when it is undefined), narrowing `widths` in place. */
function fit<Row>(columns: Array<Column<Row>>, widths: number[], width: number | undefined): number[] {
  let kept = columns.map((_, i) => i)
  if (width === undefined) return kept
  const excess = () => kept.reduce((sum, i) => sum + widths[i], 0) + GAP * (kept.length - 1) - width
  const natural = [...widths]
  const wide = kept.filter((i) => columns[i].wide)
  // Wide text first, down to WIDE_MIN columns (or its header): enough to tell rows apart.
  for (const i of [...wide].sort((a, b) => widths[b] - widths[a])) {
    if (excess() <= 0) break
    widths[i] = Math.max(Math.min(widths[i], Math.max(stringWidth(columns[i].header), WIDE_MIN)), widths[i] - excess())
  }

  // Then the less important columns, the least important first.
  const droppable = kept.filter((i) => columns[i].drop !== undefined).sort((a, b) => columns[b].drop! - columns[a].drop! || b - a)
  for (const i of droppable) {
    if (excess() <= 0) break
    kept = kept.filter((k) => k !== i)
  }

  // What a dropped column left over goes back to the wide text.
  for (const i of wide) if (excess() < 0) widths[i] = Math.min(natural[i], widths[i] - excess())

  // Last, the widest columns, a character at a time.
  while (excess() > 0) {
    const widest = kept.reduce((a, b) => (widths[b] > widths[a] ? b : a))
    if (widths[widest] <= 1) break
    widths[widest]--
  }

  return kept
}

function draw(rows: string[][], options: Pick<TableClass.TableConstructorOptions, 'colAligns' | 'colWidths' | 'wordWrap' | 'wrapOnWordBoundary'>): string {
  // Loaded here: scripts and --json never pay for it (cli-table3 is CommonJS, so require() is synchronous).
  const Table = createRequire(import.meta.url)('cli-table3') as typeof TableClass
  const none = {top: '', 'top-mid': '', 'top-left': '', 'top-right': '', bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': ''}
  const table = new Table({
    ...options,
    chars: {...none, left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '', middle: ' '.repeat(GAP)},
    style: {'padding-left': 0, 'padding-right': 0, head: [], border: []},
    truncate: '…',
  })
  table.push(...rows)
  // The last column is padded too: trailing blanks would only get in the way of grep and cut.
  return table
    .toString()
    .split('\n')
    .map((line) => line.trimEnd())
    .join('\n')
}

function formatCell(value: unknown): string {
  if (value === null || value === undefined) return '-'
  if (value instanceof Date) return value.toISOString()
  if (typeof value === 'object') return printable(JSON.stringify(value))
  return printable(String(value))
}

/**
 * Text from the database, the web or a model made safe to print: each
 * control or direction character shows as its escape (\u202E), so a table or
 * a line shows what is stored and cannot be reordered or rewritten by it.
 */
export function printable(text: string): string {
  return text.replace(UNSAFE_CHARACTERS, (c) => `\\u${codePoint(c).slice(2)}`)
}

/**
 * A spinner on a terminal; on a pipe, plain lines for the start and the end
 * of the work; nothing at all under --json. Never reads stdin (signals keep working).
 */
export interface Spinner {
  update(text: string): void
  succeed(text?: string): void
  fail(text?: string): void
  stop(): void
}

export async function spinner(text: string, mode: OutputMode): Promise<Spinner> {
  if (mode.json) return {update() {}, succeed() {}, fail() {}, stop() {}}
  if (!mode.tty) {
    process.stderr.write(`${printable(text)}...\n`)
    return {
      update() {},
      succeed(t) {
        if (t) process.stderr.write(`${printable(t)}\n`)
      },
      fail(t) {
        if (t) process.stderr.write(`${printable(t)}\n`)
      },
      stop() {},
    }
  }

  // ora (and its dependencies) only for a terminal: imported here, not by every command that might show a spinner.
  const {default: ora} = await import('ora')
  const s = ora({text: printable(text), stream: process.stderr, discardStdin: false, color: 'cyan', isEnabled: true}).start()
  return {
    update(t) {
      s.text = printable(t)
    },
    succeed(t) {
      s.succeed(t === undefined ? t : printable(t))
    },
    fail(t) {
      s.fail(t === undefined ? t : printable(t))
    },
    stop() {
      s.stop()
    },
  }
}
