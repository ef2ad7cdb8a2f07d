import {spawn, type ChildProcess} from 'node:child_process'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
export const BIN = path.join(ROOT, 'bin', 'run.js')

export interface CliResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

export interface CliOptions {
  env?: NodeJS.ProcessEnv
  input?: string
  timeoutMs?: number
  /** Working directory (default: the repository), for commands that write relative to it. */
  cwd?: string
  /** Run as this OS user (the tests run as root in CI: an unwritable directory needs someone else). */
  uid?: number
  gid?: number
}

/** The environment a spawned rvx sees: ours minus anything that would point it at a real database or home. */
export function cliEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {...process.env, NO_COLOR: '1', RVX_HOME: process.env.RVX_TEST_HOME + '/cli-home'}
  delete env.DATABASE_URL
  delete env.RVX_PG_PORT
  // Tables are fitted to COLUMNS when it is set: a test asks for a width explicitly, never inherits one.
  delete env.COLUMNS
  return {...env, ...extra}
}

export function spawnRvx(args: string[], options: CliOptions = {}): ChildProcess {
  return spawn(process.execPath, [BIN, ...args], {
    cwd: options.cwd ?? ROOT,
    env: cliEnv(options.env),
    stdio: ['pipe', 'pipe', 'pipe'],
    uid: options.uid,
    gid: options.gid,
  })
}

/** Runs bin/run.js as a real process and collects its output; kills it after timeoutMs. */
export function rvx(args: string[], options: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawnRvx(args, options)
    let stdout = ''
    let stderr = ''
    child.stdout!.on('data', (d) => (stdout += d))
    child.stderr!.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({code, signal, stdout, stderr})
    })
    child.stdin!.end(options.input ?? '')
  })
}

/** Asserts-friendly view of stderr: the non-empty lines. */
export function lines(text: string): string[] {
  return text.split('\n').filter((l) => l.trim().length > 0)
}

export function hasStackTrace(text: string): boolean {
  return /^\s+at .+\(.+:\d+:\d+\)|^\s+at .+:\d+:\d+$/m.test(text)
}
