/** Process exit codes shared by every rvx command (see README, "Exit codes"). */
export const ExitCode = {
  Ok: 0,
  Failure: 1,
  Usage: 2,
  DatabaseUnavailable: 3,
  Partial: 4,
  Interrupted: 130,
  Terminated: 143,
} as const

export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode]
