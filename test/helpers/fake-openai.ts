import http from 'node:http'
import type {AddressInfo} from 'node:net'

export interface ScriptedReply {
  status?: number
  headers?: Record<string, string>
  body: unknown
  /** Sent as it is instead of body as JSON (a proxy's HTML page, a body that is not JSON). */
  raw?: string
  /** Answer this late (a slow or hung model); the request is recorded at once. */
  delayMs?: number
}

/**
 * An OpenAI-compatible chat-completions server on 127.0.0.1 that answers
 * from a script, one reply per request, and keeps every request it got.
 */
export class FakeOpenAI {
  readonly requests: Array<{path: string; auth: string | undefined; body: any}> = []
  private script: ScriptedReply[] = []
  /** When set, answers every request by looking at it instead of from the script. */
  route?: (body: any, request: {auth: string | undefined}) => ScriptedReply
  private server?: http.Server
  url = ''

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => {
      let raw = ''
      req.on('data', (d) => (raw += d))
      req.on('end', () => {
        this.requests.push({path: req.url ?? '', auth: req.headers.authorization, body: raw ? JSON.parse(raw) : null})
        const body = raw ? JSON.parse(raw) : null
        const reply = this.route
          ? this.route(body, {auth: req.headers.authorization})
          : (this.script.shift() ?? {status: 500, body: {error: {message: 'script exhausted'}}})
        const send = () => {
          if (res.destroyed) return
          res.writeHead(reply.status ?? 200, {'content-type': 'application/json', ...reply.headers})
          res.end(reply.raw ?? JSON.stringify(reply.body))
        }
        if (!reply.delayMs) return send()
        const timer = setTimeout(send, reply.delayMs)
        res.on('close', () => clearTimeout(timer))
      })
    })
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve))
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/v1`
    return this
  }

  reply(...replies: ScriptedReply[]): void {
    this.script.push(...replies)
  }

  reset(): void {
    this.script = []
    this.requests.length = 0
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections()
    await new Promise<void>((resolve) => this.server?.close(() => resolve()))
  }
}

let n = 0
export function completion(message: Record<string, unknown>, usage = {prompt_tokens: 100, completion_tokens: 20}, finishReason?: string) {
  return {
    body: {
      id: `chatcmpl-${++n}`,
      object: 'chat.completion',
      created: 0,
      model: 'gpt-4.1-mini',
      choices: [
        {index: 0, finish_reason: finishReason ?? (message.tool_calls ? 'tool_calls' : 'stop'), message: {role: 'assistant', content: null, ...message}},
      ],
      usage: {...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens, prompt_tokens_details: {cached_tokens: 40}},
    },
  }
}

export function toolCall(name: string, args: unknown) {
  return toolCalls([[name, args]])
}

/** One turn asking for several tool calls at once. */
export function toolCalls(calls: Array<[name: string, args: unknown]>) {
  return completion({tool_calls: calls.map(([name, args]) => ({id: `call_${++n}`, type: 'function', function: {name, arguments: JSON.stringify(args)}}))})
}

/** An answer cut off at the output token limit (finish_reason "length"). */
export function truncated(content: string) {
  return completion({content}, undefined, 'length')
}

export function answer(json: unknown) {
  return completion({content: typeof json === 'string' ? json : JSON.stringify(json)})
}
