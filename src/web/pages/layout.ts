import {html, type Html} from '../html.js'

export type Regions = Record<string, Html>

/** A live part of a page: the element the SSE updates replace by id. */
export function region(id: string, regions: Regions): Html {
  return html`<section id="${id}" class="region">${regions[id] ?? ''}</section>`
}

/**
 * The page around the regions. No inline script or style anywhere (the CSP
 * allows neither): behaviour comes from /assets/live.js, which follows the
 * stream named in data-live.
 */
export function layout(o: {title: string; nav: 'runs' | 'fleet'; live: string; body: Html}): Html {
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>${o.title} · rvx</title>
        <link rel="icon" href="/assets/favicon.svg" type="image/svg+xml" />
        <link rel="stylesheet" href="/assets/dashboard.css" />
        <script src="/assets/live.js" defer></script>
      </head>
      <body data-live="${o.live}">
        <header class="top">
          <strong class="brand">rvx</strong>
          <nav>
            <a href="/runs" class="${o.nav === 'runs' ? 'here' : ''}">Runs</a>
            <a href="/fleet" class="${o.nav === 'fleet' ? 'here' : ''}">Fleet</a>
          </nav>
          <span id="live-status" class="live-status">live updates start in a moment</span>
        </header>
        <main>${o.body}</main>
      </body>
    </html>`
}

/** The line in the header that says when the page last heard from the server. */
export function liveStatus(at: Date, error?: string): Html {
  const time = at.toISOString().slice(11, 19)
  return error ? html`<span class="bad">${error} (retrying; as of ${time} UTC)</span>` : html`<span class="ok">live · updated ${time} UTC</span>`
}

/** A page with only a message (not found, database unavailable). */
export function messagePage(title: string, message: string): Html {
  return layout({
    title,
    nav: 'runs',
    live: '',
    body: html`<h1>${title}</h1>
      <p class="message">${message}</p>`,
  })
}
