import {UsageError} from './errors.js'

/** US dollars for people: four decimals below a dollar (model calls are cheap), cents above. */
export function formatCost(usd: number): string {
  return `$${usd.toFixed(usd < 1 ? 4 : 2)}`
}

/** A budget in US dollars from people ("5", "2.50", "$10"): more than 0, at most $1,000,000, else a usage error naming `field`. */
export function parseUsd(text: string, field: string): number {
  const m = /^\s*\$?\s*(\d+(?:\.\d+)?|\.\d+)\s*$/.exec(text)
  const usd = m ? Number(m[1]) : Number.NaN
  if (!(usd > 0 && usd <= 1_000_000))
    throw new UsageError(`must be an amount in US dollars above 0 and at most 1000000, e.g. 5 or 12.50 (got "${text}")`, {field})
  return usd
}
