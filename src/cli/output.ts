import {createRequire} from 'node:module'
import type TableClass from 'cli-table3'

import {codePoint, UNSAFE_CHARACTERS} from '../shared/text.js'

export interface OutputMode {
  json: boolean
  /** stderr is an interactive terminal: spinners animate, colours allowed. */
  tty: boolean
  color: boolean
}

export function detectMode(json: boolean, stream: NodeJS.WriteStream = process.stderr): OutputMode {
  const tty = Boolean(stream.isTTY) && process.env.TERM !== 'dumb' && !process.env.CI
  return {json, tty, color: tty && !('NO_COLOR' in process.env)}
}

export interface Column<Row> {
  header: string
  get: (row: Row) => unknown
}

/** A table as text: boxed and coloured on a terminal, plain aligned columns otherwise (easy to grep and cut). */
export function renderTable<Row>(rows: Row[], columns: Array<Column<Row>>, mode: Pick<OutputMode, 'color' | 'tty'>): string {
  const cells = rows.map((row) => columns.map((c) => formatCell(c.get(row))))
  if (!mode.tty) {
    const all = [columns.map((c) => c.header.toUpperCase()), ...cells]
    const widths = columns.map((_, i) => Math.max(...all.map((r) => r[i].length)))
    return all.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]))).join('  ')).join('\n')
  }

  // Loaded here, for terminals only: scripts and --json never pay for it (cli-table3 is CommonJS, so require() is synchronous).
  const Table = createRequire(import.meta.url)('cli-table3') as typeof TableClass
  const table = new Table({head: columns.map((c) => c.header), style: {head: mode.color ? ['cyan'] : [], border: mode.color ? ['grey'] : []}})
  table.push(...cells)
  return table.toString()
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
