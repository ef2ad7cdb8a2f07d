#!/usr/bin/env node
import {execute} from '@oclif/core'

// `rvx --version` is `rvx version`: rvx's, Node's, PostgreSQL's and the schema's versions, not only oclif's one line.
const args = process.argv.slice(2)
if (args[0] === '--version') args[0] = 'version'
await execute({args, dir: import.meta.url})
