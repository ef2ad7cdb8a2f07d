import {STAGES} from '../../pipeline/stages/index.js'
import type {RunStatus} from '../../db/schema.js'
import {html, type Html} from '../html.js'

/** Pieces several pages use. */

export function statusBadge(status: string): Html {
  return html`<span class="badge status-${status}">${status.replace('_', ' ')}</span>`
}

/** One bar per stage the run has (those in `percent`: an opt-in stage it did not ask for has none), in pipeline order. */
export function stageBars(percent: Record<string, number>, notes: Record<string, string> = {}): Html {
  return html`<div class="stages">
    ${STAGES.filter((s) => s.name in percent).map((s) => {
      const p = percent[s.name] ?? 0
      return html`<div class="stage" data-stage="${s.name}">
        <span class="stage-name">${s.name}</span>
        <progress max="100" value="${p}" title="${s.name}: ${p}%">${p}%</progress>
        <span class="stage-pct">${p}%</span>
        ${notes[s.name] ? html`<span class="stage-note">${notes[s.name]}</span>` : ''}
      </div>`
    })}
  </div>`
}

export function table(headers: string[], rows: Html[], empty: string, className = ''): Html {
  if (rows.length === 0) return html`<p class="empty">${empty}</p>`
  // Wrapped so that a table wider than a phone scrolls inside its box, not the page.
  return html`<div class="scroll">
    <table class="${className}">
      <thead>
        <tr>
          ${headers.map((h) => html`<th>${h}</th>`)}
        </tr>
      </thead>
      <tbody>
        ${rows}
      </tbody>
    </table>
  </div>`
}

export const isRunStatus = (s: string, statuses: readonly RunStatus[]): s is RunStatus => (statuses as readonly string[]).includes(s)

/**
 * Where a paged list is and the way to the pages beside it: "101-200 of 345
 * ‹ previous · next ›" (nothing when it all fits on one page). `href` gives a
 * page's address.
 */
export function pager(o: {total: number; page: number; size: number; href: (page: number) => string; label: string}): Html {
  if (o.total <= o.size && o.page <= 1) return html``
  const first = (o.page - 1) * o.size + 1
  const last = Math.min(o.total, o.page * o.size)
  const pages = Math.max(1, Math.ceil(o.total / o.size))
  return html`<nav class="pager" aria-label="${o.label} pages">
    <span class="pager-where">${first <= last ? `${first}-${last} of ${o.total}` : `page ${o.page} of ${pages}: nothing here`}</span>
    ${o.page > 1 ? html`<a rel="prev" href="${o.href(Math.min(o.page - 1, pages))}">‹ previous</a>` : ''}
    ${o.page < pages ? html`<a rel="next" href="${o.href(o.page + 1)}">next ›</a>` : ''}
  </nav>`
}
