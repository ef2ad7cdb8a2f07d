/**
 * The world the quota bench's model talks about: property-management
 * companies with sites of their own, served from 127.0.0.1 (one HTTP server
 * for every domain, by Host header, and a DNS server that resolves them and
 * gives them MX records), and the scripted model that finds, researches and
 * staffs them the way src/agents/openai.ts asks (its prompts and
 * src/agents/schemas.ts).
 *
 * The model reads before it answers: research fetches the home page and the
 * about page (three turns), contacts fetch the team page (two turns),
 * discovery answers at once (one turn). It tells the truth; rvx's own site
 * checks decide PMS and state, as they do with a real model. About 61% of
 * the companies qualify for {"pms":"Buildium","state":"TX"}; about 3% have
 * nobody findable.
 */
import http from 'node:http'
import type {AddressInfo} from 'node:net'
import dns2 from 'dns2'

import type {ModelMessage, ModelReply} from './quota-server.js'

export const CRITERIA = {pms: 'Buildium', state: 'TX'}

interface Person {
  name: string
  title: string
  tier: number
  email: string
}

export interface Company {
  name: string
  domain: string
  slug: string
  pms: 'Buildium' | 'AppFolio' | null
  street: string
  city: string
  state: string
  zip: string
  portfolio: 'residential' | 'hoa_only'
  units: number
  employees: number
  people: Person[]
}

const PLACES = [
  'Bluebonnet',
  'Lone Star',
  'Pecan',
  'Brazos',
  'Cedar Park',
  'Hill Country',
  'Gulf Coast',
  'Prairie',
  'Red River',
  'Trinity',
  'Mesquite',
  'Caprock',
]
const KINDS = ['Property Management', 'Rentals', 'Realty & Management', 'Homes', 'Property Group', 'Residential', 'Leasing', 'Management Co']
const TX = [
  ['Austin', '78701'],
  ['Dallas', '75201'],
  ['Houston', '77002'],
  ['San Antonio', '78205'],
  ['Fort Worth', '76102'],
  ['Plano', '75074'],
  ['Lubbock', '79401'],
  ['El Paso', '79901'],
]
const OK = [
  ['Tulsa', '74103'],
  ['Oklahoma City', '73102'],
]
const FIRST = ['Maria', 'James', 'Linda', 'Robert', 'Patricia', 'Michael', 'Jennifer', 'David', 'Carlos', 'Aisha', 'Wei', 'Sofia', 'Daniel', 'Grace', 'Omar']
const LAST = ['Garcia', 'Smith', 'Nguyen', 'Johnson', 'Patel', 'Williams', 'Brown', 'Martinez', 'Lee', 'Davis', 'Lopez', 'Wilson', 'Anderson']
const TITLES: Array<[string, number]> = [
  ['Owner', 1],
  ['Broker/Owner', 1],
  ['President', 1],
  ['Director of Property Management', 2],
  ['Portfolio Manager', 2],
  ['Operations Manager', 3],
]

/** A seeded generator (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}

const pick = <T>(r: () => number, list: readonly T[]): T => list[Math.floor(r() * list.length)]

/** `size` companies, the same for the same size. */
export function makeWorld(size: number): Company[] {
  const out: Company[] = []
  for (let i = 0; i < size; i++) {
    const r = rng(1000 + i)
    const name = `${PLACES[i % PLACES.length]} ${KINDS[Math.floor(i / PLACES.length) % KINDS.length]}${i >= PLACES.length * KINDS.length ? ` ${Math.floor(i / (PLACES.length * KINDS.length)) + 1}` : ''}`
    const slug = name
      .toLowerCase()
      .replace(/&/g, 'and')
      .replace(/[^a-z0-9]+/g, '-')
    const domain = `${slug}.example`
    const p = r()
    const inTexas = r() < 0.85
    const [city, zip] = pick(r, inTexas ? TX : OK)
    const people: Person[] = []
    if (r() >= 0.03) {
      const count = 1 + Math.floor(r() * 3)
      for (let k = 0; k < count; k++) {
        const first = pick(r, FIRST)
        const last = pick(r, LAST)
        const [title, tier] = k === 0 ? pick(r, TITLES.slice(0, 3)) : pick(r, TITLES)
        if (!people.some((x) => x.name === `${first} ${last}`))
          people.push({name: `${first} ${last}`, title, tier, email: `${first}.${last}@${domain}`.toLowerCase()})
      }
    }

    out.push({
      name,
      domain,
      slug,
      pms: p < 0.75 ? 'Buildium' : p < 0.9 ? 'AppFolio' : null,
      street: `${100 + Math.floor(r() * 9000)} ${pick(r, ['Main', 'Elm', 'Oak', 'Congress', 'Commerce', 'Travis'])} St`,
      city,
      state: inTexas ? 'TX' : 'OK',
      zip,
      portfolio: r() < 0.95 ? 'residential' : 'hoa_only',
      units: 40 + Math.floor(r() * 860),
      employees: 3 + Math.floor(r() * 57),
      people,
    })
  }

  return out
}

// ---------------------------------------------------------------- the sites

function portal(c: Company): string {
  if (c.pms === 'Buildium') return `<p><a href="https://${c.slug}.managebuilding.com/Resident/portal/login">Resident Login / Pay Rent</a></p>`
  if (c.pms === 'AppFolio') return `<p><a href="https://${c.slug}.appfolio.com/connect">Resident Portal</a></p>`
  return '<p>Residents: mail your rent check to our office.</p>'
}

function page(c: Company, title: string, body: string): string {
  return `<html><head><title>${title} | ${c.name}</title></head><body>
<nav><a href="/">Home</a> <a href="/about">About us</a> <a href="/team">Our team</a> <a href="/contact">Contact</a></nav>
${body}
<footer>${c.name} &middot; ${c.street}, ${c.city}, ${c.state} ${c.zip} &middot; (555) 010-${String(1000 + (c.units % 9000)).slice(0, 4)}</footer>
</body></html>`
}

function sitePage(c: Company, path: string): string | undefined {
  const what = c.portfolio === 'residential' ? 'single-family homes and small apartment buildings' : 'homeowner associations and condominium communities'
  switch (path) {
    case '/':
      return page(
        c,
        'Home',
        `<h1>${c.name}</h1>
<p>${c.name} manages about ${c.units} ${what} for owners across ${c.city} and the towns around it. Leasing, tenant screening, rent collection, maintenance coordination and monthly owner statements, all under one roof.</p>
<p>Owners: ask for a free rental analysis. We answer every maintenance request within one business day.</p>
${portal(c)}`,
      )
    case '/about':
      return page(
        c,
        'About us',
        `<h1>About ${c.name}</h1>
<p>Founded in ${1980 + (c.units % 40)}, ${c.name} is a locally owned firm. Our team of ${c.employees} people manages about ${c.units} ${what}.</p>
<p>We are members of the local association of realtors and follow its code of ethics.</p>`,
      )
    case '/team':
      return page(
        c,
        'Our team',
        `<h1>Our team</h1><ul>${c.people.map((p) => `<li>${p.name}, ${p.title} &middot; <a href="mailto:${p.email}">${p.email}</a></li>`).join('')}</ul>`,
      )
    case '/contact':
      return page(
        c,
        'Contact',
        `<h1>Contact</h1><p>${c.street}<br>${c.city}, ${c.state} ${c.zip}</p><p><a href="mailto:office@${c.domain}">office@${c.domain}</a></p>`,
      )
    default:
      return undefined
  }
}

/**
 * Every company's site on one HTTP server on 127.0.0.1 (by Host header), and a
 * DNS server on 127.0.0.1 that resolves the companies' domains (and their mail
 * hosts) to it and gives each domain an MX record. Other names: NXDOMAIN.
 */
export class LocalWeb {
  port = 0
  /** host:port, for RVX_DNS_SERVER. */
  dnsAddress = ''
  pagesServed = 0
  private readonly byDomain: Map<string, Company>
  private server?: http.Server
  private dns?: ReturnType<typeof dns2.createUDPServer>

  constructor(world: Company[]) {
    this.byDomain = new Map(world.map((c) => [c.domain, c]))
  }

  url(domain: string, path = '/'): string {
    return `http://${domain}:${this.port}${path}`
  }

  company(domain: string): Company | undefined {
    return this.byDomain.get(domain)
  }

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => {
      const host = (req.headers.host ?? '').replace(/:\d+$/, '').toLowerCase()
      const c = this.byDomain.get(host)
      const html = c && sitePage(c, (req.url ?? '/').split('?')[0])
      this.pagesServed++
      if (html === undefined) return res.writeHead(404, {'content-type': 'text/html'}).end('<html><body>Not found</body></html>')
      res.writeHead(200, {'content-type': 'text/html; charset=utf-8'}).end(html)
    })
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve))
    this.port = (this.server.address() as AddressInfo).port

    const {Packet} = dns2
    this.dns = dns2.createUDPServer((request, send) => {
      const question = request.questions[0]
      const name = question.name.toLowerCase().replace(/\.$/, '')
      const domain = name.replace(/^mx\./, '')
      const response = Packet.createResponseFromRequest(request)
      const base = {name: question.name, type: question.type, class: Packet.CLASS.IN, ttl: 0}
      if (!this.byDomain.has(domain)) response.header.rcode = 3
      else if (question.type === Packet.TYPE.A) response.answers.push({...base, address: '127.0.0.1'} as unknown as dns2.Packet.Resource)
      else if (question.type === Packet.TYPE.MX && name === domain)
        response.answers.push({...base, priority: 10, exchange: `mx.${domain}`} as unknown as dns2.Packet.Resource)
      void send(response)
    })
    await this.dns.listen(0, '127.0.0.1')
    this.dnsAddress = `127.0.0.1:${(this.dns.address() as AddressInfo).port}`
    return this
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections()
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()))
    await new Promise<void>((resolve) => (this.dns ? this.dns.close(() => resolve()) : resolve()))
  }
}

// ---------------------------------------------------------------- the model

let callSeq = 0
const fetchPage = (url: string): ModelMessage => ({
  content: null,
  tool_calls: [{id: `call_${++callSeq}`, type: 'function', function: {name: 'fetch_page', arguments: JSON.stringify({url})}}],
})
const answer = (json: unknown) => ({content: JSON.stringify(json)})

/** The scripted model: reads the pages rvx's prompts point it at, then answers in the shapes src/agents/schemas.ts validates. */
export function scriptedModel(world: Company[], web: LocalWeb): (body: any) => ModelReply {
  return (body) => {
    const messages: Array<{role: string; content?: string}> = body.messages
    const task = String(messages[1]?.content ?? '')
    const turn = messages.filter((m) => m.role === 'assistant').length
    const read = messages.filter((m) => m.role === 'tool').length

    const discovery = /^Find (\d+) property-management companies matching these criteria/.exec(task)
    if (discovery) {
      const skip = new Set(
        (/Skip these domains \(already known or excluded\): (.*)\.\nReturn/s.exec(task)?.[1] ?? '')
          .split(',')
          .map((d) => d.trim())
          .filter(Boolean),
      )
      const found = world.filter((c) => !skip.has(c.domain)).slice(0, Math.min(200, Number(discovery[1])))
      return {
        stage: 'discovery',
        turn,
        message: answer({
          companies: found.map((c) => ({
            name: c.name,
            domain: c.domain,
            website: web.url(c.domain),
            city: c.city,
            state: c.state,
            pms: c.pms,
            units_estimate: c.units,
            sources: [],
          })),
        }),
      }
    }

    const company = web.company(/\(http:\/\/([^:/]+):\d+\/\)/.exec(task)?.[1] ?? '')
    if (task.startsWith('Research ') && company) {
      if (read === 0) return {stage: 'research', turn, message: fetchPage(web.url(company.domain))}
      if (read === 1) return {stage: 'research', turn, message: fetchPage(web.url(company.domain, '/about'))}
      const criteria = JSON.parse(/against these criteria: (\{.*?\})\.\n/s.exec(task)?.[1] ?? '{}') as {pms?: string; state?: string}
      const home = web.url(company.domain)
      const judge = (wanted: string | undefined, found: string | null) => (!found ? 'unknown' : found === wanted ? 'match' : 'mismatch')
      return {
        stage: 'research',
        turn,
        message: answer({
          verdicts: {
            ...(criteria.pms
              ? {pms: {verdict: judge(criteria.pms, company.pms), evidence: company.pms ? [{url: home, quote: 'Resident Login / Pay Rent'}] : []}}
              : {}),
            ...(criteria.state
              ? {state: {verdict: judge(criteria.state, company.state), evidence: [{url: home, quote: `${company.street}, ${company.city}, ${company.state}`}]}}
              : {}),
          },
          portfolio: company.portfolio,
          units_estimate: company.units,
          employees_estimate: company.employees,
          confidence: 'high',
          reasons: [
            `manages about ${company.units} units in ${company.city}, ${company.state}`,
            company.pms ? `portal links ${company.pms}` : 'no PMS portal found',
          ],
          sources: [home, web.url(company.domain, '/about')],
          pms: company.pms,
          city: company.city,
          state: company.state,
        }),
      }
    }

    if (/^Find \d+-\d+ decision makers at /.test(task) && company) {
      const team = web.url(company.domain, '/team')
      if (read === 0) return {stage: 'contacts', turn, message: fetchPage(team)}
      return {
        stage: 'contacts',
        turn,
        message: answer({
          contacts: company.people.map((p) => ({
            full_name: p.name,
            title: p.title,
            tier: p.tier,
            email: p.email,
            phone: null,
            confidence: 'high',
            sources: [team],
          })),
        }),
      }
    }

    return {stage: 'unknown', turn, error: `the bench's model does not know this task: ${task.slice(0, 120)}`}
  }
}
