import {randomUUID} from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import type {Executor} from '../db/executor.js'
import {sql} from '../db/kysely.js'
import {llmCallRow, type UsageRow} from './usage.js'

/** A journal entry is kept this long after it was written: a failover that loses commits older than this loses them. */
export const JOURNAL_KEEP_MS = 10 * 60_000

/** `db`: the id of the database the call was recorded in (rvx_meta database_id): a journal is only ever written back there. */
type Entry = UsageRow & {callId: string; at: number; db: string}

/**
 * Every paid call this process makes, written to a local file before it is
 * recorded in llm_calls and kept for JOURNAL_KEEP_MS. A database that loses
 * the tail of its commits (a failover with asynchronous replication) loses
 * those records with them; `reconcile` writes them again (each call has the
 * id it was given here, so nothing is ever counted twice). Journals of rvx
 * processes on this machine that died are reconciled and removed too.
 */
export class SpendJournal {
  private readonly file: string
  private fd: number | null = null
  private broken = false

  constructor(
    private readonly dir: string,
    private readonly databaseId: string,
    private readonly warn: (message: string) => void = () => {},
  ) {
    this.file = path.join(dir, `${os.hostname()}-${process.pid}-${randomUUID().slice(0, 8)}.ndjson`)
  }

  /** Gives the call its id and writes it down (synchronously, flushed): from here on it cannot be lost with the database. */
  append(usage: UsageRow): UsageRow & {callId: string} {
    const entry: Entry = {...usage, callId: usage.callId ?? randomUUID(), at: Date.now(), db: this.databaseId}
    if (this.broken) return entry
    try {
      if (this.fd === null) {
        fs.mkdirSync(this.dir, {recursive: true, mode: 0o700})
        this.fd = fs.openSync(this.file, 'a', 0o600)
      }

      fs.writeSync(this.fd, JSON.stringify(entry) + '\n')
      fs.fdatasyncSync(this.fd)
    } catch (error) {
      this.broken = true
      this.warn(`cannot keep the spend journal in ${this.dir} (${(error as Error).message}): paid calls are recorded in the database only`)
    }

    return entry
  }

  /**
   * Writes every journaled call the database does not have (this process's,
   * and those of dead processes' journals in the same directory), then drops
   * entries older than JOURNAL_KEEP_MS. Returns how many were written again.
   */
  async reconcile(db: Executor): Promise<number> {
    let written = 0
    for (const file of this.journals()) {
      const entries = readEntries(file)
      written += await restore(
        db,
        entries.filter((e) => e.db === this.databaseId),
      )
      // Another database's calls (a dead process that used another DATABASE_URL) wait for a process of that database.
      const keep = entries.filter((e) => Date.now() - e.at < JOURNAL_KEEP_MS && (file === this.file || e.db !== this.databaseId))
      if (file === this.file) this.compact(keep)
      else if (keep.length === 0) fs.rmSync(file, {force: true})
    }

    return written
  }

  /** After a last reconcile that went through: nothing of this process's is left to write back. */
  close(reconciled: boolean): void {
    if (this.fd !== null) fs.closeSync(this.fd)
    this.fd = null
    if (reconciled && !this.broken) fs.rmSync(this.file, {force: true})
  }

  /** This process's journal and those left by processes of this host that are gone. */
  private journals(): string[] {
    let names: string[]
    try {
      names = fs.readdirSync(this.dir)
    } catch {
      return []
    }

    const prefix = `${os.hostname()}-`
    return names
      .filter((n) => n.endsWith('.ndjson'))
      .map((n) => path.join(this.dir, n))
      .filter((file) => {
        if (file === this.file) return true
        const base = path.basename(file)
        if (!base.startsWith(prefix)) return false
        const pid = Number(base.slice(prefix.length).split('-')[0])
        return Number.isInteger(pid) && !alive(pid)
      })
  }

  private compact(keep: Entry[]): void {
    if (this.broken) return
    const tmp = `${this.file}.tmp`
    fs.writeFileSync(tmp, keep.map((e) => JSON.stringify(e) + '\n').join(''), {mode: 0o600})
    if (this.fd !== null) fs.closeSync(this.fd)
    fs.renameSync(tmp, this.file)
    this.fd = fs.openSync(this.file, 'a', 0o600)
  }
}

function readEntries(file: string): Entry[] {
  let text: string
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch {
    return []
  }

  const out: Entry[] = []
  for (const line of text.split('\n')) {
    if (!line) continue
    try {
      out.push(JSON.parse(line) as Entry)
    } catch {
      // A line cut short by a crash while it was written: that call's record is the database's alone.
    }
  }

  return out
}

/** Inserts the entries llm_calls lacks; a run the database lost too keeps the call, unattributed. */
async function restore(db: Executor, entries: Entry[]): Promise<number> {
  let written = 0
  for (let i = 0; i < entries.length; i += 500) {
    const batch = entries.slice(i, i + 500).map((e) => ({...llmCallRow(e), at: new Date(e.at).toISOString()}))
    const {rows} = await sql<{n: number}>`
      with input as (
        select * from jsonb_to_recordset(${JSON.stringify(batch)}::jsonb) as x(
          call_id uuid, run_id bigint, task_id bigint, provider text, model text, input_tokens int, output_tokens int,
          cached_tokens int, latency_ms int, waited_ms int, cost_usd numeric, outcome text, usage_estimated boolean, at timestamptz)
      ), added as (
        insert into llm_calls (call_id, run_id, task_id, provider, model, input_tokens, output_tokens, cached_tokens, latency_ms, waited_ms, cost_usd, outcome,
                               usage_estimated, created_at)
        select i.call_id, (select r.id from runs r where r.id = i.run_id), i.task_id, i.provider, i.model, i.input_tokens, i.output_tokens,
               i.cached_tokens, i.latency_ms, i.waited_ms, i.cost_usd, i.outcome, i.usage_estimated, i.at
        from input i
        where not exists (select 1 from llm_calls l where l.call_id = i.call_id)
        on conflict (call_id) do nothing
        returning 1
      )
      select count(*)::int as n from added`.execute(db)
    written += rows[0]?.n ?? 0
  }

  return written
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}
