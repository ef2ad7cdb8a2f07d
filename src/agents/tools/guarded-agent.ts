import type dns from 'node:dns'
import net from 'node:net'
import {Agent, buildConnector} from 'undici'

import {checkAddress, refusal} from './ssrf.js'
import {resolveHost} from './resolve.js'

export interface GuardOptions {
  /** RVX_ALLOW_PRIVATE_FETCH=1: private and loopback addresses pass; metadata endpoints never do. */
  allowPrivate: boolean
  /** host:port of the DNS server to ask (RVX_DNS_SERVER); the system resolver when unset. */
  dnsServer?: string
  /** Local address outgoing connections are bound to (a multi-homed host's egress; tests bind 127.0.0.1 so nothing leaves the machine). */
  localAddress?: string
  /** Origins (http://127.0.0.1:8080) reached without the check: for tests that need one reachable hop in front of a refused one. */
  allowOrigins?: string[]
}

const agents = new Map<string, Agent>()

/**
 * The HTTP agent of every page fetch. The address check holds for the
 * address actually connected to: a literal IP is checked before connecting,
 * and a name is resolved once, at connect time, by a lookup that refuses the
 * whole name if any answer is refused and hands the socket only checked
 * addresses. No second resolution, so no DNS rebinding between check and use.
 */
export function guardedAgent(options: GuardOptions): Agent {
  const key = JSON.stringify([options.allowPrivate, options.dnsServer ?? '', options.localAddress ?? '', [...(options.allowOrigins ?? [])].sort()])
  let agent = agents.get(key)
  if (!agent) {
    agent = new Agent({connect: guardedConnector(options), localAddress: options.localAddress})
    agents.set(key, agent)
  }

  return agent
}

function guardedConnector(options: GuardOptions): buildConnector.connector {
  const timeout = 10_000
  const checked = buildConnector({timeout, lookup: checkedLookup(options)})
  const plain = buildConnector({timeout})
  const trusted = new Set(options.allowOrigins ?? [])
  return (target, callback) => {
    const host = target.hostname.replace(/^\[|\]$/g, '')
    const isTrusted =
      trusted.size > 0 && trusted.has(new URL(`${target.protocol}//${net.isIPv6(host) ? `[${host}]` : host}${target.port ? `:${target.port}` : ''}`).origin)
    if (net.isIP(host)) {
      // net.connect skips the lookup for a literal, so it is checked here.
      const verdict = checkAddress(host, options.allowPrivate || isTrusted)
      if (!verdict.allowed) return callback(refusal(verdict), null)
      return plain(target, callback)
    }

    return isTrusted ? plain(target, callback) : checked(target, callback)
  }
}

function checkedLookup(options: GuardOptions): net.LookupFunction {
  return (hostname, lookupOptions, callback) => {
    resolveHost(hostname, options.dnsServer).then(
      (addresses) => {
        for (const address of addresses) {
          const verdict = checkAddress(address, options.allowPrivate)
          if (!verdict.allowed) return callback(refusal(verdict, `${hostname} resolves to `), '')
        }

        const family = lookupOptions.family === 'IPv4' ? 4 : lookupOptions.family === 'IPv6' ? 6 : (lookupOptions.family ?? 0)
        const usable = family ? addresses.filter((a) => net.isIP(a) === family) : addresses
        if (usable.length === 0) return callback(Object.assign(new Error(`${hostname} has no IPv${family} address`), {code: 'ENOTFOUND'}), '')
        if (lookupOptions.all)
          return callback(
            null,
            usable.map((address): dns.LookupAddress => ({address, family: net.isIP(address)})),
          )
        callback(null, usable[0], net.isIP(usable[0]))
      },
      (error: NodeJS.ErrnoException) => callback(error, ''),
    )
  }
}
