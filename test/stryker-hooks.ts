/**
 * StrykerJS's mocha runner takes root hooks from `require` but not mocha's
 * global fixtures, and it runs the suites many times in one process: the
 * embedded PostgreSQL of test/setup.ts is started once, before the first
 * run, and stopped when the process exits (setup.ts hooks that).
 */
import {mochaGlobalSetup} from './setup.js'

let started: Promise<void> | undefined

export const mochaHooks = {
  async beforeAll(this: Mocha.Context): Promise<void> {
    this.timeout(120_000)
    started ??= mochaGlobalSetup()
    await started
  },
}
