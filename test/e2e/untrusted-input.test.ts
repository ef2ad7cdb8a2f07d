import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {sql} from 'kysely'

import {type CliOptions, type CliResult, hasStackTrace, lines, rvx, spawnRvx} from '../helpers/cli.js'
import {useFreshDatabase} from '../helpers/db.js'

/**
 * What people hand rvx on its command line and in its files, as an attacker
 * or a careless user would: endless inputs (a pipe, /dev/zero, a sparse file,
 * a FIFO), invisible and look-alike characters, entries that are not
 * domains, a model name no table can show, a mail address with a line
 * break. Each is refused in one line naming the input (exit 2), or kept for
 * what it is (a byte-order mark, a Unicode domain).
 */
describe('e2e: untrusted input on the command line', function () {
  this.timeout(120_000)
  const t = useFreshDatabase()
  let scratch: string

  before(() => {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-untrusted-input-'))
  })

  after(() => fs.rmSync(scratch, {recursive: true, force: true}))

  const env = (extra: NodeJS.ProcessEnv = {}) => ({DATABASE_URL: t.url, OPENAI_API_KEY: '', ...extra})
  const runCount = async () => (await sql<{n: number}>`select count(*)::int as n from runs`.execute(t.db)).rows[0].n
  const orchestrate = (...args: string[]) => ['orchestrate', '--provider', 'simulated', '--quantity', '1', ...args]

  /** Exit 2, one line on stderr matching `pattern`, no stack trace, no run created. */
  async function refused(args: string[], pattern: RegExp, options: CliOptions = {}): Promise<CliResult> {
    const runs = await runCount()
    const result = await rvx(args, {timeoutMs: 60_000, ...options, env: env(options.env)})
    const what = `rvx ${args.join(' ').slice(0, 200)}`
    assert.equal(result.code, 2, `${what}: exit code\n${result.stderr}`)
    assert.equal(hasStackTrace(result.stderr), false, `${what}: stack trace\n${result.stderr}`)
    assert.equal(lines(result.stderr).length, 1, `${what}: one line on stderr\n${result.stderr.slice(0, 2000)}`)
    assert.match(result.stderr, pattern, what)
    assert.equal(await runCount(), runs, `${what}: no run created`)
    return result
  }

  describe('reads are bounded whatever the file is', () => {
    it('--criteria @/dev/zero and --exclude @/dev/zero: refused at their byte limit', async () => {
      await refused(orchestrate('--criteria', '@/dev/zero'), /^Error: --criteria \/dev\/zero is longer than the limit of 8 MB/)
      await refused(orchestrate('--criteria', '{}', '--exclude', '@/dev/zero'), /^Error: --exclude \/dev\/zero is longer than the limit of 64 MB/)
    })

    it('RVX_PRICES naming a 1 GB sparse file: refused by its size, before it is read', async () => {
      const sparse = path.join(scratch, 'prices.json')
      fs.writeFileSync(sparse, '')
      fs.truncateSync(sparse, 1024 ** 3)
      await refused(orchestrate('--criteria', '{}', '--max-usd', '1'), /RVX_PRICES .*prices\.json is 1024 MB, over the limit of 1 MB/, {
        env: {RVX_PRICES: sparse},
      })
    })

    it('RVX_PRICES naming a FIFO: with no writer it reads as empty; with a writer that sends nothing it is given up', async () => {
      const fifo = path.join(scratch, 'prices.fifo')
      execFileSync('mkfifo', [fifo])
      await refused(orchestrate('--criteria', '{}', '--max-usd', '1'), /RVX_PRICES cannot read .*prices\.fifo \(Unexpected end of JSON input\)/, {
        env: {RVX_PRICES: fifo},
      })
      // Read-write: a writer that never writes (and opening it does not wait for a reader).
      const writer = fs.openSync(fifo, 'r+')
      try {
        await refused(orchestrate('--criteria', '{}', '--max-usd', '1'), /RVX_PRICES .*prices\.fifo did not finish within 10 s/, {env: {RVX_PRICES: fifo}})
      } finally {
        fs.closeSync(writer)
      }
    })

    it('--criteria - fed without end: refused at the limit, not read on and on', async () => {
      const child = spawnRvx(orchestrate('--criteria', '-'), {env: env()})
      let stderr = ''
      let written = 0
      child.stderr!.on('data', (d) => (stderr += d))
      child.stdin!.on('error', () => {})
      const chunk = Buffer.alloc(1024 * 1024, '{')
      const pump = () => {
        while (child.exitCode === null && !child.stdin!.destroyed && written < 1024 ** 3) {
          written += chunk.length
          if (!child.stdin!.write(chunk)) return void child.stdin!.once('drain', pump)
        }
      }

      pump()
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
      assert.equal(code, 2, stderr)
      assert.match(stderr, /--criteria from standard input is longer than the limit of 8 MB/)
      assert.ok(written < 100 * 1024 * 1024, `${written} bytes written before it stopped reading`)
    })
  })

  describe('criteria', () => {
    it('a criteria file that starts with a UTF-8 byte-order mark works', async () => {
      const file = path.join(scratch, 'bom.json')
      fs.writeFileSync(file, '\uFEFF{"state":"TX"}')
      const res = await rvx(orchestrate('--criteria', `@${file}`, '--detach'), {env: env()})
      assert.equal(res.code, 0, res.stderr)
      const run = await t.db.selectFrom('runs').select('criteria').orderBy('id', 'desc').executeTakeFirstOrThrow()
      assert.deepEqual(run.criteria, {state: 'TX'})
    })

    it('a zero-width space or a Cyrillic look-alike in a value is refused in one line', async () => {
      await refused(orchestrate('--criteria', '{"pms":"Build\u200Bium"}'), /criteria key "pms": contains U\+200B/)
      await refused(
        orchestrate('--criteria', '{"pms":"\u0412uildium"}'),
        /criteria key "pms": has "\u0412uildium", a word mixing Latin letters with Cyrillic or Greek/,
      )
    })

    it('exclude_domains entries that are not domains are refused, naming the entry', async () => {
      await refused(
        orchestrate('--criteria', '{"exclude_domains":["acme.example","user@evil.example"]}'),
        /criteria key "exclude_domains.1": "user@evil.example" has a user name/,
      )
    })
  })

  describe('--exclude', () => {
    it('a list with no domain in it is refused, not a run with 0 exclusions', async () => {
      await refused(orchestrate('--criteria', '{}', '--exclude', 'not a domain,,,;;'), /--exclude has no domain in it \("not a domain" has spaces in it\)/)
    })

    it('a CRM export keeps its Unicode and URL rows, and says what it skipped', async () => {
      const crm = path.join(scratch, 'crm.csv')
      fs.writeFileSync(crm, 'Name,Domain\nBücher,bücher.de\nAcme,https://www.acme.example/about\nBad,<script>.example\n')
      const res = await rvx(orchestrate('--criteria', '{}', '--exclude', `@${crm}`, '--detach'), {env: env()})
      assert.equal(res.code, 0, res.stderr)
      assert.match(res.stderr, /--exclude: keeping out 2 domains; skipped 1 entry that is not domains \("<script>.example" is not a domain name/)
      const runId = (await t.db.selectFrom('runs').select('id').orderBy('id', 'desc').executeTakeFirstOrThrow()).id
      const kept = await t.db.selectFrom('run_exclusions').select('domain').where('run_id', '=', runId).orderBy('domain').execute()
      assert.deepEqual(
        kept.map((r) => r.domain),
        ['acme.example', 'xn--bcher-kva.de'],
      )
    })
  })

  describe('rvx inspect targets', () => {
    it('an ftp: URL and a 10,000-character host are refused', async () => {
      await refused(
        ['inspect', 'ftp://acme.example/'],
        /^Error: target "ftp:\/\/acme.example\/" is a URL with scheme ftp: \(only http and https sites are researched\)/,
      )
      await refused(['inspect', `${'a'.repeat(10_000)}.example`], /is 10008 characters long \(a domain has at most 253\)/)
    })
  })

  describe('names and addresses', () => {
    it('limits set --model with an empty or a 100,000-character name is refused', async () => {
      await refused(['limits', 'set', '--model', '', '--rpm', '10'], /--model is empty: give a model name like gpt-4.1-mini/)
      const res = await refused(['limits', 'set', '--model', 'm'.repeat(100_000), '--rpm', '10'], /--model is 100000 characters long \(at most 200\)/)
      assert.ok(res.stderr.length < 500)
      assert.equal((await sql<{n: number}>`select count(*)::int as n from rate_limits`.execute(t.db)).rows[0].n, 0)
    })

    it('--notify-email with a line break in it is refused, and the line break is not echoed', async () => {
      const res = await refused(
        orchestrate('--criteria', '{}', '--notify-email', 'ops@example.com\r\nBcc: all@evil.example'),
        /--notify-email contains U\+000D/,
      )
      assert.ok(!res.stderr.includes('\r'))
    })
  })
})
