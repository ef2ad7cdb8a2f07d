import type {Env} from '../shared/config.js'
import {createHash} from 'node:crypto'
import type {Kysely} from 'kysely'
import {z} from 'zod'

import {PROVIDERS} from '../agents/index.js'
import {simulationOptions} from '../agents/simulation-options.js'
import {CriteriaSchema, type Criteria, criteriaProblem, validateSize, type RunSize} from '../pipeline/criteria.js'
import {companyKey, parseDomain} from '../pipeline/domains.js'
import type {RunOptions} from '../pipeline/run-options.js'
import {ACCEPTABLE_UNKNOWN, parseAcceptUnknown} from '../pipeline/verification.js'
import {parseDuration} from '../shared/duration.js'
import type {Database, RunRow} from '../db/schema.js'
import {createRun, getRun} from '../pipeline/runs.js'
import {RvxError, UsageError} from '../shared/errors.js'
import {UNSAFE_CHARACTERS} from '../shared/text.js'
import {parseAddress} from './mail.js'

/**
 * A run asked for from elsewhere than `rvx orchestrate`: the HTTP API's
 * POST /runs, and each run a schedule makes. One schema (the OpenAPI
 * document is generated from it) and one parser, whose messages are the
 * CLI's: criteria through CriteriaSchema and criteriaProblem, sizes through
 * validateSize, the rest through the parsers behind the orchestrate flags.
 */
export const RunRequestSchema = z.strictObject({
  provider: z.enum(PROVIDERS).optional().describe('Who does the research. Default: openai when the server has OPENAI_API_KEY.'),
  criteria: CriteriaSchema.describe('What to look for: pms, state, city, units_min, units_max, natural_request, exclude_domains.'),
  quantity: z.number().int().describe('How many qualified companies to deliver (1-10000).'),
  contacts_min: z.number().int().optional().describe('Decision makers required per company (default 1).'),
  contacts_max: z.number().int().optional().describe('Decision makers kept per company (default 3).'),
  accept_unknown: z
    .array(z.string())
    .optional()
    .describe(`Criteria whose "unknown" verdict still qualifies a company: ${ACCEPTABLE_UNKNOWN.join(', ')}.`),
  max_usd: z.number().positive().optional().describe('Budget for model calls in US dollars.'),
  fresh: z.boolean().optional().describe('Research again even what the cache has.'),
  cache_ttl: z.string().optional().describe('Reuse research younger than this, e.g. 7d (default 30d).'),
  include_delivered: z.boolean().optional().describe('Allow companies that earlier completed runs delivered.'),
  exclude: z.array(z.string()).max(10_000).optional().describe('Domains never to deliver.'),
  notify_email: z.string().optional().describe('Mail this address when the run completes or needs a decision (the monitor sends it, with SMTP_URL).'),
})

export type RunRequest = z.input<typeof RunRequestSchema>

/** What createRun takes. */
export interface RunInput {
  criteria: Criteria
  size: RunSize
  provider: string
  options: Partial<RunOptions>
  maxUsd?: number
  excludeDomains?: string[]
}

/** One line for a schema issue, naming the input as the CLI does ("criteria key ...", "quantity must ..."). */
export function requestProblem(issue: z.core.$ZodIssue, prefix: PropertyKey[] = []): UsageError {
  const path = issue.path.slice(prefix.length)
  if (path[0] === 'criteria') {
    const inner = {...issue, path: path.slice(1)} as z.core.$ZodIssue
    const line = criteriaProblem(inner)
    return new UsageError(line.startsWith('must') ? `criteria ${line}` : line)
  }

  if (issue.code === 'unrecognized_keys') return new UsageError(`unknown field "${issue.keys[0]}": see the API's openapi.json for the fields there are`)
  const field = path.map(String).join('.')
  const detail =
    issue.code === 'invalid_value'
      ? `must be one of ${issue.values.map(String).join(', ')}`
      : issue.code === 'invalid_type'
        ? `must be ${issue.expected === 'array' ? 'a list' : issue.expected === 'object' ? 'an object' : `a ${issue.expected}`}`
        : issue.message
  return new UsageError(detail, field ? {field} : {})
}

/** Validates a run request: a UsageError names the first problem. */
export function parseRunRequest(raw: unknown, env: Env): RunInput {
  const parsed = RunRequestSchema.safeParse(raw)
  if (!parsed.success) throw requestProblem(parsed.error.issues[0])
  return runInput(parsed.data, env)
}

/** The request's meaning, checked the way the orchestrate flags are. */
export function runInput(r: z.output<typeof RunRequestSchema>, env: Env): RunInput {
  const provider = r.provider ?? (env.OPENAI_API_KEY ? 'openai' : undefined)
  if (!provider)
    throw new UsageError('no research provider: give "provider": "simulated", or set OPENAI_API_KEY where the server runs to research with OpenAI', {
      field: 'provider',
    })
  const size = validateSize({quantity: r.quantity, contactsMin: r.contacts_min ?? 1, contactsMax: r.contacts_max ?? 3})
  const excludeDomains = r.exclude?.map((entry) => {
    const parsed = parseDomain(entry)
    if ('problem' in parsed) throw new UsageError(`"${entry.slice(0, 60)}" ${parsed.problem}: give domains like acme-pm.com`, {field: 'exclude'})
    return companyKey(parsed.domain)
  })
  return {
    criteria: r.criteria,
    size,
    provider,
    maxUsd: r.max_usd,
    excludeDomains,
    options: {
      ...(provider === 'simulated' ? {simulation: simulationOptions({}, env)} : {}),
      ...(r.notify_email ? {notifyEmail: parseAddress(r.notify_email, 'notify_email')} : {}),
      ...(r.accept_unknown ? {acceptUnknown: parseAcceptUnknown(r.accept_unknown.join(','))} : {}),
      cacheTtlMs: parseDuration(r.cache_ttl ?? '30d', 'cache_ttl', {min: 60_000, max: 365 * 24 * 3600_000}),
      ...(r.fresh ? {fresh: true} : {}),
      ...(r.include_delivered ? {includeDelivered: true} : {}),
    },
  }
}

/**
 * Creates the run of a request that carried an idempotency key (the API's
 * Idempotency-Key): the key is claimed in the transaction that creates the
 * run, so two retries racing each other make one run (the second waits for
 * the first to commit, then finds its run). The same key with another
 * request is refused.
 */
export async function createRunOnce(db: Kysely<Database>, key: {tokenId: number; key: string; request: unknown}, input: RunInput): Promise<RunRow> {
  const {tokenId} = key
  if (key.key.length === 0 || key.key.length > 200 || key.key.match(UNSAFE_CHARACTERS))
    throw new UsageError('must be 1-200 characters on one line, e.g. a UUID', {field: 'Idempotency-Key'})
  const hash = createHash('sha256').update(JSON.stringify(key.request)).digest('hex')
  return db.transaction().execute(async (trx) => {
    const claimed = await trx
      .insertInto('api_idempotency')
      .values({token_id: tokenId, key: key.key, request_hash: hash})
      .onConflict((oc) => oc.doNothing())
      .returning('key')
      .executeTakeFirst()
    if (!claimed) {
      const earlier = await trx
        .selectFrom('api_idempotency')
        .select(['request_hash', 'run_id'])
        .where('token_id', '=', tokenId)
        .where('key', '=', key.key)
        .executeTakeFirstOrThrow()
      if (earlier.request_hash !== hash || earlier.run_id === null)
        throw new RvxError(`Idempotency-Key ${key.key} was used before with a different request: use a new key for a new run`, {code: 'idempotency_mismatch'})
      return getRun(trx, earlier.run_id)
    }

    const run = await createRun(trx, input)
    await trx.updateTable('api_idempotency').set({run_id: run.id}).where('token_id', '=', tokenId).where('key', '=', key.key).execute()
    return run
  })
}
