import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {pathToFileURL} from 'node:url'

import {ROOT, rvx} from '../helpers/cli.js'
import {useFreshDatabase} from '../helpers/db.js'

/**
 * Start-up (bench/startup.ts times it): the build writes oclif's manifest, so a
 * command loads only its own module, and a short command does not load what
 * only other commands need. What is loaded is checked, not how long it takes.
 */
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'))

/** Command ids as oclif derives them from the files in src/commands (runs/list.ts is runs:list). */
function commandIds(dir = path.join(ROOT, 'src', 'commands'), prefix: string[] = []): string[] {
  return fs.readdirSync(dir, {withFileTypes: true}).flatMap((entry) => {
    if (entry.isDirectory()) return commandIds(path.join(dir, entry.name), [...prefix, entry.name])
    if (!entry.name.endsWith('.ts')) return []
    // A topic's index.ts is the topic's own command (src/commands/limits/index.ts is `rvx limits`).
    return [[...prefix, ...(entry.name === 'index.ts' ? [] : [entry.name.slice(0, -3)])].join(':')]
  })
}

/**
 * A preload that records every module a process loads: ESM through a resolve hook, CommonJS through
 * Module._load, and Node's own built-in modules (process.moduleLoadList) at exit.
 */
function moduleRecorder(dir: string, out: string): string {
  const hooks = path.join(dir, 'hooks.mjs')
  fs.writeFileSync(
    hooks,
    `import fs from 'node:fs'
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context)
  fs.appendFileSync(${JSON.stringify(out)}, resolved.url + '\\n')
  return resolved
}
`,
  )
  const preload = path.join(dir, 'record.mjs')
  fs.writeFileSync(
    preload,
    `import fs from 'node:fs'
import Module, {register} from 'node:module'
register(${JSON.stringify(pathToFileURL(hooks).href)})
const load = Module._load
Module._load = function (request, parent, isMain) {
  try {
    fs.appendFileSync(${JSON.stringify(out)}, Module._resolveFilename(request, parent, isMain) + '\\n')
  } catch {}
  return load.apply(this, arguments)
}
process.on('exit', () => fs.appendFileSync(${JSON.stringify(out)}, (process.moduleLoadList ?? []).map((m) => 'builtin:' + m).join('\\n') + '\\n'))
`,
  )
  return preload
}

describe('start-up', function () {
  this.timeout(120_000)

  it('the build wrote oclif.manifest.json, listing every command in src/commands, and the package ships it', () => {
    const file = path.join(ROOT, 'oclif.manifest.json')
    assert.ok(fs.existsSync(file), 'npm run build writes oclif.manifest.json')
    const manifest = JSON.parse(fs.readFileSync(file, 'utf8')) as {version: string; commands: Record<string, {relativePath: string[]}>}
    assert.equal(manifest.version, pkg.version)
    assert.deepEqual(Object.keys(manifest.commands).sort(), commandIds().sort())
    for (const [id, command] of Object.entries(manifest.commands)) {
      assert.ok(fs.existsSync(path.join(ROOT, ...command.relativePath)), `${id}: ${command.relativePath.join('/')} is built`)
    }

    assert.ok(pkg.files.includes('oclif.manifest.json'), 'in package.json "files": a packed rvx has it')
  })

  describe('rvx runs list --json', () => {
    const t = useFreshDatabase()
    let dir: string
    let loaded: string[]

    before(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-startup-'))
      const out = path.join(dir, 'loaded.txt')
      const res = await rvx(['runs', 'list', '--json'], {
        env: {DATABASE_URL: t.url, NODE_OPTIONS: `--import=${pathToFileURL(moduleRecorder(dir, out)).href}`},
      })
      assert.equal(res.code, 0, res.stderr)
      assert.deepEqual(JSON.parse(res.stdout), {runs: []})
      loaded = fs.readFileSync(out, 'utf8').split('\n').filter(Boolean)
    })

    after(() => {
      if (dir) fs.rmSync(dir, {recursive: true, force: true})
    })

    const fromPackage = (name: string) => loaded.filter((m) => m.includes(`/node_modules/${name}/`))
    const fromBuild = (part: string) => loaded.filter((m) => m.includes(`/dist/src/${part}`))

    it('loads its own command module and no other command', () => {
      assert.ok(fromBuild('commands/runs/list.js').length > 0, 'the recorder saw the command load')
      assert.deepEqual(
        fromBuild('commands/').filter((m) => !m.endsWith('/commands/runs/list.js')),
        [],
      )
    })

    it('loads neither the OpenAI SDK nor mail, metrics, logging, spinners, zod or the embedded server (DATABASE_URL is set)', () => {
      for (const name of [
        'openai',
        'nodemailer',
        'prom-client',
        'undici',
        'pino',
        'pino-pretty',
        'ora',
        'zod',
        'htmlparser2',
        'html-to-text',
        'proper-lockfile',
      ]) {
        assert.deepEqual(fromPackage(name), [], `${name} is not loaded`)
      }

      for (const part of ['agents/', 'monitor/', 'db/embedded.js']) assert.deepEqual(fromBuild(part), [], `dist/src/${part} is not loaded`)
    })

    it("loads kysely as one bundled module, and pg without Node's fetch (undici) behind it", () => {
      assert.deepEqual(fromPackage('kysely'), [], "the build's bundle, not kysely's own modules")
      assert.ok(fromBuild('db/kysely.js').length > 0)
      assert.ok(fromPackage('pg').length > 0, 'pg is loaded')
      if (loaded.some((m) => m.startsWith('builtin:'))) {
        assert.deepEqual(
          loaded.filter((m) => m.startsWith('builtin:') && m.includes('deps/undici')),
          [],
        )
      }
    })
  })
})
