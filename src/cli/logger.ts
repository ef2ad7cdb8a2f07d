import {pino, type Logger} from 'pino'
import pretty from 'pino-pretty'

import type {LogLevel} from './base-command.js'

/**
 * Daemon logs: JSON lines on stderr (for collectors), readable lines when
 * stderr is a terminal. Secrets never reach it: nothing logs URLs with
 * passwords or API keys, and these paths are redacted besides.
 */
export function createLogger(level: LogLevel, name: string): Logger {
  const options = {
    level,
    base: {name, pid: process.pid},
    redact: {paths: ['apiKey', '*.apiKey', 'password', '*.password', 'databaseUrl', '*.databaseUrl', 'headers.authorization'], censor: '[redacted]'},
  }
  if (process.stderr.isTTY && !process.env.CI) {
    return pino(options, pretty({destination: 2, sync: true, colorize: !('NO_COLOR' in process.env), ignore: 'pid,hostname,name', translateTime: 'HH:MM:ss'}))
  }

  return pino(options, pino.destination({dest: 2, sync: true}))
}
