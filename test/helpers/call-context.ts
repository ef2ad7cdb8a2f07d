import type {CallContext, LlmUsage} from '../../src/pipeline/provider.js'

/**
 * A provider call context outside any run: every call admitted at once (no
 * pacing, no budget), each call's usage handed to `record` when it settles. For
 * tests of a provider on its own; runs get theirs from the pipeline
 * (src/pipeline/spend.ts).
 */
export function freeCall(record: (usage: LlmUsage) => void = () => {}, signal: AbortSignal = new AbortController().signal): CallContext {
  return {
    signal,
    async admit() {
      return {
        waitedMs: 0,
        async settle({usage}) {
          record(usage)
        },
      }
    },
  }
}
