import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {EmbeddedServer} from '../../src/db/embedded.js'
import {createDatabase, dropDatabase, urlFor} from '../helpers/db.js'
import {hasStackTrace, lines, ROOT, rvx} from '../helpers/cli.js'

const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
const MIGRATIONS = fs.readdirSync(path.join(ROOT, 'migrations')).filter((f) => /\.ts$/.test(f)).length

describe('rvx --version / rvx version', function () {
  this.timeout(120_000)
  let home: string
  const databases: string[] = []

  before(() => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-version-'))
  })

  after(async () => {
    await new EmbeddedServer({home, env: process.env}).destroy().catch(() => {})
    fs.rmSync(home, {recursive: true, force: true})
    for (const name of databases) await dropDatabase(name)
  })

  it('reports rvx, Node, the PostgreSQL server and the schema level of an external database', async () => {
    const name = await createDatabase('ver')
    databases.push(name)
    const env = {DATABASE_URL: urlFor(name)}
    const before = JSON.parse((await rvx(['version', '--json'], {env})).stdout)
    assert.deepEqual(before.schema, {applied: 0, latest: MIGRATIONS})
    assert.equal((await rvx(['migrate'], {env})).code, 0)

    const res = await rvx(['version', '--json'], {env})
    assert.equal(res.code, 0, res.stderr)
    const v = JSON.parse(res.stdout)
    assert.equal(v.rvx, pkg.version)
    assert.equal(v.node, process.version)
    assert.equal(v.postgres.database, 'external')
    assert.equal(v.postgres.reachable, true)
    assert.match(v.postgres.version, /^\d+(\.\d+)?/)
    assert.equal(v.postgres.note, null)
    assert.deepEqual(v.schema, {applied: MIGRATIONS, latest: MIGRATIONS})

    // --version is the same report, for people.
    const text = await rvx(['--version'], {env})
    assert.equal(text.code, 0, text.stderr)
    assert.deepEqual(lines(text.stdout), [
      `rvx ${pkg.version}`,
      `Node.js ${process.version} (${process.platform}-${process.arch})`,
      `PostgreSQL ${v.postgres.version} (DATABASE_URL: ${v.postgres.target})`,
      `schema: ${MIGRATIONS} of ${MIGRATIONS} migrations applied`,
    ])
  })

  it('says when the server is not reachable, and does not start the embedded one', async () => {
    const env = {RVX_HOME: home}
    const res = await rvx(['--version'], {env})
    assert.equal(res.code, 0, res.stderr)
    assert.deepEqual(lines(res.stdout).slice(2), [
      'PostgreSQL: the embedded server is not running (rvx db start starts it; so does any command that needs it)',
      `schema: unknown of ${MIGRATIONS} migrations applied (no database to ask)`,
    ])
    assert.equal(fs.existsSync(path.join(home, 'pg', 'server.json')), false, 'nothing was started or created')

    const json = JSON.parse((await rvx(['version', '--json'], {env: {DATABASE_URL: 'postgres://x:secret@127.0.0.1:1/z'}})).stdout)
    assert.equal(json.postgres.reachable, false)
    assert.equal(json.postgres.version, null)
    assert.match(json.postgres.note, /cannot connect to PostgreSQL at x@127\.0\.0\.1:1\/z/)
    assert.deepEqual(json.schema, {applied: null, latest: MIGRATIONS})
    assert.doesNotMatch(JSON.stringify(json), /secret/)
  })

  it('reports the running embedded server and its schema level', async () => {
    const env = {RVX_HOME: home}
    assert.equal((await rvx(['runs', 'list'], {env})).code, 0)
    const res = await rvx(['version', '--json'], {env})
    assert.equal(res.code, 0, res.stderr)
    const v = JSON.parse(res.stdout)
    assert.equal(v.postgres.database, 'embedded')
    assert.equal(v.postgres.reachable, true)
    assert.match(v.postgres.version, /^18(\.\d+)?/)
    assert.deepEqual(v.schema, {applied: MIGRATIONS, latest: MIGRATIONS})
    assert.equal(hasStackTrace(res.stderr), false)
  })
})
