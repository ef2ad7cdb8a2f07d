import {spawn} from 'node:child_process'
import {readFileSync} from 'node:fs'
import fs from 'node:fs/promises'
import os from 'node:os'

import {childEnvironment} from '../shared/config.js'
import {DatabaseUnavailableError} from '../shared/errors.js'
import type {OsUser} from './os-user.js'

/** The embedded server's processes and files as the OS shows them: spawn as its user, pid files, liveness, log lines. */

export function quoteSetting(value: string): string {
  return value === '' ? "''" : /^[\w./:-]+$/.test(value) ? value : `'${value.replaceAll("'", "''")}'`
}

export async function run(command: string, args: string[], osUser: OsUser | null): Promise<{code: number; output: string}> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: '/',
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(osUser ? {uid: osUser.uid, gid: osUser.gid} : {}),
      env: childEnvironment({LC_ALL: 'C', ...(osUser ? {HOME: '/'} : {})}),
    })
    let output = ''
    child.stdout.on('data', (chunk) => {
      output += chunk
    })
    child.stderr.on('data', (chunk) => {
      output += chunk
    })
    // A program that cannot be started at all (EACCES, ENOENT) is a one-line error, never a raw spawn error.
    child.on('error', (error: NodeJS.ErrnoException) =>
      reject(
        new DatabaseUnavailableError(
          `cannot run ${command}${osUser ? ` as OS user ${osUser.name}` : ''} (${error.code ?? error.message}): check that the rvx install is complete and readable by that user.`,
          {cause: error, code: 'embedded_program_failed'},
        ),
      ),
    )
    child.on('close', (code) => resolve({code: code ?? 1, output}))
  })
}

/** Sends `signal` and waits (bounded) for the process to go; false when it is still there. */
export async function stopBySignal(pid: number, signal: NodeJS.Signals, timeoutMs: number): Promise<boolean> {
  try {
    process.kill(pid, signal)
  } catch {
    return !isAlive(pid)
  }

  for (let waited = 0; waited < timeoutMs && isAlive(pid); waited += 100) await new Promise((resolve) => setTimeout(resolve, 100))
  return !isAlive(pid)
}

export async function readPid(file: string): Promise<number | null> {
  try {
    const pid = Number.parseInt((await fs.readFile(file, 'utf8')).split('\n')[0], 10)
    return Number.isInteger(pid) && pid > 0 ? pid : null
  } catch {
    return null
  }
}

/** The port in a postmaster.pid (its fourth line): where a running server listens, whatever server.json says. */
export async function readPort(file: string): Promise<number | null> {
  try {
    const port = Number.parseInt((await fs.readFile(file, 'utf8')).split('\n')[3] ?? '', 10)
    return Number.isInteger(port) && port > 0 && port <= 65_535 ? port : null
  } catch {
    return null
  }
}

export function readPidSync(file: string): number | null {
  try {
    const pid = Number.parseInt(readFileSync(file, 'utf8').split('\n')[0], 10)
    return Number.isInteger(pid) && pid > 0 ? pid : null
  } catch {
    return null
  }
}

/** True for a running process; false for none and for a zombie (exited, not yet reaped by its new parent). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false
  }

  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return os.platform() !== 'linux'
  }
}

export async function isPostgresProcess(pid: number): Promise<boolean> {
  if (os.platform() !== 'linux') return true
  try {
    const cmdline = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8')
    return /postgres/.test(cmdline)
  } catch {
    return false
  }
}

export function lastLine(text: string): string {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !/^waiting for server|^stopped waiting|^pg_ctl: could not start server|^Examine the log output/.test(l))
  return (lines.at(-1) ?? '').replace(/^\S+ \S+ \S+ \[\d+\] /, '')
}

/**
 * The line of a PostgreSQL program's output or server log that says why it
 * failed: the last error, FATAL or PANIC line ("No space left on device"),
 * not the last line, which is often only what it did next ("removing contents
 * of data directory"). Without `serious`, the last line when none is found;
 * with it, only such a line among the last 30 (older ones are past incidents).
 */
export function causeLine(text: string, options: {serious?: boolean} = {}): string {
  const lines = text
    .split('\n')
    .map((l) => l.trim().replace(/^\S+ \S+ \S+ \[\d+\] /, ''))
    .filter((l) => l.length > 0)
  const cause = lines
    .slice(options.serious ? -30 : 0)
    .findLast((l) => /\b(PANIC|FATAL):|\berror:|No space left on device|Permission denied|could not (write|create|open|extend)/i.test(l))
  // From the server's own word on ("running bootstrap script ... <timestamp> FATAL:  could not write ..." -> "FATAL: could not write ...").
  if (cause) return cause.replace(/^.*?\b(PANIC|FATAL|ERROR):\s+/, '$1: ')
  return options.serious ? '' : lastLine(text)
}

/** The last `bytes` of a file (a log), or '' when it cannot be read. */
export async function readTail(p: string, bytes: number): Promise<string> {
  return readFrom(p, Math.max(0, (await fileSize(p)) - bytes))
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p)
    return true
  } catch {
    return false
  }
}

export async function fileSize(p: string): Promise<number> {
  try {
    return (await fs.stat(p)).size
  } catch {
    return 0
  }
}

export async function readFrom(p: string, offset: number): Promise<string> {
  try {
    const buf = await fs.readFile(p)
    return buf.subarray(offset).toString('utf8')
  } catch {
    return ''
  }
}
