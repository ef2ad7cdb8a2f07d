import {UsageError} from './errors.js'

/** US dollars for people: four decimals below a dollar (model calls are cheap), cents above. */
export function formatCost(usd: number): string {
  return `$${usd.toFixed(usd < 1 ? 4 : 2)}`
}

/** A run's dollars for people: a simulated run's are labelled so, as nothing was billed. */
export function formatRunCost(usd: number, simulated: boolean): string {
  return simulated ? `${formatCost(usd)} (simulated)` : formatCost(usd)
}

/**
 * The smallest budget: a hundredth of a cent, the smallest amount formatCost
 * shows (a budget below it could not be told from $0.0000 spent) and about
 * the price of the cheapest model call rvx makes.
 */
export const MIN_USD = 0.0001

/** A budget in US dollars from people ("5", "2.50", "$10"): from MIN_USD to $1,000,000, else a usage error naming `field`. */
export function parseUsd(text: string, field: string): number {
  const m = /^\s*\$?\s*(\d+(?:\.\d+)?|\.\d+)\s*$/.exec(text)
  const usd = m ? Number(m[1]) : Number.NaN
  if (!(usd >= MIN_USD && usd <= 1_000_000))
    throw new UsageError(`must be an amount in US dollars from ${MIN_USD} to 1000000, e.g. 5 or 12.50 (got "${text}")`, {field})
  return usd
}
