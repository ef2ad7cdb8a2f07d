/**
 * Durations in milliseconds, kept as counts in buckets 5% wide (from 0.1 ms): workers' histograms add up exactly,
 * and a percentile read from them is at most 5% above the true one.
 */
export class Histogram {
  private static readonly BASE = 0.1
  private static readonly GROWTH = 1.05
  readonly counts = new Map<number, number>()
  total = 0

  static fromJSON(json: Record<string, number>): Histogram {
    const h = new Histogram()
    for (const [bucket, n] of Object.entries(json)) h.addBucket(Number(bucket), n)
    return h
  }

  add(ms: number): void {
    const bucket = ms <= Histogram.BASE ? 0 : Math.ceil(Math.log(ms / Histogram.BASE) / Math.log(Histogram.GROWTH))
    this.addBucket(bucket, 1)
  }

  merge(other: Histogram): void {
    for (const [bucket, n] of other.counts) this.addBucket(bucket, n)
  }

  /** The upper bound of the bucket that holds the p-th percentile (NaN when empty). */
  percentile(p: number): number {
    if (this.total === 0) return Number.NaN
    const want = Math.ceil((p / 100) * this.total)
    let seen = 0
    for (const bucket of [...this.counts.keys()].sort((a, b) => a - b)) {
      seen += this.counts.get(bucket)!
      if (seen >= want) return Histogram.BASE * Histogram.GROWTH ** bucket
    }

    return Number.NaN
  }

  toJSON(): Record<string, number> {
    return Object.fromEntries(this.counts)
  }

  private addBucket(bucket: number, n: number): void {
    this.counts.set(bucket, (this.counts.get(bucket) ?? 0) + n)
    this.total += n
  }
}
