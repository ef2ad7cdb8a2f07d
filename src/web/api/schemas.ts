import {z} from '@hono/zod-openapi'

import {RUN_STATUSES} from '../../pipeline/run-listing.js'
import {WEBHOOK_EVENTS} from '../../monitor/webhooks.js'

/** The shapes the API answers with, for the OpenAPI document (request bodies use the CLI's own schemas). */

export const ProblemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string().describe("What went wrong and what to do: the CLI's wording."),
    code: z.string().describe("The CLI's error code (usage, run_not_found, run_state, ...)."),
    instance: z.string().optional(),
  })
  .openapi('Problem')

export const IdParam = z.object({
  id: z
    .string()
    .regex(/^[0-9]{1,15}$/)
    .openapi({param: {name: 'id', in: 'path'}, example: '12'}),
})

export const PageQuery = z.object({
  limit: z
    .string()
    .regex(/^[0-9]{1,3}$/)
    .optional()
    .describe('Items per page (1-100, default 50).'),
  cursor: z
    .string()
    .regex(/^[0-9]{1,15}$/)
    .optional()
    .describe('next_cursor of the previous page.'),
})

const counts = z.record(z.string(), z.unknown())

export const RunSchema = z
  .looseObject({
    id: z.number().int(),
    status: z.enum(RUN_STATUSES as [string, ...string[]]),
    stage: z.string(),
    quantity: z.number().int(),
    criteria: z.record(z.string(), z.unknown()),
    provider: z.string(),
    notes: z.string().nullable(),
    createdAt: z.string(),
    finishedAt: z.string().nullable(),
    companies: counts,
    contacts: z.number().int(),
    usage: counts.optional(),
    maxUsd: z.number().nullable().optional(),
  })
  .describe('The run: what rvx runs show --json gives.')
  .openapi('Run')

export const RunPageSchema = z.object({runs: z.array(RunSchema), next_cursor: z.string().nullable()}).openapi('RunPage')

const Verdict = z.object({
  key: z.string(),
  verdict: z.enum(['match', 'mismatch', 'unknown']),
  by: z.enum(['check', 'model']),
  evidence: z.array(z.object({url: z.string(), quote: z.string()})),
  note: z.string().nullable(),
})

export const CompanySchema = z
  .looseObject({
    id: z.number().int(),
    name: z.string(),
    domain: z.string(),
    website: z.string().nullable(),
    status: z.enum(['candidate', 'qualified', 'disqualified', 'selected']),
    icpScore: z.number().nullable(),
    reasons: z.array(z.string()),
    sources: z.array(z.string()),
    verdicts: z.array(Verdict),
    disqualifiedBy: z.array(z.string()),
  })
  .openapi('Company')

export const CompanyPageSchema = z.object({companies: z.array(CompanySchema), next_cursor: z.string().nullable()}).openapi('CompanyPage')

export const ContactSchema = z
  .looseObject({
    id: z.number().int(),
    companyId: z.number().int(),
    fullName: z.string(),
    title: z.string().nullable(),
    email: z.string().nullable(),
    sources: z.array(z.string()),
  })
  .openapi('Contact')

export const ContactPageSchema = z.object({contacts: z.array(ContactSchema), next_cursor: z.string().nullable()}).openapi('ContactPage')

export const FleetSchema = z
  .looseObject({at: z.string(), fleet: z.array(z.unknown()), workers: z.array(z.unknown()), queue: z.array(z.unknown()), runs: z.array(z.unknown())})
  .describe('What rvx workers status --json gives.')
  .openapi('Fleet')

export const WebhookSchema = z.object({id: z.number().int(), url: z.string(), events: z.array(z.string()), createdAt: z.string()}).openapi('Webhook')

export const NewWebhookSchema = z
  .object({
    url: z.string().describe('Where to POST events: a public http(s) address.'),
    events: z.array(z.enum(WEBHOOK_EVENTS)).describe(`Any of ${WEBHOOK_EVENTS.join(', ')}.`),
  })
  .openapi('NewWebhook')

export const CreatedWebhookSchema = WebhookSchema.extend({
  secret: z.string().describe('The signing secret (Standard Webhooks whsec_...): shown this once.'),
}).openapi('CreatedWebhook')

export const DeliverySchema = z
  .object({
    id: z.number().int(),
    webhookId: z.number().int(),
    eventId: z.number().int(),
    type: z.string(),
    runId: z.number().int().nullable(),
    status: z.enum(['pending', 'delivered', 'failed']),
    attempts: z.number().int(),
    lastStatus: z.number().int().nullable(),
    lastError: z.string().nullable(),
    nextAttemptAt: z.string().nullable(),
    deliveredAt: z.string().nullable(),
    createdAt: z.string(),
  })
  .openapi('Delivery')

export const DeliveryParams = z.object({
  id: IdParam.shape.id,
  deliveryId: z
    .string()
    .regex(/^[0-9]{1,15}$/)
    .openapi({param: {name: 'deliveryId', in: 'path'}, example: '3'}),
})

export const ScheduleSchema = z
  .object({
    id: z.number().int(),
    name: z.string().nullable(),
    cron: z.string(),
    tz: z.string(),
    criteria: z.unknown(),
    quantity: z.number().int(),
    provider: z.string(),
    maxUsd: z.number().nullable(),
    paused: z.boolean(),
    createdAt: z.string(),
    nextAt: z.string().nullable(),
    last: z.object({slot: z.string(), runId: z.number().int().nullable(), skipped: z.string().nullable()}).nullable(),
  })
  .openapi('Schedule')
