import {z} from 'zod'

import {UsageError} from '../shared/errors.js'
import {codePoint, UNSAFE_CHARACTERS} from '../shared/text.js'
import {parseDomain} from './domains.js'

export const PMS_VENDORS = [
  'Buildium',
  'AppFolio',
  'Yardi',
  'RealPage',
  'Entrata',
  'ResMan',
  'Rent Manager',
  'Propertyware',
  'DoorLoop',
  'TenantCloud',
  'RentVine',
] as const

/** Free text may keep tabs and line breaks; no criteria value may carry the other unsafe characters (NUL: jsonb cannot store it). */
const LINE_BREAKS = new Set(['\t', '\n', '\r'])

function text(max: number, options: {lineBreaks?: boolean} = {}) {
  return z
    .string()
    .trim()
    .min(1)
    .max(max)
    .superRefine((value, ctx) => {
      const bad = [...value.matchAll(UNSAFE_CHARACTERS)].find((m) => !(options.lineBreaks && LINE_BREAKS.has(m[0])))
      if (bad) {
        ctx.addIssue({
          code: 'custom',
          message: `contains ${codePoint(bad[0])}, a control, direction or invisible character, at position ${bad.index + 1}: remove it`,
        })
        return
      }

      const mixed = mixedScriptWord(value)
      if (mixed)
        ctx.addIssue({code: 'custom', message: `has "${mixed}", a word mixing Latin letters with Cyrillic or Greek look-alikes: type it in one script`})
    })
}

/** A word that mixes Latin letters with Cyrillic or Greek ones (Вuildium with a Cyrillic В): a look-alike, never a real name. */
function mixedScriptWord(value: string): string | undefined {
  return value.match(/\p{L}+/gu)?.find((word) => /\p{Script=Latin}/u.test(word) && /[\p{Script=Cyrillic}\p{Script=Greek}]/u.test(word))
}

/** An entry of exclude_domains: a domain by the one parser (stored as its key). */
const domainText = text(2048).superRefine((value, ctx) => {
  const parsed = parseDomain(value)
  if ('problem' in parsed) ctx.addIssue({code: 'custom', message: `"${value.slice(0, 60)}" ${parsed.problem}: give domains like acme-pm.com`})
})

/** What a run asks for. Unknown keys are errors: a typo must not silently widen a paid search. */
export const CriteriaSchema = z
  .strictObject({
    pms: text(100).optional(),
    state: z
      .string()
      .trim()
      .regex(/^[A-Za-z]{2}$/, 'must be a 2-letter state code, e.g. TX')
      .transform((s) => s.toUpperCase())
      .optional(),
    city: text(100).optional(),
    units_min: z.number().int().min(0).max(1_000_000).optional(),
    units_max: z.number().int().min(0).max(1_000_000).optional(),
    natural_request: text(2000, {lineBreaks: true}).optional(),
    exclude_domains: z.array(domainText).max(10_000).optional(),
  })
  .refine((c) => c.units_min === undefined || c.units_max === undefined || c.units_min <= c.units_max, {
    message: 'units_min must not exceed units_max',
    path: ['units_min'],
  })

export type Criteria = z.infer<typeof CriteriaSchema>

export interface RunSize {
  quantity: number
  contactsMin: number
  contactsMax: number
}

/** Parses criteria JSON text; every problem becomes one line naming the key (a UsageError on the field "criteria"). */
export function parseCriteria(text: string): Criteria {
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (error) {
    throw new UsageError(`is not valid JSON (${(error as Error).message}): pass an object such as '{"pms":"Buildium","state":"TX"}'`, {field: 'criteria'})
  }

  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new UsageError(`must be a JSON object such as '{"pms":"Buildium","state":"TX"}'`, {field: 'criteria'})
  }

  const result = CriteriaSchema.safeParse(raw)
  if (!result.success) throw new UsageError(criteriaProblem(result.error.issues[0]))
  return result.data
}

/** One line for a CriteriaSchema issue, naming the key (path relative to the criteria object): what the CLI and the API both say. */
export function criteriaProblem(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys')
    return `unknown criteria key "${issue.keys[0]}": use pms, state, city, units_min, units_max, natural_request or exclude_domains`
  if (issue.code === 'invalid_type' && issue.path.length === 0) return `must be a JSON object such as '{"pms":"Buildium","state":"TX"}'`
  return `criteria key "${issue.path.join('.') || '(criteria)'}": ${issue.message}`
}

export function validateSize(size: RunSize): RunSize {
  const bad = (field: string, detail: string) => new UsageError(detail, {field})
  if (!Number.isInteger(size.quantity) || size.quantity < 1 || size.quantity > 10_000)
    throw bad('quantity', `must be a whole number from 1 to 10000 (got ${size.quantity})`)
  if (!Number.isInteger(size.contactsMin) || size.contactsMin < 1) throw bad('contacts_min', `must be at least 1 (got ${size.contactsMin})`)
  if (!Number.isInteger(size.contactsMax) || size.contactsMax > 10) throw bad('contacts_max', `must be at most 10 (got ${size.contactsMax})`)
  if (size.contactsMin > size.contactsMax) throw bad('contacts_min', `(${size.contactsMin}) must not exceed contacts_max (${size.contactsMax})`)
  return size
}
