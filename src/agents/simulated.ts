import {UsageError} from '../shared/errors.js'
import type {Criteria} from '../pipeline/criteria.js'
import {PMS_VENDORS} from '../pipeline/criteria.js'
import {SnoozeError, TransientError} from '../runtime/errors.js'
import {sleep} from '../runtime/backoff.js'
import type {CallContext, CandidateCompany, CompanyResearch, FoundContact, ResearchProvider} from '../pipeline/provider.js'

/** The model name simulated calls are recorded under. */
export const SIMULATED_MODEL = 'sim-1'

/**
 * An offline, deterministic world of property-management companies, for
 * demos, load and chaos tests. For a given seed and criteria the same
 * companies exist, with the same facts and contacts; the supply is finite, so
 * shortfalls happen. Everything it makes is marked simulated and lives under
 * the reserved .example domain. Latency and faults are injected on request.
 */

export interface SimulationOptions {
  seed: number
  latencyMs: [number, number]
  faults: {transient: number; rate_limit: number; malformed: number; crash: number}
  /** Companies in the world for any criteria (default: 40-119, fixed per criteria). */
  supply?: number
}

export const DEFAULT_SIMULATION: SimulationOptions = {seed: 1, latencyMs: [0, 0], faults: {transient: 0, rate_limit: 0, malformed: 0, crash: 0}}

/** "50ms-500ms", "200ms", "1s-2s" -> [min, max] in ms. */
export function parseLatency(text: string): [number, number] {
  const unit = (s: string) => {
    const m = /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(s.trim())
    if (!m) throw new UsageError(`"${text}" is not a duration range: use e.g. 50ms-500ms`, {field: 'sim_latency'})
    return Math.round(Number(m[1]) * (m[2] === 's' ? 1000 : 1))
  }

  const [a, b] = text.split('-')
  const min = unit(a)
  const max = b === undefined ? min : unit(b)
  if (max < min) throw new UsageError(`"${text}": the maximum is below the minimum`, {field: 'sim_latency'})
  return [min, max]
}

/** "transient=0.1,rate_limit=0.05,malformed=0.02,crash=0.001" -> rates. */
export function parseFaults(text: string): SimulationOptions['faults'] {
  const faults = {...DEFAULT_SIMULATION.faults}
  for (const part of text
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const [key, value] = part.split('=')
    const rate = Number(value)
    if (!(key in faults)) throw new UsageError(`names an unknown fault "${key}": use transient, rate_limit, malformed or crash`, {field: 'sim_faults'})
    if (!Number.isFinite(rate) || rate < 0 || rate > 1) throw new UsageError(`sets ${key} to "${value}": a rate is from 0 to 1`, {field: 'sim_faults'})
    faults[key as keyof typeof faults] = rate
  }

  return faults
}

/** Options from flags, falling back to RVX_SIM_* so separate worker processes share them. */
export function simulationOptions(flags: {latency?: string; faults?: string; seed?: number}, env: NodeJS.ProcessEnv = process.env): SimulationOptions {
  const latency = flags.latency ?? env.RVX_SIM_LATENCY
  const faults = flags.faults ?? env.RVX_SIM_FAULTS
  const seed = flags.seed ?? (env.RVX_SIM_SEED ? Number(env.RVX_SIM_SEED) : undefined)
  if (seed !== undefined && !Number.isInteger(seed)) throw new UsageError(`RVX_SIM_SEED must be a whole number (got "${env.RVX_SIM_SEED}")`)
  const supply = env.RVX_SIM_SUPPLY ? Number(env.RVX_SIM_SUPPLY) : undefined
  return {
    seed: seed ?? DEFAULT_SIMULATION.seed,
    latencyMs: latency ? parseLatency(latency) : DEFAULT_SIMULATION.latencyMs,
    faults: faults ? parseFaults(faults) : DEFAULT_SIMULATION.faults,
    ...(supply !== undefined && Number.isInteger(supply) && supply >= 0 ? {supply} : {}),
  }
}

function hash32(text: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }

  return h >>> 0
}

/** mulberry32: a small, good-enough seeded generator. */
function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}

const pick = <T>(r: () => number, list: readonly T[]): T => list[Math.floor(r() * list.length)]

const CITIES: Record<string, string[]> = {
  TX: ['Austin', 'Dallas', 'Houston', 'San Antonio', 'Fort Worth', 'El Paso', 'Plano', 'Round Rock'],
  FL: ['Tampa', 'Orlando', 'Miami', 'Jacksonville', 'Tallahassee'],
  CA: ['Sacramento', 'San Diego', 'Fresno', 'Oakland', 'Riverside'],
  NC: ['Raleigh', 'Charlotte', 'Durham', 'Greensboro'],
}
const STATES = Object.keys(CITIES)
const WORDS_A = [
  'Lone Star',
  'Bluebonnet',
  'Keystone',
  'Summit',
  'Oakline',
  'Harbor',
  'Cedar',
  'Pioneer',
  'Granite',
  'Magnolia',
  'Crescent',
  'Liberty',
  'Redwood',
  'Sterling',
  'Prairie',
  'Riverbend',
  'Ironwood',
  'Silverleaf',
  'Northgate',
  'Westfield',
]
const WORDS_B = ['Property Management', 'Realty & Management', 'Residential', 'Homes', 'Property Group', 'Rentals', 'Management Co', 'Property Services']
const FIRST = [
  'Maria',
  'James',
  'Linda',
  'Robert',
  'Patricia',
  'Michael',
  'Jennifer',
  'David',
  'Elizabeth',
  'Carlos',
  'Aisha',
  'Wei',
  'Sofia',
  'Daniel',
  'Grace',
  'Omar',
]
const LAST = [
  'Garcia',
  'Smith',
  'Nguyen',
  'Johnson',
  'Patel',
  'Williams',
  'Brown',
  'Martinez',
  'Lee',
  'Davis',
  'Lopez',
  'Wilson',
  'Anderson',
  'Thomas',
  'Moore',
  'Clark',
]
const TITLES: Array<[string, 1 | 2 | 3 | 4]> = [
  ['Owner', 1],
  ['Broker/Owner', 1],
  ['President', 1],
  ['CEO', 1],
  ['Managing Partner', 1],
  ['Director of Property Management', 2],
  ['VP Operations', 2],
  ['Portfolio Manager', 2],
  ['Operations Manager', 3],
  ['Leasing Agent', 4],
]

interface WorldCompany extends CandidateCompany {
  residential: boolean
  employees: number
}

export class SimulatedProvider implements ResearchProvider {
  readonly name = 'simulated'
  readonly simulated = true
  private readonly worlds = new Map<string, WorldCompany[]>()

  constructor(private readonly options: SimulationOptions = DEFAULT_SIMULATION) {}

  async discover(input: {criteria: Criteria; want: number; exclude: string[]; round: number}, ctx: CallContext): Promise<CandidateCompany[]> {
    await this.call(ctx, 900, 300)
    const exclude = new Set(input.exclude.map((d) => d.toLowerCase()))
    return this.world(input.criteria)
      .filter((c) => !exclude.has(c.domain))
      .slice(0, Math.max(0, input.want))
      .map(({name, domain, website, city, state, sources}) => ({name, domain, website, city, state, sources}))
  }

  async research(input: {criteria: Criteria; company: CandidateCompany}, ctx: CallContext): Promise<CompanyResearch> {
    await this.call(ctx, 2500, 600)
    const c = this.world(input.criteria).find((w) => w.domain === input.company.domain)
    if (!c) return {fit: 'unknown', score: 0, tier: 'unknown', confidence: 'low', reasons: ['not found in the simulated world'], sources: []}
    const {criteria} = input
    const reasons: string[] = []
    let fit: 'yes' | 'no' = 'yes'
    if (criteria.pms && c.pms?.toLowerCase() !== criteria.pms.toLowerCase()) {
      fit = 'no'
      reasons.push(`uses ${c.pms}, not ${criteria.pms} (portal links on ${c.domain})`)
    } else if (c.pms) {
      reasons.push(`tenant portal on ${c.pms}`)
    }

    if (!c.residential) {
      fit = 'no'
      reasons.push('HOA-only / association management, no residential rentals')
    }

    const units = c.unitsEstimate ?? 0
    if (criteria.units_min !== undefined && units < criteria.units_min) {
      fit = 'no'
      reasons.push(`about ${units} units, below ${criteria.units_min}`)
    }

    if (criteria.units_max !== undefined && units > criteria.units_max) {
      fit = 'no'
      reasons.push(`about ${units} units, above ${criteria.units_max}`)
    }

    const tier = units < 50 ? 'low' : units < 150 ? 'medium' : units <= 1000 ? 'high' : 'enterprise'
    reasons.push(`about ${units} units (${tier}), ${c.employees} employees`)
    const score = fit === 'no' ? Math.min(30, Math.round(units / 20)) : Math.min(100, 40 + Math.round(Math.log2(units + 1) * 5) + Math.min(15, c.employees))
    return {
      fit,
      score,
      tier,
      confidence: fit === 'yes' ? 'high' : 'medium',
      reasons,
      sources: [`${c.website}`, `${c.website}/portal`],
      pms: c.pms,
      unitsEstimate: units,
      city: c.city,
      state: c.state,
    }
  }

  async findContacts(input: {company: CandidateCompany; min: number; max: number}, ctx: CallContext): Promise<FoundContact[]> {
    await this.call(ctx, 1800, 400)
    // Contacts depend on seed and domain only, so any worker process finds the same people.
    const people = this.contactsFor(input.company, rng(hash32(`${this.options.seed}:${input.company.domain}`)))
    return people.sort((a, b) => a.tier - b.tier).slice(0, input.max)
  }

  /** The world for these criteria: same seed and criteria, same companies, in the same order. */
  private world(criteria: Criteria): WorldCompany[] {
    const key = JSON.stringify({seed: this.options.seed, pms: criteria.pms ?? null, state: criteria.state ?? null, city: criteria.city ?? null})
    let world = this.worlds.get(key)
    if (world) return world
    const base = hash32(key)
    const r = rng(base)
    const size = this.options.supply ?? 40 + (base % 80)
    world = []
    const used = new Set<string>()
    for (let i = 0; i < size; i++) {
      let name = `${pick(r, WORDS_A)} ${pick(r, WORDS_B)}`
      const state = criteria.state ?? pick(r, STATES)
      const city = criteria.city ?? pick(r, CITIES[state] ?? ['Springfield'])
      let slug = name
        .toLowerCase()
        .replace(/&/g, 'and')
        .replace(/[^a-z0-9]+/g, '-')
        .replace(/-+$/, '')
      if (used.has(slug)) {
        name = `${name} of ${city}`
        slug = `${slug}-${city.toLowerCase().replace(/[^a-z0-9]+/g, '-')}-${i}`
      }

      used.add(slug)
      const domain = `${slug}.example`
      const company: WorldCompany = {
        name,
        domain,
        website: `https://${domain}`,
        city,
        state,
        pms: criteria.pms && r() < 0.75 ? criteria.pms : pick(r, PMS_VENDORS),
        unitsEstimate: Math.round(10 * Math.exp(r() * 5.5)),
        residential: r() < 0.9,
        employees: 2 + Math.floor(r() * 45),
        sources: [`https://directory.example/${slug}`],
      }
      world.push(company)
    }

    this.worlds.set(key, world)
    return world
  }

  private contactsFor(c: CandidateCompany, r: () => number): FoundContact[] {
    // A few companies have nobody findable: the pipeline must cope.
    const count = r() < 0.03 ? 0 : 1 + Math.floor(r() * 5)
    const people: FoundContact[] = []
    const names = new Set<string>()
    for (let i = 0; i < count; i++) {
      const fullName = `${pick(r, FIRST)} ${pick(r, LAST)}`
      if (names.has(fullName)) continue
      names.add(fullName)
      const [title, tier] = i === 0 ? pick(r, TITLES.slice(0, 5)) : pick(r, TITLES)
      const local = fullName.toLowerCase().replace(/[^a-z]+/g, '.')
      people.push({
        fullName,
        title,
        tier,
        email: r() < 0.8 ? `${local}@${c.domain}` : null,
        phone: r() < 0.5 ? `+1-555-${String(Math.floor(r() * 9000) + 1000)}` : null,
        linkedinUrl: r() < 0.7 ? `https://linkedin.example/in/${local.replace(/\./g, '-')}-${c.domain.split('.')[0]}` : null,
        confidence: tier <= 2 ? 'high' : 'medium',
        sources: [`https://${c.domain}/team`],
      })
    }

    return people
  }

  /** Latency, usage and injected faults of one simulated model call. */
  private async call(ctx: CallContext, inputTokens: number, outputTokens: number): Promise<void> {
    const [min, max] = this.options.latencyMs
    const started = Date.now()
    if (max > 0) await sleep(min + Math.random() * (max - min), ctx.signal)
    if (ctx.signal.aborted) throw new Error('aborted')
    const f = this.options.faults
    const roll = Math.random()
    const usage = {provider: 'simulated', model: SIMULATED_MODEL, inputTokens, outputTokens, cachedTokens: 0, latencyMs: Date.now() - started, costUsd: 0}
    if (roll < f.crash) {
      // The worker process dies mid-task, as if the OOM killer came by.
      process.kill(process.pid, 'SIGKILL')
      await sleep(60_000)
    }

    if (roll < f.crash + f.transient) {
      ctx.record({...usage, outcome: 'error'})
      throw new TransientError('simulated upstream error (HTTP 503)')
    }

    if (roll < f.crash + f.transient + f.rate_limit) {
      ctx.record({...usage, outputTokens: 0, outcome: 'rate_limited'})
      throw new SnoozeError('simulated rate limit (HTTP 429, Retry-After: 1)', 1000)
    }

    if (roll < f.crash + f.transient + f.rate_limit + f.malformed) {
      ctx.record({...usage, outcome: 'malformed'})
      throw new Error('simulated malformed model output (failed schema validation after repair)')
    }

    ctx.record({...usage, outcome: 'ok'})
  }
}
