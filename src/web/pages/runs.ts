import type {RunStatus} from '../../db/schema.js'
import {shownStatus} from '../../pipeline/pause.js'
import {LIMITS, RUN_STATUSES, type RunsData, runsKey} from '../data.js'
import {formatAge, formatCriteria, formatRunCost} from '../format.js'
import {html} from '../html.js'
import {region, type Regions} from './layout.js'
import {pager, stageBars, statusBadge, table} from './parts.js'
import type {View} from './view.js'

/** Runs: every run (newest first, a page of LIMITS.runs at a time) with its stage bars, counts, cost and age; filtered by status. */
export function runsView(status: RunStatus | null, page = 1): View {
  const key = runsKey(status, page)
  return {
    key,
    title: status ? `Runs: ${status.replace('_', ' ')}` : 'Runs',
    sources: [key],
    live: `/events?page=runs${status ? `&status=${status}` : ''}${page > 1 ? `&p=${page}` : ''}`,
    regions: (data) => regions(data(key) as RunsData),
    page: (r) =>
      html`<h1>Runs</h1>
        ${region('runs-filter', r)} ${region('runs-table', r)}`,
    nav: 'runs',
  }
}

function regions(d: RunsData): Regions {
  const all = Object.values(d.counts).reduce((a, b) => a + b, 0)
  const filter = html`<nav class="filters" aria-label="filter by status">
    <a href="/runs" class="${d.status === null ? 'here' : ''}">all (${all})</a>
    ${RUN_STATUSES.map((s) => html`<a href="/runs?status=${s}" class="${d.status === s ? 'here' : ''}">${s.replace('_', ' ')} (${d.counts[s] ?? 0})</a>`)}
  </nav>`
  const rows = d.runs.map(
    (r) =>
      html`<tr data-run="${r.id}">
        <td><a href="/runs/${r.id}">#${r.id}</a></td>
        <td>${statusBadge(shownStatus(r.status, r.paused))}</td>
        <td class="criteria">${formatCriteria(r.criteria)}</td>
        <td class="bars">${stageBars(r.percent)}</td>
        <td class="num">${r.companies.total} found<br />${r.companies.selected}/${r.quantity} selected</td>
        <td class="num">${r.contacts}</td>
        <td class="num">${formatRunCost(r.costUsd, r.simulated)}</td>
        <td class="num">${formatAge(r.ageS)}</td>
      </tr>`,
  )
  const empty = d.status ? `No ${d.status.replace('_', ' ')} runs.` : 'No runs yet: start one with rvx orchestrate.'
  const total = d.status ? (d.counts[d.status] ?? 0) : all
  const pages = pager({
    total,
    page: d.page,
    size: LIMITS.runs,
    href: (p) => `/runs?${d.status ? `status=${d.status}&` : ''}p=${p}`,
    label: 'runs',
  })
  return {
    'runs-filter': filter,
    'runs-table': html`${table(['run', 'status', 'criteria', 'progress', 'companies', 'contacts', 'cost', 'age'], rows, empty, 'runs')} ${pages}`,
  }
}
