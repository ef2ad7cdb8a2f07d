/** The model research uses when OPENAI_MODEL is not set. */
export const DEFAULT_OPENAI_MODEL = 'gpt-4.1-mini'

/** The model name simulated calls are recorded under (priced in the built-in table, so budgets can be tried offline). */
export const SIMULATED_MODEL = 'sim-1'
