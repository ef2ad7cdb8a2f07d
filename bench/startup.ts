/**
 * (g) Start-up: how long a short rvx command takes from spawn to exit, next to
 * `node -e 0` (the floor: Node itself), on the same machine in the same minutes.
 * The commands alternate (each round in another order), after a warm-up that is
 * not recorded, so the file cache and the load of the machine are shared alike.
 */
import {spawn} from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import {performance} from 'node:perf_hooks'

import {migrateToLatest} from '../src/db/migrator.js'
import {parseCriteria, validateSize} from '../src/pipeline/criteria.js'
import {createRun} from '../src/pipeline/runs.js'
import {kysely, ROOT} from './common.js'

const BIN = path.join(ROOT, 'bin', 'run.js')
const MANIFEST = path.join(ROOT, 'oclif.manifest.json')
const RUNS = 3
const WARMUP = 2

export interface StartupTiming {
  command: string
  /** Wall time from spawn to exit, ms. */
  samples: number[]
  medianMs: number
  /** This command's median over `node -e 0`'s. */
  vsNode: number
}

export interface StartupResult {
  runs: number
  warmup: number
  manifest: boolean
  timings: StartupTiming[]
}

interface Probe {
  command: string
  argv: string[]
  env: NodeJS.ProcessEnv
  /** Checks a finished run's stdout (the command must have done its work, not failed fast). */
  check?: (stdout: string) => void
}

function time(probe: Probe): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now()
    const child = spawn(process.execPath, probe.argv, {cwd: ROOT, env: probe.env, stdio: ['ignore', 'pipe', 'pipe']})
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code) => {
      const ms = performance.now() - started
      if (code !== 0) return reject(new Error(`${probe.command} exited with ${code}: ${stderr.trim()}`))
      try {
        probe.check?.(stdout)
      } catch (error) {
        return reject(error)
      }

      resolve(ms)
    })
  })
}

const median = (values: number[]) => {
  const s = [...values].sort((a, b) => a - b)
  const mid = s.length / 2
  return s.length % 2 ? s[Math.floor(mid)] : (s[mid - 1] + s[mid]) / 2
}

/**
 * `rvx runs list --json` against the bench's embedded server: as a user runs it (no DATABASE_URL: rvx finds the
 * server through RVX_HOME) and with DATABASE_URL; `node -e 0` as the floor. `home` is the bench server's RVX_HOME,
 * `url` its rvx database.
 */
export async function startupTimes(home: string, url: string, n: number, progress: (m: string) => void): Promise<StartupResult> {
  if (!fs.existsSync(path.join(ROOT, 'dist', 'src', 'commands'))) throw new Error('(g) times the built CLI: run npm run build first')
  const db = kysely(url)
  try {
    await migrateToLatest(db, url)
    for (let i = 0; i < RUNS; i++) {
      await createRun(db, {
        criteria: parseCriteria(`{"pms":"Buildium","state":"TX","city":"Austin ${i}"}`),
        size: validateSize({quantity: 10, contactsMin: 1, contactsMax: 3}),
        provider: 'simulated',
      })
    }
  } finally {
    await db.destroy()
  }

  const env: NodeJS.ProcessEnv = {...process.env, RVX_HOME: home, NO_COLOR: '1', RVX_PG_PORT: ''}
  delete env.DATABASE_URL
  const listed = (stdout: string) => {
    const runs = (JSON.parse(stdout) as {runs: unknown[]}).runs
    if (runs.length !== RUNS) throw new Error(`rvx runs list --json listed ${runs.length} runs, not ${RUNS}`)
  }

  const probes: Probe[] = [
    {command: 'node -e 0', argv: ['-e', '0'], env},
    {command: 'rvx runs list --json', argv: [BIN, 'runs', 'list', '--json'], env, check: listed},
    {command: 'rvx runs list --json (DATABASE_URL)', argv: [BIN, 'runs', 'list', '--json'], env: {...env, DATABASE_URL: url}, check: listed},
  ]
  for (let i = 0; i < WARMUP; i++) for (const probe of probes) await time(probe)
  const samples = new Map<string, number[]>(probes.map((p) => [p.command, []]))
  for (let round = 0; round < n; round++) {
    for (const probe of round % 2 === 0 ? probes : [...probes].reverse()) samples.get(probe.command)!.push(await time(probe))
    progress(`(g) ${round + 1}/${n}: ${probes.map((p) => `${p.command} ${samples.get(p.command)!.at(-1)!.toFixed(0)} ms`).join(', ')}`)
  }

  const floor = median(samples.get('node -e 0')!)
  return {
    runs: n,
    warmup: WARMUP,
    manifest: fs.existsSync(MANIFEST),
    timings: probes.map((p) => {
      const s = samples.get(p.command)!
      return {command: p.command, samples: s.map((x) => Math.round(x)), medianMs: Math.round(median(s)), vsNode: Math.round((median(s) / floor) * 100) / 100}
    }),
  }
}
