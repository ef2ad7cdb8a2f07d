import {pino, type Logger} from 'pino'
import pretty from 'pino-pretty'

import type {Env} from '../shared/config.js'
import {scrub} from '../shared/secrets.js'
import type {LogLevel} from './base-command.js'

/** Strings, and the string fields of an object, without secrets. */
function scrubbed(value: unknown): unknown {
  if (typeof value === 'string') return scrub(value)
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, typeof v === 'string' ? scrub(v) : v]))
  }

  return value
}

/**
 * Daemon logs: JSON lines on stderr (for collectors), readable lines when
 * stderr is a terminal. Secrets never reach it: these fields are redacted,
 * and every text logged goes through scrub() (an upstream error may echo a key).
 */
export function createLogger(level: LogLevel, name: string, env: Env): Logger {
  const options = {
    level,
    base: {name, pid: process.pid},
    redact: {paths: ['apiKey', '*.apiKey', 'password', '*.password', 'databaseUrl', '*.databaseUrl', 'headers.authorization'], censor: '[redacted]'},
    hooks: {
      logMethod(this: Logger, args: unknown[], method: (...a: unknown[]) => void) {
        method.apply(this, args.map(scrubbed))
      },
    },
  }
  if (process.stderr.isTTY && !env.CI) {
    return pino(options, pretty({destination: 2, sync: true, colorize: !('NO_COLOR' in env), ignore: 'pid,hostname,name', translateTime: 'HH:MM:ss'}))
  }

  return pino(options, pino.destination({dest: 2, sync: true}))
}
