/**
 * The environment, read in one place. A command reads it once, at its boundary (BaseCommand's `env`), and passes it
 * down: each floor turns the variables it needs into typed settings where it is given them (the session limits, the
 * provider's options, prices, pacing ceilings, the mailer, the embedded server's home), with a one-line error that
 * names the variable. Nothing else in src/ reads process.env; tests pass environments of their own.
 */
export type Env = Readonly<Record<string, string | undefined>>

/** The process's environment: call it at a command's (or a process's) start and pass the result down. */
export function readEnvironment(): Env {
  return process.env
}

/** The environment a child process gets: this process's, with `overrides`. */
export function childEnvironment(overrides: Env): NodeJS.ProcessEnv {
  return {...process.env, ...overrides}
}
