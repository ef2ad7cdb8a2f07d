import {html as honoHtml} from 'hono/html'
import type {HtmlEscapedString} from 'hono/utils/html'

/** HTML text that is safe to send: built by `html`, so every value in it was escaped. */
export type Html = HtmlEscapedString

type Part = string | number | boolean | null | undefined | Html | Part[]

/**
 * The one way pages are written: a tagged template (hono's) that escapes
 * every interpolated string (& < > " '), keeps `html` parts as they are and
 * joins arrays. Anything else is a programming error, not something to
 * stringify: a database row or a JSON value must be turned into text first.
 */
export function html(strings: TemplateStringsArray, ...values: Part[]): Html {
  for (const v of values) check(v)
  const out = honoHtml(strings, ...values)
  if (out instanceof Promise) throw new TypeError('html: a part of the template is asynchronous')
  return out
}

function check(v: Part): void {
  if (Array.isArray(v)) for (const x of v) check(x)
  else if (v !== null && typeof v === 'object' && !(v as {isEscaped?: unknown}).isEscaped) throw new TypeError('html: only text, numbers and html parts')
}

/**
 * A link target taken from a web page or a model: only an absolute http(s)
 * URL (never javascript:, data: or a relative path into the dashboard), else null.
 */
export function externalHref(url: string | null | undefined): string | null {
  if (!url) return null
  try {
    const u = new URL(url)
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.toString() : null
  } catch {
    return null
  }
}

/** An external link that gives the other site nothing (no opener, no referrer), or the text alone when the URL is not http(s). */
export function externalLink(url: string | null | undefined, text?: string): Html {
  const href = externalHref(url)
  const label = text ?? url ?? ''
  return href ? html`<a href="${href}" rel="noopener noreferrer nofollow" target="_blank">${label}</a>` : html`<span>${label}</span>`
}
