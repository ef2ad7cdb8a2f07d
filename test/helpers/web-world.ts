import http from 'node:http'
import type {AddressInfo} from 'node:net'

import {FakeDns} from './dns-server.js'

/** A page: HTML, or a body served with its own content type (a PDF, an image). */
export type Page = string | {type: string; body: string | Buffer}

/**
 * A small web of company sites on 127.0.0.1 for verification tests: one HTTP
 * server answers for every domain by its Host header, and a DNS server on
 * 127.0.0.1 resolves those domains to it (and says which have MX records).
 * Point rvx at it with RVX_DNS_SERVER=<dns.address> and RVX_ALLOW_PRIVATE_FETCH=1,
 * and give companies websites like http://<domain>:<port>/ (url()).
 */
export class WebWorld {
  readonly dns = new FakeDns()
  /** Every request: host and path. */
  readonly requests: Array<{host: string; path: string}> = []
  private readonly sites = new Map<string, Map<string, Page>>()
  private server?: http.Server
  port = 0

  async start(): Promise<this> {
    await this.dns.start()
    this.server = http.createServer((req, res) => {
      const host = (req.headers.host ?? '').replace(/:\d+$/, '').toLowerCase()
      const path = (req.url ?? '/').split('?')[0]
      this.requests.push({host, path})
      const page = this.sites.get(host)?.get(path)
      if (page === undefined) return res.writeHead(404, {'content-type': 'text/html'}).end('<html><body>Not found</body></html>')
      if (typeof page === 'string') return res.writeHead(200, {'content-type': 'text/html; charset=utf-8'}).end(page)
      res.writeHead(200, {'content-type': page.type}).end(page.body)
    })
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve))
    this.port = (this.server.address() as AddressInfo).port
    return this
  }

  /** A site: its pages by path; its domain resolves here, and accepts mail unless `mx` is false. */
  site(domain: string, pages: Record<string, Page>, options: {mx?: boolean} = {}): this {
    this.sites.set(domain, new Map(Object.entries(pages)))
    this.dns.set(domain, 'A', ['127.0.0.1'])
    this.dns.set(domain, 'MX', options.mx === false ? [] : [`10 mx.${domain}`])
    return this
  }

  /** The URL of a page of a site here. */
  url(domain: string, path = '/'): string {
    return `http://${domain}:${this.port}${path}`
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server?.close(() => resolve()))
    await this.dns.stop()
  }
}

/** A company home page: optional portal link, badge, address (footer text or JSON-LD), blog link, extra body. */
export function homePage(o: {
  name: string
  portal?: string
  badge?: {vendor: string; url: string}
  footer?: string
  jsonLd?: Record<string, string>
  body?: string
  links?: string
}): string {
  const ld = o.jsonLd
    ? `<script type="application/ld+json">${JSON.stringify({'@context': 'https://schema.org', '@type': 'Organization', name: o.name, address: {'@type': 'PostalAddress', ...o.jsonLd}})}</script>`
    : ''
  return `<html><head><title>${o.name}</title>${ld}</head><body>
<nav><a href="/about">About</a> ${o.links ?? ''}</nav>
<h1>${o.name}</h1>${o.body ?? ''}
${o.portal ? `<p><a href="${o.portal}">Pay Rent / Resident Login</a></p>` : ''}
${o.badge ? `<p>Powered by <a href="${o.badge.url}">${o.badge.vendor}</a></p>` : ''}
<footer>${o.footer ?? ''}</footer></body></html>`
}
