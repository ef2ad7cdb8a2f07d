import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import {pathToFileURL} from 'node:url'
import type {Command} from '@oclif/core'

import {ROOT} from '../helpers/cli.js'

/** Every command class under src/commands, by its id ("runs:list"). */
async function commands(): Promise<Array<[string, typeof Command]>> {
  const dir = path.join(ROOT, 'src', 'commands')
  const files = fs.readdirSync(dir, {recursive: true, encoding: 'utf8'}).filter((f) => f.endsWith('.ts'))
  return Promise.all(
    files.map(
      async (f) =>
        [f.replace(/\.ts$/, '').replaceAll(path.sep, ':'), (await import(pathToFileURL(path.join(dir, f)).href)).default] as [string, typeof Command],
    ),
  )
}

type FlagDef = {summary?: string; min?: number; max?: number; parse?: (input: string, ctx: unknown, flag: unknown) => Promise<unknown>}

describe('numeric flags', () => {
  it('every whole-number flag of every command has a range, and its help shows it', async () => {
    let checked = 0
    for (const [id, command] of await commands()) {
      for (const [name, flag] of Object.entries({...command.baseFlags, ...command.flags}) as Array<[string, FlagDef]>) {
        // A whole-number flag is one whose parser refuses 1.5 as not an integer.
        const refusal = await Promise.resolve(flag.parse?.('1.5', {}, flag)).then(
          () => undefined,
          (error: Error) => error.message,
        )
        if (!refusal || !/Expected an integer/.test(refusal)) continue
        checked++
        assert.ok(flag.min !== undefined && flag.max !== undefined, `${id} --${name} has a min and a max`)
        assert.match(flag.summary ?? '', new RegExp(`[(;] ?${flag.min}-${flag.max}\\)`), `${id} --${name}: help shows ${flag.min}-${flag.max}`)
      }
    }

    assert.ok(checked >= 10, `found the whole-number flags (${checked})`)
  })
})
