import type {Env} from '../shared/config.js'

/**
 * The database an rvx process uses: --database-url / DATABASE_URL when set,
 * else the embedded server (started on first use, shared by every rvx
 * process on the machine).
 */
export async function resolveDatabaseUrl(options: {url?: string; notice?: (message: string) => void; env: Env}): Promise<string> {
  if (options.url) return options.url
  // The embedded server's code only when it is the database: with DATABASE_URL a command never loads it.
  const {EmbeddedServer} = await import('./embedded.js')
  const server = new EmbeddedServer({env: options.env})
  const result = await server.start()
  for (const notice of result.notices) options.notice?.(notice)
  if (result.started) {
    options.notice?.(
      `started the embedded PostgreSQL server on 127.0.0.1:${result.port} (data in ${server.dataDir}); it keeps running for other rvx commands: rvx db stop stops it`,
    )
  }

  return result.url
}

/**
 * A failure to use the embedded server (at connect or later), worded for it:
 * the server log's cause or the file that holds the setting, not DATABASE_URL
 * advice. Other errors are returned as they are.
 */
export async function embeddedFailure(error: unknown, env: Env): Promise<unknown> {
  const {EmbeddedServer} = await import('./embedded.js')
  return new EmbeddedServer({env}).failure(error)
}
