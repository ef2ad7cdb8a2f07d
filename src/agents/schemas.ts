import {z} from 'zod'

/** What the model must return at the end of each research step (validated; one repair turn on failure). */

export const DiscoveryOutput = z.object({
  companies: z
    .array(
      z.object({
        name: z.string().min(1),
        domain: z.string().min(3),
        website: z.string().nullish(),
        city: z.string().nullish(),
        state: z.string().nullish(),
        pms: z.string().nullish(),
        units_estimate: z.number().int().nonnegative().nullish(),
        sources: z.array(z.string()).default([]),
      }),
    )
    .max(200),
})

export const ResearchOutput = z.object({
  fit: z.enum(['yes', 'no', 'unknown']),
  score: z.number().min(0).max(100),
  tier: z.enum(['low', 'medium', 'high', 'enterprise', 'unknown']),
  confidence: z.enum(['low', 'medium', 'high']),
  reasons: z.array(z.string()).min(1),
  sources: z.array(z.string()).default([]),
  pms: z.string().nullish(),
  units_estimate: z.number().int().nonnegative().nullish(),
  city: z.string().nullish(),
  state: z.string().nullish(),
})

export const ContactsOutput = z.object({
  contacts: z
    .array(
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
    )
    .max(20),
})
