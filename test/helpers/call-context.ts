import type {CallContext, LlmUsage} from '../../src/pipeline/provider.js'

/**
 * A provider call context outside any run: every call admitted at once (no
 * pacing, no budget), usage handed to `record`. For tests of a provider on its
 * own; runs get theirs from the pipeline (src/pipeline/spend.ts).
 */
export function freeCall(record: (usage: LlmUsage) => void = () => {}, signal: AbortSignal = new AbortController().signal): CallContext {
  return {
    signal,
    record,
    async admit() {
      return {waitedMs: 0, async settle() {}}
    },
  }
}
