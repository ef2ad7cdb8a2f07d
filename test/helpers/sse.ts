import http from 'node:http'

export interface SseEvent {
  event: string
  data: string
}

/**
 * A Server-Sent Events reader over node:http (what EventSource does, without
 * a browser): collects every event; `next` waits for the next one that matches.
 */
export class SseClient {
  readonly events: SseEvent[] = []
  status = 0
  headers: http.IncomingHttpHeaders = {}
  private request?: http.ClientRequest
  private buffer = ''
  private waiters: Array<() => void> = []

  /** Resolves when the response headers are in. */
  static open(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
    const client = new SseClient()
    return new Promise((resolve, reject) => {
      client.request = http.get(url, {headers: {accept: 'text/event-stream', ...headers}}, (res) => {
        client.status = res.statusCode ?? 0
        client.headers = res.headers
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => client.feed(chunk))
        res.on('error', () => {})
        resolve(client)
      })
      client.request.on('error', reject)
    })
  }

  private feed(chunk: string): void {
    this.buffer += chunk
    let end: number
    while ((end = this.buffer.indexOf('\n\n')) >= 0) {
      const block = this.buffer.slice(0, end)
      this.buffer = this.buffer.slice(end + 2)
      let event = 'message'
      const data: string[] = []
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) event = line.slice(6).trim()
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''))
      }
      this.events.push({event, data: data.join('\n')})
    }

    for (const w of this.waiters.splice(0)) w()
  }

  /** The first event from index `from` on that matches, waiting up to `timeoutMs` for it. */
  async next(match: (e: SseEvent) => boolean, from = 0, timeoutMs = 15_000): Promise<{event: SseEvent; index: number}> {
    const deadline = Date.now() + timeoutMs
    while (true) {
      const index = this.events.findIndex((e, i) => i >= from && match(e))
      if (index >= 0) return {event: this.events[index], index}
      const left = deadline - Date.now()
      if (left <= 0)
        throw new Error(`timed out after ${timeoutMs} ms waiting for an SSE event (got ${this.events.length}: ${this.events.map((e) => e.event).join(', ')})`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
  }

  /** Regions events, parsed. */
  regions(): Array<Record<string, string>> {
    return this.events.filter((e) => e.event === 'regions').map((e) => JSON.parse(e.data) as Record<string, string>)
  }

  close(): void {
    this.request?.destroy()
  }
}

/** A GET with the response body as text. */
export function get(url: string, headers: Record<string, string> = {}): Promise<{status: number; headers: http.IncomingHttpHeaders; body: string}> {
  return new Promise((resolve, reject) => {
    http
      .get(url, {headers}, (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (d: string) => (body += d))
        res.on('end', () => resolve({status: res.statusCode ?? 0, headers: res.headers, body}))
        res.on('error', reject)
      })
      .on('error', reject)
  })
}
