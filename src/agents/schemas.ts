import {z} from 'zod'

/**
 * What the model must return at the end of each research step (validated; one
 * repair turn on failure). Its shape only: the values are normalized by the
 * pipeline (pipeline/normalize.ts), which bounds numbers and counts (a
 * units_estimate of 3000000000 becomes unknown, 10,000 contacts the first 20).
 */

export const DiscoveryOutput = z.object({
  companies: z.array(
    z.object({
      name: z.string().min(1),
      domain: z.string().min(3),
      website: z.string().nullish(),
      city: z.string().nullish(),
      state: z.string().nullish(),
      pms: z.string().nullish(),
      units_estimate: z.number().nullish(),
      sources: z.array(z.string()).default([]),
    }),
  ),
})

/** A page the model read and a short quote from it. */
const Evidence = z.object({url: z.string().max(2000), quote: z.string().max(500)})
const CriterionVerdict = z.object({
  verdict: z.enum(['match', 'mismatch', 'unknown']),
  evidence: z.array(Evidence).max(5).default([]),
})

export const ResearchOutput = z.object({
  verdicts: z
    .object({
      pms: CriterionVerdict.optional(),
      state: CriterionVerdict.optional(),
      city: CriterionVerdict.optional(),
      units: CriterionVerdict.optional(),
      natural_request: CriterionVerdict.optional(),
    })
    .default({}),
  portfolio: z.enum(['residential', 'hoa_only', 'large_multifamily_only', 'brokerage_only', 'no_active_management', 'unknown']).default('unknown'),
  units_estimate: z.number().nullish(),
  employees_estimate: z.number().nullish(),
  confidence: z.enum(['low', 'medium', 'high']),
  reasons: z.array(z.string().max(500)).max(20).default([]),
  sources: z.array(z.string().max(2000)).max(20).default([]),
  pms: z.string().nullish(),
  city: z.string().nullish(),
  state: z.string().nullish(),
})

export const ContactsOutput = z.object({
  contacts: z.array(
    z.object({
      full_name: z.string().min(1),
      title: z.string().min(1),
      tier: z.number().int().min(1).max(4),
      email: z.string().nullish(),
      phone: z.string().nullish(),
      linkedin_url: z.string().nullish(),
      confidence: z.enum(['low', 'medium', 'high']),
      sources: z.array(z.string()).default([]),
    }),
  ),
})
