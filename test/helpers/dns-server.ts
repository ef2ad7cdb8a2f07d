import type {AddressInfo} from 'node:net'
import dns2 from 'dns2'

const {Packet} = dns2

/** What one query gets: records (A/AAAA addresses, "10 mx.example" for MX, text for TXT/CNAME), or a failure. */
export type DnsAnswer = string[] | 'nxdomain' | 'servfail' | 'drop'

const RCODE = {nxdomain: 3, servfail: 2}

/**
 * A DNS server on 127.0.0.1 (UDP) for tests: each name and type answers
 * from a sequence, one entry per query and the last one from then on, so a
 * name can answer a public address first and 127.0.0.1 after (rebinding),
 * or NXDOMAIN, SERVFAIL, or nothing at all (a timeout). Unknown names are
 * NXDOMAIN; a known name without records of the asked type is NODATA.
 * Answers carry TTL 0, so no resolver may cache them.
 */
export class FakeDns {
  /** Every query, in order. */
  readonly queries: Array<{name: string; type: string}> = []
  private readonly zone = new Map<string, Map<string, DnsAnswer[]>>()
  private server?: ReturnType<typeof dns2.createUDPServer>
  /** host:port, for RVX_DNS_SERVER. */
  address = ''

  async start(): Promise<this> {
    this.server = dns2.createUDPServer((request, send) => {
      const question = request.questions[0]
      const name = question.name.toLowerCase().replace(/\.$/, '')
      const type = Object.entries(Packet.TYPE).find(([, n]) => n === question.type)?.[0] ?? String(question.type)
      this.queries.push({name, type})
      const answer = this.next(name, type)
      if (answer === 'drop') return
      const response = Packet.createResponseFromRequest(request)
      if (answer === 'nxdomain' || answer === 'servfail') response.header.rcode = RCODE[answer]
      else for (const value of answer) response.answers.push(record(question.name, question.type, type, value) as unknown as dns2.Packet.Resource)
      void send(response)
    })
    await this.server.listen(0, '127.0.0.1')
    this.address = `127.0.0.1:${(this.server.address() as AddressInfo).port}`
    return this
  }

  /** Answers `name`'s `type` queries with each answer in turn, the last one from then on. */
  set(name: string, type: 'A' | 'AAAA' | 'MX' | 'TXT' | 'CNAME', ...answers: DnsAnswer[]): this {
    const key = name.toLowerCase()
    if (!this.zone.has(key)) this.zone.set(key, new Map())
    this.zone.get(key)!.set(type, [...answers])
    return this
  }

  /** How many queries `name` got (of `type`, when given). */
  count(name: string, type?: string): number {
    return this.queries.filter((q) => q.name === name.toLowerCase() && (!type || q.type === type)).length
  }

  reset(): void {
    this.zone.clear()
    this.queries.length = 0
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()))
  }

  private next(name: string, type: string): DnsAnswer {
    const types = this.zone.get(name)
    if (!types) return 'nxdomain'
    const sequence = types.get(type)
    if (!sequence || sequence.length === 0) return []
    return sequence.length > 1 ? sequence.shift()! : sequence[0]
  }
}

/** A plain record object: dns2 encodes answers with its static encoder. */
function record(name: string, typeCode: number, type: string, value: string) {
  const base = {name, type: typeCode, class: Packet.CLASS.IN, ttl: 0}
  if (type === 'MX') {
    const [priority, exchange] = value.split(/\s+/)
    return {...base, priority: Number(priority), exchange}
  }

  if (type === 'TXT') return {...base, data: value}
  if (type === 'CNAME') return {...base, domain: value}
  return {...base, address: value}
}
