import http from 'node:http'
import type {AddressInfo} from 'node:net'
import {simpleParser, type ParsedMail} from 'mailparser'
import {SMTPServer} from 'smtp-server'

export interface WebhookCapture {
  url: string
  /** Parsed JSON bodies of every POST, in order (failed answers included). */
  requests: Array<{status: number; body: any}>
  /** Answer the next N requests with this status (then 200); replaces any failures still queued. */
  failNext(n: number, status?: number): void
  /** Forgets queued failures and recorded requests (between tests: nothing carries over). */
  reset(): void
  close(): Promise<void>
}

/** A Slack-like incoming-webhook endpoint on 127.0.0.1 that records what it is sent. */
export async function startWebhook(): Promise<WebhookCapture> {
  const requests: WebhookCapture['requests'] = []
  let failures: Array<number> = []
  const server = http.createServer((req, res) => {
    let body = ''
    req.on('data', (d) => (body += d))
    req.on('end', () => {
      const status = failures.shift() ?? 200
      requests.push({status, body: JSON.parse(body)})
      res.writeHead(status, {'content-type': 'text/plain'}).end(status === 200 ? 'ok' : 'unavailable')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/services/T0/B0/secret-token`,
    requests,
    failNext: (n, status = 503) => (failures = Array.from({length: n}, () => status)),
    reset: () => {
      failures = []
      requests.length = 0
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  }
}

export interface SmtpCapture {
  url: string
  messages: ParsedMail[]
  to(address: string): ParsedMail[]
  close(): Promise<void>
}

/** An SMTP server on 127.0.0.1 (plain, password auth) that keeps every message, parsed. */
export async function startSmtp(): Promise<SmtpCapture> {
  const messages: ParsedMail[] = []
  const server = new SMTPServer({
    secure: false,
    disabledCommands: ['STARTTLS'],
    allowInsecureAuth: true,
    onAuth(auth, _session, callback) {
      if (auth.username === 'rvx' && auth.password === 'p@ss word') callback(null, {user: auth.username})
      else callback(new Error('invalid credentials'))
    },
    onData(stream, _session, callback) {
      simpleParser(stream).then(
        (mail) => {
          messages.push(mail)
          callback()
        },
        (error: Error) => callback(error),
      )
    },
    logger: false,
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.server.address() as AddressInfo).port
  const recipients = (m: ParsedMail) => [m.to].flat().flatMap((a) => a?.value.map((v) => v.address) ?? [])
  return {
    url: `smtp://rvx:${encodeURIComponent('p@ss word')}@127.0.0.1:${port}`,
    messages,
    to: (address) => messages.filter((m) => recipients(m).includes(address)),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  }
}

/** Prometheus text format -> samples (name, labels, value). */
export function parseMetrics(text: string): Array<{name: string; labels: Record<string, string>; value: number}> {
  const out: Array<{name: string; labels: Record<string, string>; value: number}> = []
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line)
    if (!m) continue
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2]
    out.push({name: m[1], labels, value: Number(m[3])})
  }

  return out
}

/** Sum of a metric's samples whose labels include `where`. */
export function metricSum(samples: ReturnType<typeof parseMetrics>, name: string, where: Record<string, string> = {}): number {
  return samples.filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v)).reduce((n, s) => n + s.value, 0)
}

export interface Canary {
  port: number
  /** TCP connections accepted (a TLS handshake or a bare connect counts too). */
  connections: number
  /** Request lines (method and path) of the HTTP requests that got through. */
  requests: string[]
  close(): Promise<void>
}

/** An HTTP server on 127.0.0.1 that a guarded fetch must never reach: it counts every connection and request. */
export async function startCanary(): Promise<Canary> {
  const server = http.createServer((req, res) => {
    canary.requests.push(`${req.method} ${req.url}`)
    res.writeHead(200, {'content-type': 'text/html'}).end('<html><body><h1>canary: internal page</h1></body></html>')
  })
  server.on('connection', () => canary.connections++)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const canary: Canary = {
    port: (server.address() as AddressInfo).port,
    connections: 0,
    requests: [],
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
  return canary
}
