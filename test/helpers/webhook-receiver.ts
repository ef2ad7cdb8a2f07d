import http from 'node:http'
import type {AddressInfo} from 'node:net'
import {Webhook} from 'standardwebhooks'

export interface Received {
  id: string
  type: string
  runId: number | null
  answered: number
  body: {type: string; timestamp: string; data: Record<string, any>}
}

/** A receiver as a customer would write one: verifies every request with standardwebhooks; can refuse the next few. */
export class Receiver {
  readonly received: Received[] = []
  readonly bad: string[] = []
  private refuse = 0
  private server?: http.Server
  secret = ''
  url = ''

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => {
      let body = ''
      req.on('data', (d) => (body += d))
      req.on('end', () => {
        try {
          new Webhook(this.secret).verify(body, req.headers as Record<string, string>)
        } catch (error) {
          this.bad.push((error as Error).message)
          return res.writeHead(400).end()
        }

        const parsed = JSON.parse(body)
        const answered = this.refuse > 0 ? 500 : 200
        if (this.refuse > 0) this.refuse--
        const data = parsed.data
        this.received.push({id: String(req.headers['webhook-id']), type: parsed.type, runId: data.runId ?? data.run?.id ?? null, answered, body: parsed})
        res.writeHead(answered).end()
      })
    })
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve))
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hooks/rvx`
    return this
  }

  refuseNext(n: number): void {
    this.refuse = n
  }

  /** What was taken (2xx), in arrival order. */
  taken(): Received[] {
    return this.received.filter((r) => r.answered === 200)
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server?.close(() => resolve()))
  }
}
