import {UsageError} from './errors.js'

/** "90s", "30m", "2h", "500ms", or plain seconds -> milliseconds. `field` names the input in the error. */
export function parseDuration(text: string, field = 'duration'): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/.exec(text.trim())
  if (!m) throw new UsageError(`"${text}" is not a duration: use e.g. 90s, 30m or 2h`, {field})
  const n = Number(m[1])
  const unit = m[2] ?? 's'
  return Math.round(n * {ms: 1, s: 1000, m: 60_000, h: 3_600_000}[unit]!)
}

/** Seconds -> "45s", "12m", "3h 5m": how long something has been so. */
export function formatAge(seconds: number): string {
  const s = Math.max(0, Math.round(seconds))
  if (s < 120) return `${s}s`
  if (s < 7200) return `${Math.round(s / 60)}m`
  const m = Math.round(s / 60)
  return `${Math.floor(m / 60)}h ${m % 60}m`
}
