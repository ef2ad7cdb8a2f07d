import {walkHtml} from './html.js'

/** A US postal address found on a page. */
export interface FoundAddress {
  street: string | null
  city: string | null
  /** Two-letter state code. */
  state: string
  postalCode: string | null
  /** The text it was read from (for evidence). */
  quote: string
}

const STATES: Record<string, string> = {
  AL: 'Alabama',
  AK: 'Alaska',
  AZ: 'Arizona',
  AR: 'Arkansas',
  CA: 'California',
  CO: 'Colorado',
  CT: 'Connecticut',
  DE: 'Delaware',
  DC: 'District of Columbia',
  FL: 'Florida',
  GA: 'Georgia',
  HI: 'Hawaii',
  ID: 'Idaho',
  IL: 'Illinois',
  IN: 'Indiana',
  IA: 'Iowa',
  KS: 'Kansas',
  KY: 'Kentucky',
  LA: 'Louisiana',
  ME: 'Maine',
  MD: 'Maryland',
  MA: 'Massachusetts',
  MI: 'Michigan',
  MN: 'Minnesota',
  MS: 'Mississippi',
  MO: 'Missouri',
  MT: 'Montana',
  NE: 'Nebraska',
  NV: 'Nevada',
  NH: 'New Hampshire',
  NJ: 'New Jersey',
  NM: 'New Mexico',
  NY: 'New York',
  NC: 'North Carolina',
  ND: 'North Dakota',
  OH: 'Ohio',
  OK: 'Oklahoma',
  OR: 'Oregon',
  PA: 'Pennsylvania',
  RI: 'Rhode Island',
  SC: 'South Carolina',
  SD: 'South Dakota',
  TN: 'Tennessee',
  TX: 'Texas',
  UT: 'Utah',
  VT: 'Vermont',
  VA: 'Virginia',
  WA: 'Washington',
  WV: 'West Virginia',
  WI: 'Wisconsin',
  WY: 'Wyoming',
  PR: 'Puerto Rico',
}
const BY_NAME = new Map(Object.entries(STATES).map(([code, name]) => [name.toLowerCase(), code]))

/** "TX", "tx" or "Texas" -> "TX"; anything else -> null. */
export function stateCode(text: string | undefined | null): string | null {
  const t = (text ?? '').trim()
  if (/^[A-Za-z]{2}$/.test(t) && STATES[t.toUpperCase()]) return t.toUpperCase()
  return BY_NAME.get(t.toLowerCase()) ?? null
}

/** Bounds on what is read: JSON-LD blocks and their size, objects walked, addresses reported. */
const MAX_LD_BLOCKS = 10
const MAX_LD_CHARS = 100_000
const MAX_NODES = 2000

/**
 * Addresses a page states: schema.org PostalAddress in its JSON-LD first (a
 * company's own markup of its office), then US street addresses in its text
 * ("123 Main St, Austin, TX 78701"): a state code followed by a ZIP, found in
 * one linear scan, with the city and street read back from the text before it.
 */
export function findAddresses(html: string, text: string): FoundAddress[] {
  return [...jsonLdAddresses(html), ...textAddresses(text)]
}

function jsonLdAddresses(html: string): FoundAddress[] {
  const blocks: string[] = []
  let inside = false
  let block = ''
  walkHtml(html, {
    open(name, attributes) {
      inside = name === 'script' && /ld\+json/i.test(attributes.type ?? '') && blocks.length < MAX_LD_BLOCKS
      block = ''
    },
    close(name) {
      if (name === 'script' && inside) blocks.push(block)
      inside = false
    },
    text(t) {
      if (inside && block.length < MAX_LD_CHARS) block += t
    },
  })
  const out: FoundAddress[] = []
  for (const raw of blocks) {
    let data: unknown
    try {
      data = JSON.parse(raw)
    } catch {
      continue
    }

    let nodes = 0
    const walk = (node: unknown): void => {
      if (++nodes > MAX_NODES || node === null || typeof node !== 'object') return
      if (Array.isArray(node)) return node.forEach(walk)
      const o = node as Record<string, unknown>
      const type = [o['@type']].flat().map(String)
      if (type.includes('PostalAddress') || (typeof o.addressRegion === 'string' && typeof o.addressLocality === 'string')) {
        const state = stateCode(String(o.addressRegion ?? ''))
        if (state) {
          out.push({
            street: typeof o.streetAddress === 'string' ? o.streetAddress.slice(0, 200) : null,
            city: typeof o.addressLocality === 'string' ? o.addressLocality.slice(0, 100) : null,
            state,
            postalCode: typeof o.postalCode === 'string' ? o.postalCode.slice(0, 20) : null,
            quote: [o.streetAddress, o.addressLocality, o.addressRegion, o.postalCode]
              .filter((x) => typeof x === 'string')
              .join(', ')
              .slice(0, 200),
          })
        }
      }

      for (const value of Object.values(o)) walk(value)
    }

    walk(data)
  }

  return out
}

function textAddresses(text: string): FoundAddress[] {
  const out: FoundAddress[] = []
  const tail = /,\s*([A-Z]{2})\s+(\d{5})(?:-\d{4})?\b/g
  for (const m of text.slice(0, 500_000).matchAll(tail)) {
    const state = stateCode(m[1])
    if (!state) continue
    // Back to the start of the line: "<street>, <city>" or "<city>" before ", TX 78701".
    const lineStart = text.lastIndexOf('\n', m.index) + 1
    const before = text.slice(Math.max(lineStart, m.index - 120), m.index)
    const parts = before.split(',').map((s) => s.trim())
    const city = /^[A-Za-z][A-Za-z .'-]{1,40}$/.test(parts.at(-1) ?? '') ? parts.at(-1)! : null
    const street = parts.length > 1 && /^\d/.test(parts.at(-2) ?? '') ? parts.at(-2)! : null
    out.push({street, city, state, postalCode: m[2], quote: `${before}${m[0]}`.trim().slice(-200)})
    if (out.length >= 20) break
  }

  return out
}
