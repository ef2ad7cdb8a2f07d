/**
 * A whole-number flag's options with its range in the help ("(1-64)"), from
 * the same min and max that oclif enforces, so the two never disagree:
 * `Flags.integer(ranged({summary: 'In-process workers per stage.', min: 1, max: 64}))`.
 */
export function ranged<const T extends {summary: string; min: number; max: number}>(options: T): T {
  return {...options, summary: `${options.summary.replace(/\.$/, '')} (${options.min}-${options.max}).`}
}

/** Whether `--name` is on the command line itself (not from its env var or default). */
export function onCommandLine(argv: string[], name: string): boolean {
  return argv.some((a) => a === `--${name}` || a.startsWith(`--${name}=`))
}
