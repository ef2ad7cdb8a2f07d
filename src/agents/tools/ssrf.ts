import dns from 'node:dns/promises'
import net from 'node:net'

import {PermanentError} from '../../runtime/errors.js'

/**
 * The page-fetching tools reach only the public internet: loopback, private,
 * link-local (cloud metadata at 169.254.169.254), CGNAT, multicast and
 * reserved addresses are refused unless RVX_ALLOW_PRIVATE_FETCH=1. Every
 * address a name resolves to is checked, and every redirect hop again.
 */
export function isPrivateAddress(address: string): boolean {
  const ip = address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address
  if (net.isIPv4(ip)) {
    const [a, b] = ip.split('.').map(Number)
    return (
      a === 0 ||
      a === 10 ||
      a === 127 ||
      (a === 100 && b >= 64 && b <= 127) ||
      (a === 169 && b === 254) ||
      (a === 172 && b >= 16 && b <= 31) ||
      (a === 192 && b === 168) ||
      (a === 192 && b === 0) ||
      (a === 198 && (b === 18 || b === 19)) ||
      a >= 224
    )
  }

  const v6 = ip.toLowerCase()
  return (
    v6 === '::' ||
    v6 === '::1' ||
    v6.startsWith('fc') ||
    v6.startsWith('fd') ||
    v6.startsWith('fe8') ||
    v6.startsWith('fe9') ||
    v6.startsWith('fea') ||
    v6.startsWith('feb') ||
    v6.startsWith('ff')
  )
}

export function privateFetchAllowed(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.RVX_ALLOW_PRIVATE_FETCH === '1'
}

/** Throws (permanent: retrying will not help) unless every address of the URL's host is public. */
export async function assertPublicUrl(url: URL, allowPrivate: boolean): Promise<void> {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new PermanentError(`refusing to fetch ${url.protocol} URLs: only http and https`)
  if (allowPrivate) return
  const host = url.hostname.replace(/^\[|\]$/g, '')
  const addresses = net.isIP(host) ? [host] : (await dns.lookup(host, {all: true}).catch(() => [])).map((a) => a.address)
  if (addresses.length === 0) throw new PermanentError(`cannot resolve ${host}`)
  const bad = addresses.find(isPrivateAddress)
  if (bad)
    throw new PermanentError(
      `refusing to fetch ${url.host}: it resolves to ${bad}, a private, loopback or link-local address (set RVX_ALLOW_PRIVATE_FETCH=1 to allow)`,
    )
}
