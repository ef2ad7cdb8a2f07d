import {Flags} from '@oclif/core'

import {endpointName, quotaKey} from '../../agents/quota.js'
import {checkModelName} from '../../agents/models.js'
import {BaseCommand} from '../../cli/base-command.js'
import {ranged} from '../../cli/flags.js'
import {setRateLimit} from '../../runtime/pacing.js'
import {UsageError} from '../../shared/errors.js'

export default class LimitsSet extends BaseCommand<typeof LimitsSet> {
  static override summary = "Set a model's quota for the whole fleet: requests and tokens per minute."
  static override description = `Use your key's limits from the provider's dashboard; rvx then never sends more than that, shared across every worker. Without a ceiling, rvx learns one from the provider's rate-limit headers or from 429s. --clear removes the configured ceilings.`
  static override examples = [
    '<%= config.bin %> limits set --model gpt-4.1-mini --rpm 500 --tpm 200000',
    '<%= config.bin %> limits set --model my-model --endpoint http://127.0.0.1:8000/v1 --rpm 60',
    '<%= config.bin %> limits set --model gpt-4.1-mini --clear',
  ]
  static override enableJsonFlag = true
  static override flags = {
    model: Flags.string({summary: 'The model, as OPENAI_MODEL names it.', required: true}),
    endpoint: Flags.string({summary: 'The OpenAI-compatible endpoint (default: OPENAI_BASE_URL, else https://api.openai.com/v1).'}),
    rpm: Flags.integer(ranged({summary: 'Requests per minute.', min: 1, max: 1_000_000})),
    tpm: Flags.integer(ranged({summary: 'Tokens per minute.', min: 100, max: 1_000_000_000})),
    clear: Flags.boolean({summary: 'Remove the configured ceilings (rvx learns them again).', exclusive: ['rpm', 'tpm']}),
  }

  async run(): Promise<{key: string; rpm: number | null; tpm: number | null}> {
    const {flags} = this
    if (!flags.clear && flags.rpm === undefined && flags.tpm === undefined) {
      throw new UsageError('needs --rpm, --tpm or both (or --clear to remove the ceilings)', {field: 'limits'})
    }

    const endpoint = flags.endpoint ?? this.env.OPENAI_BASE_URL
    if (endpoint !== undefined && endpointName(endpoint) === 'a custom endpoint') {
      throw new UsageError(`"${endpoint}" is not a URL: give the endpoint like http://127.0.0.1:8000/v1`, {field: 'endpoint'})
    }

    const key = quotaKey(checkModelName(flags.model, 'model'), endpoint || undefined)
    const ceilings = {rpm: flags.rpm ?? null, tpm: flags.tpm ?? null}
    await setRateLimit(await this.database({schema: true}), key, ceilings)
    this.info(
      flags.clear
        ? `${key}: no configured ceilings; rvx learns them from the provider`
        : `${key}: at most ${ceilings.rpm ?? 'unlimited'} requests and ${ceilings.tpm ?? 'unlimited'} tokens per minute, for the whole fleet`,
    )
    return {key, ...ceilings}
  }
}
