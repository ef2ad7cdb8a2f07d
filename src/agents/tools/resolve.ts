import dns from 'node:dns'
import {isIP} from 'node:net'

import {PermanentError} from '../../runtime/errors.js'
import {UsageError} from '../../shared/errors.js'

const resolvers = new Map<string, dns.promises.Resolver>()

/**
 * The DNS server `server` (RVX_DNS_SERVER: address or address:port), or null for
 * the system resolver. Tests point it at a server of their own; DNS checks
 * beyond addresses (MX) can ask the same resolver.
 */
export function dnsResolver(server: string | undefined): dns.promises.Resolver | null {
  if (!server) return null
  let resolver = resolvers.get(server)
  if (!resolver) {
    resolver = new dns.promises.Resolver({timeout: 5000, tries: 2})
    try {
      resolver.setServers([parseDnsServer(server)!])
    } catch (error) {
      throw new PermanentError((error as Error).message)
    }

    resolvers.set(server, resolver)
  }

  return resolver
}

/**
 * RVX_DNS_SERVER: an IP address with an optional port from 1 to 65535
 * (`127.0.0.1:5353`, `[::1]:53`), as Node's resolver takes it; unset or empty
 * is the system resolver (undefined). Node would wrap a port above 65535 and
 * only fail at the first lookup on a name, so both are refused here.
 */
export function parseDnsServer(text: string | undefined): string | undefined {
  const value = text?.trim()
  if (!value) return undefined
  const m = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(value) ?? /^([^:]+)(?::(\d{1,5}))?$/.exec(value) ?? /^([\da-f:]+)()$/i.exec(value)
  const port = m?.[2] ? Number(m[2]) : 53
  if (!m || !isIP(m[1]) || port < 1 || port > 65_535)
    throw new UsageError(`must be the IP address of a DNS server with an optional port, e.g. 127.0.0.1:5353 or [::1]:53 (got "${text}")`, {
      field: 'RVX_DNS_SERVER',
    })
  return value
}

/** Every IPv4 and IPv6 address of a host name, from RVX_DNS_SERVER when set, else from the system resolver (/etc/hosts included). */
export async function resolveHost(hostname: string, server?: string): Promise<string[]> {
  const resolver = dnsResolver(server)
  if (!resolver) return (await dns.promises.lookup(hostname, {all: true, verbatim: true})).map((a) => a.address)
  const answers = await Promise.allSettled([resolver.resolve4(hostname), resolver.resolve6(hostname)])
  const addresses = answers.flatMap((a) => (a.status === 'fulfilled' ? a.value : []))
  if (addresses.length === 0)
    throw (
      (answers.find((a) => a.status === 'rejected') as PromiseRejectedResult | undefined)?.reason ??
      Object.assign(new Error(`no address for ${hostname}`), {code: 'ENOTFOUND'})
    )
  return addresses
}
