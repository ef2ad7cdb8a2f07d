// Mutation testing (`npm run mutate`; not part of `npm test`). Each target is
// a source file and the test files that should kill its mutants; pick some
// with RVX_MUTATE=backoff,auth (default: all). Results: docs/mutation-testing.md.
const TARGETS = {
  backoff: {mutate: ['src/runtime/backoff.ts'], spec: ['test/runtime/snooze.test.ts', 'test/runtime/backoff.test.ts']},
  auth: {mutate: ['src/web/auth.ts'], spec: ['test/web/auth.test.ts', 'test/web/dashboard.test.ts']},
  export: {mutate: ['src/pipeline/export.ts'], spec: ['test/pipeline/export.test.ts', 'test/web/dashboard.test.ts']},
  lease: {mutate: ['src/runtime/lease.ts'], spec: ['test/runtime/claim.test.ts', 'test/runtime/worker.test.ts', 'test/runtime/claim-ahead.test.ts']},
  sweep: {mutate: ['src/runtime/sweep.ts'], spec: ['test/runtime/claim.test.ts', 'test/runtime/crash.test.ts']},
  guard: {mutate: ['src/agents/tools/ssrf.ts'], spec: ['test/agents/fetch-guard.test.ts', 'test/agents/tools.test.ts']},
  spend: {mutate: ['src/pipeline/spend.ts'], spec: ['test/runtime/pacing.test.ts', 'test/pipeline/pipeline.test.ts']},
  cache: {mutate: ['src/pipeline/cache.ts'], spec: ['test/pipeline/cache.test.ts', 'test/pipeline/pipeline.test.ts', 'test/pipeline/stages.test.ts']},
}

const wanted = (process.env.RVX_MUTATE || Object.keys(TARGETS).join(',')).split(',').map((s) => s.trim())
for (const name of wanted) if (!TARGETS[name]) throw new Error(`RVX_MUTATE: no target "${name}" (one of ${Object.keys(TARGETS).join(', ')})`)
const pick = (key) => [...new Set(wanted.flatMap((name) => TARGETS[name][key]))]

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'mocha',
  plugins: ['@stryker-mutator/mocha-runner'],
  mutate: pick('mutate'),
  mochaOptions: {spec: pick('spec'), require: ['test/stryker-hooks.ts']},
  // The tests import TypeScript through tsx, as `npm test` does.
  testRunnerNodeArgs: ['--import', 'tsx'],
  coverageAnalysis: 'perTest',
  // Two shared cores: one runner by default (STRYKER_CONCURRENCY or --concurrency to change).
  concurrency: Number(process.env.STRYKER_CONCURRENCY || 1),
  timeoutMS: 30_000,
  // dist/ stays: tests that spawn bin/run.js need it. They run the unmutated build, so they cover (and kill) no mutant.
  ignorePatterns: ['bench', 'reports', '.stryker-tmp', 'docs'],
  reporters: ['clear-text', 'progress-append-only', 'json'],
  jsonReporter: {fileName: 'reports/mutation/mutation.json'},
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
}
