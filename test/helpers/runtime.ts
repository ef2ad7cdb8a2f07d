import type {RuntimeConfig} from '../../src/runtime/index.js'

/** Fast timings so runtime tests finish quickly; the semantics are the same as the defaults'. */
export const FAST: Partial<RuntimeConfig> = {
  heartbeatIntervalMs: 300,
  deadAfterMs: 3000,
  sessionGraceMs: 1000,
  leaseMs: 1500,
  sweepIntervalMs: 250,
  pollIntervalMs: 500,
  transientBackoff: {baseMs: 20, maxMs: 80, jitter: 0.25},
  attemptBackoff: {baseMs: 50, maxMs: 200, jitter: 0},
  graceMs: 2000,
}
