import fs from 'node:fs/promises'

import {directoryProblem} from '../shared/directories.js'
import {UsageError} from '../shared/errors.js'

/** --criteria takes JSON text, @file.json, or - for stdin. */
export async function readCriteriaText(value: string, stdin: NodeJS.ReadStream = process.stdin): Promise<string> {
  if (value === '-') {
    const chunks: Buffer[] = []
    for await (const chunk of stdin) chunks.push(Buffer.from(chunk))
    return Buffer.concat(chunks).toString('utf8')
  }

  if (value.startsWith('@')) {
    try {
      return await fs.readFile(value.slice(1), 'utf8')
    } catch (error) {
      throw new UsageError(
        `cannot read criteria file ${value.slice(1)} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}): check the path after @`,
      )
    }
  }

  return value
}

/**
 * --output-dir before anything is created or paid for: the export at the end
 * of a run must have somewhere to go. Creates nothing.
 */
export async function checkOutputDir(dir: string): Promise<void> {
  const problem = await directoryProblem(dir)
  if (problem) throw new UsageError(`${dir} cannot hold the export: ${problem}; pick another directory`, {field: 'output_dir'})
}
