// Lint: the recommended JavaScript and TypeScript rules, Prettier for layout, and the floors of
// docs/architecture.md section 2: a file imports only its own floor or lower ones (shared is the lowest).
import js from '@eslint/js'
import prettier from 'eslint-config-prettier'
import globals from 'globals'
import tseslint from 'typescript-eslint'

const FLOORS = ['shared', 'db', 'runtime', 'pipeline', 'agents', 'monitor', 'web', 'cli', 'commands']

/** kysely's values come through src/db/kysely.ts, which the build turns into a single-file bundle (start-up time); its types may come from 'kysely'. */
const KYSELY = {
  name: 'kysely',
  allowTypeImports: true,
  message: "import kysely's values from src/db/kysely.js (the build bundles it into one module, for start-up time); `import type` from 'kysely' is fine.",
}

/** For each floor, every floor above it is off limits. */
const layering = FLOORS.map((floor, i) => ({
  files: [`src/${floor}/**/*.ts`],
  ignores: ['src/db/kysely.ts'],
  rules: {
    '@typescript-eslint/no-restricted-imports': [
      'error',
      {
        paths: [KYSELY],
        patterns: FLOORS.slice(i + 1).map((above) => ({
          group: [`**/${above}/*`, `**/${above}/**`],
          message: `src/${floor} is below src/${above}: a file imports only its own floor or lower ones (see README, "Architecture").`,
        })),
      },
    ],
  },
}))

export default tseslint.config(
  {ignores: ['dist/', 'node_modules/', 'exports/', 'bench/out/', '.rvx-test/', '.bench-home/', '.stryker-tmp/', 'reports/']},
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {globals: {...globals.node}},
    rules: {
      // `any` is confined to a few generic plumbing types (stage table, JSON rows); say why where it appears.
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['error', {argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none'}],
      'no-constant-condition': ['error', {checkLoops: false}],
    },
  },
  {files: ['test/**/*.ts'], languageOptions: {globals: {...globals.mocha}}},
  // The dashboard's one browser script (served as a file, no build step).
  {files: ['src/web/assets/**/*.js'], languageOptions: {sourceType: 'script', globals: {...globals.browser}}},
  {files: ['**/*.cjs'], languageOptions: {sourceType: 'commonjs'}, rules: {'@typescript-eslint/no-require-imports': 'off'}},
  ...layering,
  {files: ['migrations/**/*.ts'], rules: {'@typescript-eslint/no-restricted-imports': ['error', {paths: [KYSELY]}]}},
  prettier,
)
