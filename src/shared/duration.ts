import {UsageError} from './errors.js'

const UNIT_MS = {ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000} as const

/**
 * The longest a timer may wait: Node's setTimeout fires at once past
 * 2^31-1 ms (about 24.8 days), so a longer interval would spin.
 */
export const MAX_TIMER_MS = 24 * UNIT_MS.d

/**
 * "90s", "30m", "2h", "7d", "500ms", or plain seconds -> milliseconds, from
 * `min` to `max` (default: 0 to MAX_TIMER_MS). `field` names the input in the error.
 */
export function parseDuration(text: string, field = 'duration', bounds: {min?: number; max?: number} = {}): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(text.trim())
  if (!m) throw new UsageError(`"${text}" is not a duration: use e.g. 90s, 30m or 2h`, {field})
  const ms = Math.round(Number(m[1]) * UNIT_MS[(m[2] ?? 's') as keyof typeof UNIT_MS])
  const {min = 0, max = MAX_TIMER_MS} = bounds
  if (ms < min) throw new UsageError(`must be at least ${formatDuration(min)} (got ${text})`, {field})
  if (ms > max) throw new UsageError(`must be at most ${formatDuration(max)} (got ${text})`, {field})
  return ms
}

/** Milliseconds -> the shortest exact form parseDuration reads back: "500ms", "90s", "24d". */
export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    if (ms >= UNIT_MS[unit] && ms % UNIT_MS[unit] === 0) return `${ms / UNIT_MS[unit]}${unit}`
  }

  return `${ms}ms`
}

/** Seconds -> "45s", "4m 55s", "3h 5m", "2d 4h": how long something has been so, to its two largest units. */
export function formatAge(seconds: number): string {
  const s = Math.max(0, Math.round(seconds))
  const [big, small, bigUnit, smallUnit] =
    s < 3600
      ? [Math.floor(s / 60), s % 60, 'm', 's']
      : s < 86_400
        ? [Math.floor(s / 3600), Math.floor(s / 60) % 60, 'h', 'm']
        : [Math.floor(s / 86_400), Math.floor(s / 3600) % 24, 'd', 'h']
  if (s < 60) return `${s}s`
  return small === 0 ? `${big}${bigUnit}` : `${big}${bigUnit} ${small}${smallUnit}`
}
