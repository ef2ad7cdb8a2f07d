import {readFileBounded, ReadLimitError} from '../shared/bounded-read.js'
import type {Env} from '../shared/config.js'
import {UsageError} from '../shared/errors.js'

/** US dollars per million tokens: input, cached input, output. */
export interface Price {
  input: number
  cached: number
  output: number
}

/** The built-in table; RVX_PRICES (a JSON file: model -> {input, cached, output}) adds to it or overrides it. */
const BUILT_IN: Record<string, Price> = {
  'gpt-4.1': {input: 2, cached: 0.5, output: 8},
  'gpt-4.1-mini': {input: 0.4, cached: 0.1, output: 1.6},
  'gpt-4.1-nano': {input: 0.1, cached: 0.025, output: 0.4},
  'gpt-4o': {input: 2.5, cached: 1.25, output: 10},
  'gpt-4o-mini': {input: 0.15, cached: 0.075, output: 0.6},
  'gpt-4o-mini-search-preview': {input: 0.15, cached: 0.15, output: 0.6},
  // The simulated world's model, priced like a small real one so budgets can be tried offline.
  'sim-1': {input: 0.4, cached: 0.1, output: 1.6},
}

/** A price table is a few KB. */
const MAX_PRICES_BYTES = 1024 * 1024

let loaded: {path: string | undefined; table: Record<string, Price>} | undefined

/**
 * The price table from `env`: built-in, plus RVX_PRICES; in force for this process from then on (priceOf, costUsd).
 * A file that cannot be read or is malformed is a usage error.
 */
export function prices(env: Env): Record<string, Price> {
  const path = env.RVX_PRICES?.trim() || undefined
  if (loaded && loaded.path === path) return loaded.table
  let table = {...BUILT_IN}
  if (path) {
    let raw: unknown
    try {
      raw = JSON.parse(readFileBounded(path, {maxBytes: MAX_PRICES_BYTES, timeoutMs: 10_000}).toString('utf8'))
    } catch (error) {
      if (error instanceof ReadLimitError)
        throw new UsageError(`${path} ${error.message}: give a small JSON file of model -> {"input", "cached", "output"}`, {field: 'RVX_PRICES'})
      throw new UsageError(
        `cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}): give a JSON file of model -> {"input", "cached", "output"} USD per million tokens`,
        {field: 'RVX_PRICES'},
      )
    }

    const ok = (p: unknown): p is Price =>
      typeof p === 'object' && p !== null && ['input', 'cached', 'output'].every((k) => typeof (p as never)[k] === 'number' && (p as never)[k] >= 0)
    if (typeof raw !== 'object' || raw === null || !Object.values(raw).every(ok)) {
      throw new UsageError(
        `${path} must map each model to {"input", "cached", "output"} USD per million tokens, e.g. {"my-model": {"input": 1, "cached": 0.5, "output": 2}}`,
        {field: 'RVX_PRICES'},
      )
    }

    table = {...table, ...(raw as Record<string, Price>)}
  }

  loaded = {path, table}
  return table
}

/** A model's price (an exact name, else the longest known prefix: gpt-4.1-mini-2025-04-14 is gpt-4.1-mini); null when unknown. */
export function priceOf(model: string): Price | null {
  const table = loaded?.table ?? BUILT_IN
  if (table[model]) return table[model]
  const prefix = Object.keys(table)
    .filter((k) => model.startsWith(k))
    .sort((a, b) => b.length - a.length)[0]
  return prefix ? table[prefix] : null
}

/** What tokens cost with a model's price; 0 for a model without one (its calls cannot be budgeted). */
export function costUsd(model: string, input: number, cached: number, output: number): number {
  const p = priceOf(model)
  if (!p) return 0
  return ((input - cached) * p.input + cached * p.cached + output * p.output) / 1_000_000
}

/**
 * A budget needs a price for every model a provider is billed for: a usage
 * error naming the first model without one and how to give it a price.
 */
export function requirePrices(models: readonly string[], flag = 'max-usd'): void {
  const missing = models.find((m) => !priceOf(m))
  if (missing) {
    throw new UsageError(
      `needs the price of ${missing}, which rvx does not know: give it in a JSON file (RVX_PRICES=prices.json, {"${missing}": {"input": 1, "cached": 0.5, "output": 2}} in USD per million tokens), or run without a budget`,
      {field: flag},
    )
  }
}
