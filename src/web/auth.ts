import {createHash, createHmac, timingSafeEqual} from 'node:crypto'
import type {MiddlewareHandler} from 'hono'
import {getCookie, setCookie} from 'hono/cookie'
import ipaddr from 'ipaddr.js'

/**
 * Who may read the dashboard. With a token: a request carries it as
 * `Authorization: Bearer TOKEN`, or as the cookie that a one-time link
 * (`/?token=TOKEN`) sets, which browsers (and EventSource) then send by
 * themselves. The cookie holds a value derived from the token, not the
 * token; every comparison takes the same time whatever matches. Without a
 * token (loopback only): requests must name a loopback host, so a web page
 * elsewhere cannot read the dashboard by pointing a DNS name at 127.0.0.1.
 */

export const COOKIE = 'rvx_dashboard'

/** 127.0.0.0/8, ::1 (also IPv4-mapped) and localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase()
  if (h === 'localhost' || h.endsWith('.localhost')) return true
  return ipaddr.isValid(h) && ipaddr.process(h).range() === 'loopback'
}

/** The cookie's value for a token: useless anywhere else, and not the token itself. */
export function sessionValue(token: string): string {
  return createHmac('sha256', token).update('rvx dashboard session').digest('base64url')
}

/** Equal texts, compared in constant time (both hashed first, so lengths do not show either). */
export function sameSecret(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest()
  const b = createHash('sha256').update(expected).digest()
  return timingSafeEqual(a, b)
}

export function guard(token: string | undefined): MiddlewareHandler {
  const session = token ? sessionValue(token) : undefined
  return async (c, next) => {
    if (!token) {
      const host = hostOf(c.req.header('host') ?? '')
      if (!isLoopbackHost(host)) return c.text(`rvx dashboard: this server answers to localhost only (it has no token), not to ${host || 'no host'}\n`, 403)
      return next()
    }

    const link = c.req.query('token')
    if (link !== undefined) {
      if (!sameSecret(link, token)) return refuse(c)
      // Trade the link for a cookie, and take the token out of the address bar and history.
      setCookie(c, COOKIE, session!, {httpOnly: true, sameSite: 'Lax', path: '/'})
      const url = new URL(c.req.url)
      url.searchParams.delete('token')
      return c.redirect(url.pathname + url.search, 303)
    }

    const bearer = /^Bearer\s+(.+)$/i.exec(c.req.header('authorization') ?? '')?.[1]
    const cookie = getCookie(c, COOKIE)
    if ((bearer !== undefined && sameSecret(bearer.trim(), token)) || (cookie !== undefined && sameSecret(cookie, session!))) return next()
    return refuse(c)
  }
}

function refuse(c: Parameters<MiddlewareHandler>[0]): Response {
  c.header('WWW-Authenticate', 'Bearer realm="rvx dashboard"')
  return c.text('rvx dashboard: a token is required: open the link with ?token=YOUR_TOKEN once, or send Authorization: Bearer YOUR_TOKEN\n', 401)
}

/** "127.0.0.1:8080" -> "127.0.0.1", "[::1]:8080" -> "::1". */
function hostOf(header: string): string {
  const m = /^\[([^\]]+)\](?::\d+)?$/.exec(header) ?? /^([^:]+)(?::\d+)?$/.exec(header)
  return m ? m[1] : header
}
