/** US dollars for people: four decimals below a dollar (model calls are cheap), cents above. */
export function formatCost(usd: number): string {
  return `$${usd.toFixed(usd < 1 ? 4 : 2)}`
}
