import os from 'node:os'

/** Tasks in flight per process at most by default, and the --concurrency range. */
export const CONCURRENCY = {min: 1, max: 256, defaultMax: 64}
/** What one stage task in flight needs, generously (a process with 64 in flight stays near 125 MB). */
const BYTES_PER_TASK = 8 * 1024 ** 2

/**
 * Stage tasks wait on the network (the model, web pages), not the CPU, and the
 * fleet's pacing decides the real request rate: so the default is sized from
 * memory (a quarter of what is free, at 8 MB a task), at least 4 and at most 64.
 */
export function defaultConcurrency(freeBytes = os.freemem()): number {
  return Math.max(4, Math.min(CONCURRENCY.defaultMax, Math.floor((freeBytes * 0.25) / BYTES_PER_TASK)))
}
