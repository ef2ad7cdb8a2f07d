import {UsageError} from '../shared/errors.js'

/** The model research uses when OPENAI_MODEL is not set. */
export const DEFAULT_OPENAI_MODEL = 'gpt-4.1-mini'

/** The model name simulated calls are recorded under (priced in the built-in table, so budgets can be tried offline). */
export const SIMULATED_MODEL = 'sim-1'

/** Model names as providers spell them: gpt-4.1-mini, meta-llama/Llama-3-70b, azure/gpt-4o:2024-08 (letters, digits and . _ - : / @ +). */
const MODEL_NAME = /^[\w.:/@+-]{1,200}$/

/** A model name, or a usage error naming where it came from (a flag or OPENAI_MODEL) and what a name looks like. */
export function checkModelName(name: string, field: string): string {
  if (MODEL_NAME.test(name)) return name
  const problem = name.length === 0 ? 'is empty' : name.length > 200 ? `is ${name.length} characters long (at most 200)` : 'has characters no model name has'
  throw new UsageError(`${problem}: give a model name like gpt-4.1-mini`, {field})
}
