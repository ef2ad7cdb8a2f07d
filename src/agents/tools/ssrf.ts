import ipaddr from 'ipaddr.js'

import {PermanentError} from '../../runtime/errors.js'
import type {Env} from '../../shared/config.js'

/**
 * The one address check behind every page fetch: the literal host of each
 * URL and redirect hop before connecting, and every answer of the
 * connect-time DNS lookup (guarded-agent.ts). Only globally routable unicast
 * passes; RVX_ALLOW_PRIVATE_FETCH=1 opens private and loopback space, never
 * the cloud metadata endpoints below.
 */

type Address = ipaddr.IPv4 | ipaddr.IPv6

/** Instance-metadata endpoints hand out cloud credentials: refused even with RVX_ALLOW_PRIVATE_FETCH=1. */
const METADATA = [
  '169.254.0.0/16', // link-local: AWS/GCP/Azure/OCI/DigitalOcean 169.254.169.254, ECS 169.254.170.2, EKS 169.254.170.23
  '100.100.100.200/32', // Alibaba Cloud
  '192.0.0.192/32', // Oracle Cloud (classic)
  'fd00:ec2::/32', // AWS over IPv6: fd00:ec2::254 and its DNS, NTP and EKS neighbours
  'fe80::/10', // IPv6 link-local, like 169.254/16
].map((cidr) => ipaddr.parseCIDR(cidr))

/** 2000::/3 is the only IPv6 space handed out for global unicast; ipaddr.js calls everything it has no name for "unicast". */
const GLOBAL_UNICAST_V6 = ipaddr.parseCIDR('2000::/3')
const NAT64_WELL_KNOWN = ipaddr.parseCIDR('64:ff9b::/96')

const WORDS: Record<string, string> = {
  unspecified: 'an unspecified',
  loopback: 'a loopback',
  private: 'a private',
  carrierGradeNat: 'a carrier-grade NAT',
  linkLocal: 'a link-local',
  multicast: 'a multicast',
  broadcast: 'a broadcast',
  uniqueLocal: 'a unique-local',
  deprecatedSiteLocal: 'a site-local',
  discard: 'a discard-only',
  rfc6145: 'an IPv4-translated',
  rfc6052: 'a local-use NAT64',
  teredo: 'a Teredo',
  reserved: 'a reserved or documentation',
}

export interface AddressVerdict {
  allowed: boolean
  /** Why not, e.g. "::ffff:7f00:1 (carrying 127.0.0.1), a loopback address". */
  reason?: string
  /** A metadata endpoint: refused whatever RVX_ALLOW_PRIVATE_FETCH says. */
  metadata?: boolean
}

/** Judges one IP address (either family, any textual form ipaddr.js reads). */
export function checkAddress(address: string, allowPrivate = false): AddressVerdict {
  if (!ipaddr.isValid(address)) return {allowed: false, reason: `${address}, not an IP address`}
  const ip = ipaddr.parse(address)
  const inner = embeddedIPv4(ip)
  const said = (target: Address, what: string) => (target === ip ? `${address}, ${what}` : `${address} (carrying ${target.toString()}), ${what}`)

  for (const candidate of [ip, ...inner]) {
    if (METADATA.some((range) => candidate.kind() === range[0].kind() && candidate.match(range))) {
      return {allowed: false, metadata: true, reason: said(candidate, 'a cloud metadata or link-local address, never fetched')}
    }
  }

  if (allowPrivate) return {allowed: true}
  if (ip.kind() === 'ipv4') {
    const range = ip.range()
    return range === 'unicast' ? {allowed: true} : {allowed: false, reason: said(ip, `${WORDS[range] ?? `a ${range}`} address`)}
  }

  const v6 = ip as ipaddr.IPv6
  const range = v6.range()
  // Forms that only carry an IPv4 address are as public as the address they carry.
  if (range === 'ipv4Mapped' || range === '6to4' || v6.match(NAT64_WELL_KNOWN)) {
    const v4 = inner[0]
    const v4range = v4.range()
    return v4range === 'unicast' ? {allowed: true} : {allowed: false, reason: said(v4, `${WORDS[v4range] ?? `a ${v4range}`} address`)}
  }

  if (isIPv4Compatible(v6)) return {allowed: false, reason: `${address}, an IPv4-compatible address (deprecated, never public)`}
  if (range === 'unicast' && v6.match(GLOBAL_UNICAST_V6)) return {allowed: true}
  return {allowed: false, reason: said(ip, `${WORDS[range] ?? (range === 'unicast' ? 'an unassigned' : `a ${range}`)} address`)}
}

/** True for anything a page fetch may not reach by default (kept for callers that only need yes or no). */
export function isPrivateAddress(address: string): boolean {
  return !checkAddress(address).allowed
}

/** RVX_ALLOW_PRIVATE_FETCH=1: page fetches may reach private addresses (a test web on 127.0.0.1). */
export function privateFetchAllowed(env: Env): boolean {
  return env.RVX_ALLOW_PRIVATE_FETCH === '1'
}

/** A connection the address check refused: permanent, as retrying reaches the same address. */
export class AddressRefusedError extends PermanentError {
  constructor(
    message: string,
    readonly metadata: boolean,
  ) {
    super(message)
  }

  /** The same refusal, saying which fetch it stopped. */
  forUrl(url: string): AddressRefusedError {
    return new AddressRefusedError(`refusing to fetch ${url}: ${this.message}`, this.metadata)
  }
}

/** A refused verdict as an error; `subject` says how the address came up ("acme.example resolves to "). */
export function refusal(verdict: AddressVerdict, subject = ''): AddressRefusedError {
  const hint = verdict.metadata ? '' : ' (set RVX_ALLOW_PRIVATE_FETCH=1 to allow private addresses)'
  return new AddressRefusedError(`${subject}${verdict.reason}${hint}`, verdict.metadata ?? false)
}

/** The IPv4 addresses an IPv6 address carries in the standard embeddings (mapped, translated, compatible, NAT64, 6to4, Teredo). */
function embeddedIPv4(ip: Address): ipaddr.IPv4[] {
  if (ip.kind() === 'ipv4') return []
  const v6 = ip as ipaddr.IPv6
  const p = v6.parts
  const v4 = (hi: number, lo: number) => new ipaddr.IPv4([hi >> 8, hi & 0xff, lo >> 8, lo & 0xff])
  const range = v6.range()
  if (range === 'ipv4Mapped') return [v6.toIPv4Address()]
  if (range === 'rfc6145' || isIPv4Compatible(v6) || v6.match(NAT64_WELL_KNOWN)) return [v4(p[6], p[7])]
  // 64:ff9b:1::/48 (RFC 8215) embeds after a /48 (bits 48-63, 72-87) or, with a longer prefix, in the last 32 bits.
  if (range === 'rfc6052') return [new ipaddr.IPv4([p[3] >> 8, p[3] & 0xff, p[4] & 0xff, p[5] >> 8]), v4(p[6], p[7])]
  if (range === '6to4') return [v4(p[1], p[2])]
  // Teredo: the server address, and the client address stored inverted.
  if (range === 'teredo') return [v4(p[2], p[3]), v4(p[6] ^ 0xffff, p[7] ^ 0xffff)]
  return []
}

/** ::a.b.c.d (deprecated by RFC 4291); :: and ::1 have ranges of their own. */
function isIPv4Compatible(v6: ipaddr.IPv6): boolean {
  return v6.parts.slice(0, 6).every((part) => part === 0) && (v6.parts[6] !== 0 || v6.parts[7] > 1)
}
