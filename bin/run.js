#!/usr/bin/env node
// @oclif/core checks when it loads that Node satisfies its own engines (>= 18), loading all of semver to do it, on
// every command; rvx's own engines (Node >= 20.19) are stricter, so that check is skipped (for this load only).
const engineCheck = !('OCLIF_DISABLE_ENGINE_WARNING' in process.env)
if (engineCheck) process.env.OCLIF_DISABLE_ENGINE_WARNING = 'true'
const {execute} = await import('@oclif/core')
if (engineCheck) delete process.env.OCLIF_DISABLE_ENGINE_WARNING

// `rvx --version` is `rvx version`: rvx's, Node's, PostgreSQL's and the schema's versions, not only oclif's one line.
const args = process.argv.slice(2)
if (args[0] === '--version') args[0] = 'version'
await execute({args, dir: import.meta.url})
