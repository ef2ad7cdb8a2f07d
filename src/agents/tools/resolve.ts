import dns from 'node:dns'

import {PermanentError} from '../../runtime/errors.js'

const resolvers = new Map<string, dns.promises.Resolver>()

/**
 * The DNS server named by RVX_DNS_SERVER (host or host:port), or null for
 * the system resolver. Tests point it at a server of their own; DNS checks
 * beyond addresses (MX) can ask the same resolver.
 */
export function dnsResolver(server: string | undefined = process.env.RVX_DNS_SERVER): dns.promises.Resolver | null {
  if (!server) return null
  let resolver = resolvers.get(server)
  if (!resolver) {
    resolver = new dns.promises.Resolver({timeout: 5000, tries: 2})
    try {
      resolver.setServers([server])
    } catch {
      throw new PermanentError(`RVX_DNS_SERVER=${server} is not a DNS server address: use host or host:port, e.g. 127.0.0.1:5353`)
    }

    resolvers.set(server, resolver)
  }

  return resolver
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
