/**
 * SIGINT and SIGTERM while `main` runs: every signal goes to `onSignal` with
 * how many have come so far (a first one drains, a second forces), and the
 * handlers are gone when `main` settles. Resolves with main's result and the
 * first signal, if any (the command turns it into exit 130 or 143).
 */
export async function withSignals<R>(
  onSignal: (signal: NodeJS.Signals, count: number) => void,
  main: () => Promise<R>,
): Promise<{result: R; signal?: NodeJS.Signals}> {
  let first: NodeJS.Signals | undefined
  let count = 0
  const handler = (signal: NodeJS.Signals) => {
    first ??= signal
    onSignal(signal, ++count)
  }

  process.on('SIGTERM', handler)
  process.on('SIGINT', handler)
  try {
    const result = await main()
    return {result, signal: first}
  } finally {
    process.off('SIGTERM', handler)
    process.off('SIGINT', handler)
  }
}
