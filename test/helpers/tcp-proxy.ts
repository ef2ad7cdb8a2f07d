import net from 'node:net'
import {performance} from 'node:perf_hooks'

import {ownAddresses} from './netns.js'

/**
 * A TCP proxy for fault tests: it listens on host:port (127.0.0.1, or a
 * veth's hostIp so processes in a namespace reach a server on 127.0.0.1) and
 * forwards each connection to the target.
 *
 * - Delay (this kernel has no netem): every chunk each way is held
 *   ms ± jitterMs, released no earlier than the chunk before it, so bytes
 *   keep their order (release = max(previous release, now + delay)).
 * - freeze(): nothing is forwarded and nothing is closed, new connections are
 *   accepted but not passed on, until thaw(): a peer that stopped answering.
 *   The proxy's own kernel still acknowledges what clients send, so TCP
 *   keepalives and tcp_user_timeout do not see it; a lost link is netns cut().
 * - cutAll(): resets every connection both ways (both peers see ECONNRESET).
 * - retarget(): where new connections go (a failover endpoint); open ones stay.
 *
 * Bounded: it connects only to the target it is given, which must be a
 * loopback address or an address of a veth this process made (netns.ts).
 */

export interface Delay {
  ms: number
  jitterMs?: number
}

export interface Target {
  host: string
  port: number
}

export interface TcpProxyOptions {
  target: Target
  /** Where to listen; default 127.0.0.1. */
  host?: string
  /** Default: a free port. */
  port?: number
  /** Added to bytes from clients to the target. */
  up?: Delay
  /** Added to bytes from the target to clients. */
  down?: Delay
}

export interface ProxyCounters {
  /** Connections accepted from clients. */
  accepted: number
  /** Connections open now. */
  open: number
  /** Connections whose target refused or failed to connect (the client was reset). */
  failed: number
  /** Connections reset by cutAll(). */
  cut: number
  /** Bytes forwarded to the target, and to clients. */
  bytesUp: number
  bytesDown: number
}

type Direction = 'up' | 'down'

/** Above this much held in one lane, the proxy stops reading its source until it drains. */
const HIGH_WATER = 1 << 20

export class TcpProxy {
  host = ''
  port = 0
  private target: Target
  private readonly delays: Record<Direction, Delay>
  private frozen = false
  private readonly links = new Set<Link>()
  // Half-open sockets: each lane passes its source's end on itself, after the bytes it still holds.
  private readonly server = net.createServer({allowHalfOpen: true}, (socket) => this.accept(socket))
  private readonly tally = {accepted: 0, failed: 0, cut: 0, bytesUp: 0, bytesDown: 0}

  private constructor(options: TcpProxyOptions) {
    this.target = checkedTarget(options.target)
    this.delays = {up: checkedDelay(options.up), down: checkedDelay(options.down)}
  }

  static async start(options: TcpProxyOptions): Promise<TcpProxy> {
    const proxy = new TcpProxy(options)
    await new Promise<void>((resolve, reject) => {
      proxy.server.once('error', reject)
      proxy.server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve())
    })
    const address = proxy.server.address() as net.AddressInfo
    proxy.host = address.address
    proxy.port = address.port
    return proxy
  }

  /** host:port as a URL authority, for a connection string. */
  get address(): string {
    return `${this.host}:${this.port}`
  }

  /** Replaces the delay of one or both directions (chunks already held keep theirs). */
  setDelay(delays: {up?: Delay; down?: Delay}): void {
    if (delays.up) this.delays.up = checkedDelay(delays.up)
    if (delays.down) this.delays.down = checkedDelay(delays.down)
  }

  freeze(): void {
    this.frozen = true
    for (const link of this.links) link.freeze()
  }

  thaw(): void {
    this.frozen = false
    for (const link of this.links) link.thaw()
  }

  get isFrozen(): boolean {
    return this.frozen
  }

  cutAll(): void {
    for (const link of [...this.links]) {
      this.tally.cut++
      link.destroy()
    }
  }

  /** The remote addresses of the clients connected now (a namespace's nsIp, when they come from one). */
  clientAddresses(): string[] {
    return [...this.links].map((link) => link.clientAddress)
  }

  retarget(host: string, port: number): void {
    this.target = checkedTarget({host, port})
  }

  counters(): ProxyCounters {
    return {...this.tally, open: this.links.size}
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()))
    for (const link of [...this.links]) link.destroy()
    await closed
  }

  /** @internal */
  delayFor(direction: Direction): number {
    const {ms, jitterMs = 0} = this.delays[direction]
    return Math.max(0, ms + (Math.random() * 2 - 1) * jitterMs)
  }

  /** @internal */
  forwarded(direction: Direction, bytes: number): void {
    if (direction === 'up') this.tally.bytesUp += bytes
    else this.tally.bytesDown += bytes
  }

  /** @internal */
  connectTarget(link: Link): void {
    const upstream = net.connect({port: this.target.port, host: this.target.host, allowHalfOpen: true})
    upstream.setNoDelay(true)
    upstream.once('connect', () => link.attach(upstream))
    upstream.once('error', () => {
      if (!link.attached) this.tally.failed++
    })
    link.pending(upstream)
  }

  /** @internal */
  dropLink(link: Link): void {
    this.links.delete(link)
  }

  private accept(socket: net.Socket): void {
    this.tally.accepted++
    socket.setNoDelay(true)
    const link = new Link(this, socket, this.frozen)
    this.links.add(link)
    if (!this.frozen) this.connectTarget(link)
  }
}

/** One proxied connection: the client's socket, the target's, and a lane each way. */
class Link {
  attached = false
  readonly clientAddress: string
  private upstream: net.Socket | null = null
  private readonly up: Lane
  private readonly down: Lane
  private closed = false

  constructor(
    private readonly proxy: TcpProxy,
    private readonly client: net.Socket,
    private frozen: boolean,
  ) {
    this.clientAddress = client.remoteAddress ?? ''
    this.up = new Lane(proxy, 'up', client, () => this.laneDone())
    this.down = new Lane(proxy, 'down', null, () => this.laneDone())
    client.on('error', () => {})
    client.on('close', () => this.up.sourceClosed())
    if (frozen) this.freeze()
  }

  pending(upstream: net.Socket): void {
    this.upstream = upstream
    upstream.on('error', () => {})
    upstream.on('close', () => {
      // The target never answered: the client is refused the way a closed port refuses it.
      if (!this.attached) this.destroy()
      else this.down.sourceClosed()
    })
  }

  attach(upstream: net.Socket): void {
    if (this.closed) {
      upstream.destroy()
      return
    }

    this.attached = true
    this.down.setSource(upstream)
    this.up.setSink(upstream)
    this.down.setSink(this.client)
    if (this.frozen) this.freeze()
  }

  freeze(): void {
    this.frozen = true
    this.up.freeze()
    this.down.freeze()
  }

  thaw(): void {
    this.frozen = false
    if (!this.upstream && !this.closed) this.proxy.connectTarget(this)
    this.up.thaw()
    this.down.thaw()
  }

  destroy(): void {
    if (this.closed) return
    this.closed = true
    this.up.stop()
    this.down.stop()
    this.client.resetAndDestroy()
    this.upstream?.resetAndDestroy()
    this.proxy.dropLink(this)
  }

  /** Both lanes have passed on their source's end: the connection is over. */
  laneDone(): void {
    if (this.up.done && this.down.done) {
      this.closed = true
      this.proxy.dropLink(this)
    }
  }
}

/** Bytes one way: held in order until their release time, then written to the sink. */
class Lane {
  done = false
  private readonly queue: Array<{chunk: Buffer; at: number}> = []
  private held = 0
  private lastRelease = 0
  private timer: NodeJS.Timeout | null = null
  private frozen = false
  private stopped = false
  private sourceEnded = false
  private sourceErrored = false
  private sink: net.Socket | null = null
  private source: net.Socket | null = null

  constructor(
    private readonly proxy: TcpProxy,
    private readonly direction: Direction,
    source: net.Socket | null,
    private readonly onDone: () => void,
  ) {
    if (source) this.setSource(source)
  }

  setSource(source: net.Socket): void {
    this.source = source
    source.on('data', (chunk: Buffer) => this.push(chunk))
    source.on('end', () => {
      this.sourceEnded = true
      this.pump()
    })
    if (this.frozen) source.pause()
  }

  setSink(sink: net.Socket): void {
    this.sink = sink
    sink.on('drain', () => {
      if (!this.frozen && this.held <= HIGH_WATER) this.source?.resume()
    })
    this.pump()
  }

  /** The source closed; an abrupt close (no end first) is passed on as a reset once what was held is out. */
  sourceClosed(): void {
    if (!this.sourceEnded) this.sourceErrored = true
    this.sourceEnded = true
    this.pump()
  }

  freeze(): void {
    this.frozen = true
    this.source?.pause()
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
  }

  thaw(): void {
    this.frozen = false
    this.source?.resume()
    this.pump()
  }

  stop(): void {
    this.stopped = true
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
    this.queue.length = 0
  }

  private push(chunk: Buffer): void {
    if (this.stopped) return
    const now = performance.now()
    const at = Math.max(this.lastRelease, now + this.proxy.delayFor(this.direction))
    this.lastRelease = at
    this.queue.push({chunk, at})
    this.held += chunk.length
    if (this.held > HIGH_WATER) this.source?.pause()
    this.pump()
  }

  private pump(): void {
    if (this.stopped || this.frozen || this.timer || !this.sink) return
    const now = performance.now()
    while (this.queue.length > 0 && this.queue[0].at <= now) {
      const {chunk} = this.queue.shift()!
      this.held -= chunk.length
      this.proxy.forwarded(this.direction, chunk.length)
      if (!this.sink.write(chunk)) this.source?.pause()
    }

    if (this.queue.length > 0) {
      this.timer = setTimeout(
        () => {
          this.timer = null
          this.pump()
        },
        Math.ceil(this.queue[0].at - now),
      )
      return
    }

    if (this.held <= HIGH_WATER && this.sink.writableNeedDrain === false) this.source?.resume()
    if (this.sourceEnded && !this.done) {
      this.done = true
      if (this.sourceErrored) this.sink.resetAndDestroy()
      else this.sink.end()
      this.onDone()
    }
  }
}

function checkedDelay(delay: Delay | undefined): Delay {
  const {ms = 0, jitterMs = 0} = delay ?? {}
  if (!(ms >= 0 && jitterMs >= 0 && jitterMs <= ms)) {
    throw new Error(`a delay needs ms >= 0 and 0 <= jitterMs <= ms (got ${JSON.stringify(delay)})`)
  }

  return {ms, jitterMs}
}

function checkedTarget(target: Target): Target {
  const loopback = net.isIPv4(target.host) ? target.host.startsWith('127.') : target.host === '::1'
  if (!loopback && !ownAddresses().includes(target.host)) {
    throw new Error(`the proxy forwards only to loopback or to this process's own veth addresses, not ${target.host}`)
  }

  if (!Number.isInteger(target.port) || target.port < 1 || target.port > 65_535) throw new Error(`bad target port ${target.port}`)
  return target
}
