import {type ChildProcess, spawn, type SpawnOptions} from 'node:child_process'
import path from 'node:path'

import {BIN, cliEnv, ROOT} from './cli.js'
import type {Netns} from './netns.js'

export interface Spawned {
  child: ChildProcess
  stdout: () => string
  stderr: () => string
  exited: Promise<{code: number | null; signal: NodeJS.Signals | null}>
}

const live = new Set<ChildProcess>()

/** Spawns a TypeScript script under tsx; every child is SIGKILLed at the end of the run if still alive. */
export function spawnScript(script: string, env: NodeJS.ProcessEnv): Spawned {
  return track(
    spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, script)], {cwd: ROOT, env: {...process.env, ...env}, stdio: ['ignore', 'pipe', 'pipe']}),
  )
}

/** A long-running `rvx ...` (worker, monitor) as a real process, tracked like spawnScript's; inside `netns` when given. */
export function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}, options: {netns?: Netns} = {}): Spawned {
  const spawnOptions: SpawnOptions = {cwd: ROOT, env: cliEnv(env), stdio: ['ignore', 'pipe', 'pipe']}
  const argv = [BIN, ...args]
  return track(options.netns ? options.netns.exec(process.execPath, argv, spawnOptions) : spawn(process.execPath, argv, spawnOptions))
}

function track(child: ChildProcess): Spawned {
  live.add(child)
  let out = ''
  let err = ''
  child.stdout!.on('data', (d) => (out += d))
  child.stderr!.on('data', (d) => (err += d))
  const exited = new Promise<{code: number | null; signal: NodeJS.Signals | null}>((resolve) => {
    child.on('exit', (code, signal) => {
      live.delete(child)
      resolve({code, signal})
    })
  })
  return {child, stdout: () => out, stderr: () => err, exited}
}

export function killAll(): void {
  for (const child of live) child.kill('SIGKILL')
}

process.on('exit', killAll)

/** Polls `check` until it returns a truthy value or the deadline passes (then throws with `what`). */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | null | false>, timeoutMs = 30_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs
  while (true) {
    const value = await check()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, everyMs))
  }
}
