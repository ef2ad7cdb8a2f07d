import type {Lead, LeadContact} from '../../pipeline/leads.js'
import type {Evidence} from '../../pipeline/provider.js'
import {STAGES} from '../../pipeline/stages/index.js'
import {verdictLabel} from '../../pipeline/verification.js'
import {dropReason} from '../../pipeline/drops.js'
import {etaSeconds} from '../../pipeline/eta.js'
import {shownStatus} from '../../pipeline/pause.js'
import {LIMITS, type RunData, type RunPages, runKey} from '../data.js'
import {formatAge, formatCost, formatCriteria, formatRunCost, formatTime, stageWord} from '../format.js'
import {externalLink, html, type Html} from '../html.js'
import {region, type Regions} from './layout.js'
import {pager, stageBars, statusBadge, table} from './parts.js'
import type {View} from './view.js'

/**
 * Run: the requester's page. Where the list is (header, stage bars, ETA),
 * why each company was picked (its evidence), who to call (contacts), why
 * others were not, what went wrong, and what to decide.
 *
 * Each company's verdicts (per criterion: match / mismatch / unknown, who
 * decided, the page and quote that show it) sit under its reasons; each
 * contact says whether its email's domain takes mail.
 */
export function runView(id: number, pages: RunPages = {selected: 1, disqualified: 1}): View {
  const key = runKey(id, pages)
  const paged = pages.selected > 1 || pages.disqualified > 1 ? `&selected=${pages.selected}&disqualified=${pages.disqualified}` : ''
  return {
    key,
    title: `Run ${id}`,
    nav: 'runs',
    sources: [key],
    live: `/events?page=run&id=${id}${paged}`,
    regions: (data) => regions(data(key) as RunData),
    page: (r) =>
      html`${region('run-header', r)} ${region('run-decision', r)}
        <section class="downloads" aria-label="downloads">
          <span>Download (the same files as <code>rvx runs export ${id}</code>):</span>
          <a class="button" href="/runs/${id}/companies.csv" download>companies.csv</a>
          <a class="button" href="/runs/${id}/contacts.csv" download>contacts.csv</a>
          <a class="button" href="/runs/${id}/companies.json" download>companies.json</a>
          <a class="button" href="/runs/${id}/contacts.json" download>contacts.json</a>
        </section>
        ${region('run-leads', r)} ${region('run-disqualified', r)} ${region('run-activity', r)}`,
  }
}

function regions(d: RunData): Regions {
  return {
    'run-header': header(d),
    'run-decision': decision(d),
    'run-leads': leads(d),
    'run-disqualified': disqualified(d),
    'run-activity': activity(d),
  }
}

function header(d: RunData): Html {
  const s = d.summary
  const p = d.progress
  const eta = etaSeconds(p, s.elapsedS)
  // The run's stages: those it has tasks of (an opt-in stage it did not ask for has none).
  const notes = Object.fromEntries(
    STAGES.filter((stage) => p.tasks[stage.kind]).map((stage) => {
      const t = p.tasks[stage.kind]
      return [stage.name, stage.describe(p, t.queued + t.running)]
    }),
  )
  return html`<h1>Run #${s.id} ${statusBadge(shownStatus(s.status, p.pausedAt !== null))}</h1>
    <dl class="facts">
      <dt>criteria</dt>
      <dd class="criteria">${formatCriteria(s.criteria)}</dd>
      <dt>target</dt>
      <dd>
        <span class="selected-count">${s.companies.selected}</span> of ${s.quantity} selected (${s.companies.qualified + s.companies.selected} qualified,
        ${s.companies.disqualified} disqualified, ${s.companies.total} found)
      </dd>
      <dt>contacts</dt>
      <dd>${s.contacts}${s.contactsDropped > 0 ? ` (${s.contactsDropped} more found for companies dropped later)` : ''}</dd>
      <dt>stage</dt>
      <dd>${s.stage}</dd>
      <dt>cost</dt>
      <dd>
        ${formatRunCost(s.costUsd, s.simulated)} · ${p.usage.calls} model calls (${p.usage.inputTokens} in / ${p.usage.outputTokens} out
        tokens)${p.usage.rateLimited ? ` · ${p.usage.rateLimited} rate-limited, ${p.usage.quotaWaitS} s waiting for quota` : ''} · provider ${s.provider}
      </dd>
      <dt>$ per lead</dt>
      <dd>${s.costPerLead === null ? '-' : formatCost(s.costPerLead)}</dd>
      <dt>${s.finishedAt ? 'took' : 'time so far'}</dt>
      <dd>${formatAge(s.elapsedS)} (started ${formatTime(s.createdAt)}${s.finishedAt ? html`, ended ${formatTime(s.finishedAt)}` : ''})</dd>
      <dt>ETA</dt>
      <dd>${eta === null ? (s.status === 'running' && !p.pausedAt ? 'no estimate yet' : '-') : html`about ${formatAge(eta)} at the pace so far`}</dd>
      ${
        s.notes
          ? html`<dt>notes</dt>
              <dd class="notes">${s.notes}</dd>`
          : ''
      }
    </dl>
    ${stageBars(s.percent, notes)}`
}

/** POSIX shell quoting, so a command can be pasted whatever the criteria hold. */
const shellQuote = (text: string) => `'${text.replaceAll("'", `'\\''`)}'`

function decision(d: RunData): Html {
  const {id, status, criteria} = d.summary
  if (status === 'needs_decision') {
    return html`<div class="decision">
      <h2>This run needs a decision</h2>
      <p>Pick one and run it in a terminal next to the fleet:</p>
      <ul class="commands">
        <li>Accept what there is: <code>rvx runs accept ${id}</code></li>
        <li>Widen the criteria and go on (edit the JSON): <code>rvx runs resume ${id} --criteria ${shellQuote(JSON.stringify(criteria))}</code></li>
        <li>Drop it: <code>rvx runs cancel ${id}</code></li>
      </ul>
    </div>`
  }

  if (status === 'failed') {
    return html`<div class="decision">
      <h2>This run failed</h2>
      <p>Fix the cause in the notes above, then go on: <code>rvx runs resume ${id}</code> (or drop it: <code>rvx runs cancel ${id}</code>).</p>
    </div>`
  }

  return html``
}

/** A run page's address showing these pages of its company lists. */
const runHref = (id: number, pages: RunPages) => `/runs/${id}?selected=${pages.selected}&disqualified=${pages.disqualified}`

/** The selected companies (or, while none is, the best qualified) as a compact table, a page at a time. */
function leads(d: RunData): Html {
  const total = d.leadsAreSelected ? d.summary.companies.selected : d.summary.companies.qualified
  if (total === 0)
    return html`<h2>Selected companies</h2>
      <p class="empty">None qualified yet.</p>`
  const title = d.leadsAreSelected ? `Selected companies (${total})` : `Qualified so far (${total})`
  const size = d.leadsAreSelected ? LIMITS.selected : LIMITS.qualified
  const pages = pager({total, page: d.pages.selected, size, href: (p) => runHref(d.summary.id, {...d.pages, selected: p}), label: 'companies'})
  return html`<h2>${title}</h2>
    ${pages}
    <div class="scroll">
      <table class="leads">
        <thead>
          <tr>
            ${['company', 'domain', 'where', 'PMS', 'units', 'ICP', 'confidence', 'contacts'].map((h) => html`<th>${h}</th>`)}
          </tr>
        </thead>
        ${d.leads.map((l) => leadRows(l, d.contacts.get(l.id) ?? []))}
      </table>
    </div>
    ${pages}`
}

/**
 * One company: a row of what it is, and below it a row that expands to how it
 * was judged (each verdict with its evidence, once) and its contacts.
 */
function leadRows(l: Lead, contacts: LeadContact[]): Html {
  const where = [l.city, l.state].filter(Boolean).join(', ')
  return html`<tbody class="lead" data-company="${l.id}">
    <tr class="lead-row">
      <td class="company-name">${l.name}</td>
      <td class="domain">${externalLink(l.website ?? `https://${l.domain}`, l.domain)}</td>
      <td>${where || '-'}</td>
      <td>${l.pms ?? '-'}</td>
      <td class="num">${l.unitsEstimate ?? '-'}</td>
      <td class="num icp">${l.icpScore ?? '-'}${l.icpTier ? ` ${l.icpTier}` : ''}</td>
      <td>${l.confidence ?? '-'}</td>
      <td class="num">${contacts.length}</td>
    </tr>
    <tr class="lead-more">
      <td colspan="8">
        <details data-key="lead-${l.id}">
          <summary>verdicts and evidence, ${contacts.length} contact${contacts.length === 1 ? '' : 's'}</summary>
          ${notes(l)} ${verdicts(l)} ${stageColumns(l)}
          ${table(
            ['name', 'title', 'tier', 'email', 'email status', 'phone', 'LinkedIn', 'confidence', 'sources'],
            contacts.map(
              (k) =>
                html`<tr>
                  <td>${k.fullName}</td>
                  <td>${k.title ?? '-'}</td>
                  <td class="num">${k.tier ?? '-'}</td>
                  <td>${k.email ?? '-'}</td>
                  <td>${emailStatus(k)}</td>
                  <td>${k.phone ?? '-'}</td>
                  <td>${k.linkedinUrl ? externalLink(k.linkedinUrl, 'profile') : '-'}</td>
                  <td>${k.confidence ?? '-'}</td>
                  <td>${sourceLinks(k.sources)}</td>
                </tr>`,
            ),
            'No contacts found yet.',
            'contacts',
          )}
        </details>
      </td>
    </tr>
  </tbody>`
}

/** The researcher's reasons that the verdicts do not already say (each verdict's own line is in the verdicts table). */
function notes(l: Lead): Html {
  const keys = new Set(l.verdicts.map((v) => v.key))
  const own = l.reasons.filter((r) => !keys.has(r.slice(0, r.indexOf(':'))))
  if (own.length === 0) return html``
  return html`<ul class="reasons">
    ${own.map((r) => html`<li>${r}</li>`)}
  </ul>`
}

/** Per criterion (and the site check): the verdict, who decided (a deterministic check overrules the model), and the evidence: page and quote. */
function verdicts(lead: Lead): Html {
  if (lead.verdicts.length === 0) return html``
  return html`<div class="scroll">
    <table class="verdicts">
      <tbody>
        ${lead.verdicts.map(
          (v) =>
            html`<tr data-verdict="${v.key}">
              <th>${verdictLabel(v.key)}</th>
              <td><span class="badge verdict-${v.verdict}">${v.verdict}</span></td>
              <td class="by">${v.by === 'check' ? 'checked' : 'model'}</td>
              <td>${evidenceItems(v.evidence, v.note)}</td>
            </tr>`,
        )}
      </tbody>
    </table>
  </div>`
}

/** Each page with its quote, and a note (why a check decided as it did). */
function evidenceItems(evidence: Evidence[], note: string | null): Html {
  return html`${evidence.map((e) => html`<div class="evidence-item">${externalLink(e.url)} ${e.quote ? html`<q>${e.quote}</q>` : ''}</div>`)}
  ${note ? html`<div class="note">${note}</div>` : ''}`
}

/** What the run's later stages found (phone, LinkedIn page, ...): the value, and the page and quote that show it. */
function stageColumns(lead: Lead): Html {
  if (lead.stageColumns.length === 0) return html``
  return html`<div class="scroll">
    <table class="stage-facts">
      <tbody>
        ${lead.stageColumns.map(
          (c) =>
            html`<tr data-column="${c.name}">
              <th>${c.label}</th>
              <td class="fact-value">${c.value ?? '-'}</td>
              <td>${evidenceItems(c.evidence, c.note)}</td>
            </tr>`,
        )}
      </tbody>
    </table>
  </div>`
}

const EMAIL_STATUS: Record<string, string> = {valid_domain: 'domain takes mail', no_mx: 'no mail server', invalid: 'invalid', unchecked: 'not checked'}

/** Whether the email's domain takes mail (MX), as contact research found it. */
function emailStatus(contact: LeadContact): Html {
  if (!contact.emailStatus) return html`-`
  return html`<span class="badge email-${contact.emailStatus}">${EMAIL_STATUS[contact.emailStatus] ?? contact.emailStatus}</span>`
}

function sourceLinks(sources: string[]): Html {
  if (sources.length === 0) return html`<span class="empty">none</span>`
  return html`<ul class="links">
    ${sources.map((s) => html`<li>${externalLink(s)}</li>`)}
  </ul>`
}

function disqualified(d: RunData): Html {
  const rows = d.disqualified.map(
    (l) =>
      html`<tr data-company="${l.id}">
        <td class="company-name">${l.name}</td>
        <td>${externalLink(l.website ?? `https://${l.domain}`, l.domain)}</td>
        <td class="num">${l.icpScore ?? '-'}</td>
        <td class="kept-out">
          ${l.disqualifiedBy.length > 0 ? l.disqualifiedBy.map((k) => dropReason(k, l.verdicts.find((v) => v.key === k)?.verdict ?? null)).join(', ') : '-'}
        </td>
        <td>${l.reasons.length > 0 ? l.reasons.join('; ') : '-'}</td>
        <td>${sourceLinks(l.sources)}</td>
      </tr>`,
  )
  const pages = pager({
    total: d.summary.companies.disqualified,
    page: d.pages.disqualified,
    size: LIMITS.disqualified,
    href: (p) => runHref(d.summary.id, {...d.pages, disqualified: p}),
    label: 'disqualified',
  })
  const drops = d.progress.drops.map(
    (r) =>
      html`<tr data-reason="${r.key}">
        <td>${r.reason}</td>
        <td class="num">${r.count}</td>
      </tr>`,
  )
  return html`<h2>Dropped, by reason</h2>
    ${table(['reason', 'companies'], drops, 'None so far.', 'drops')}
    <h2>Disqualified (${d.summary.companies.disqualified})</h2>
    ${pages} ${table(['company', 'domain', 'ICP', 'kept out by', 'why', 'sources'], rows, 'None so far.', 'disqualified')} ${pages}`
}

const BAD_EVENTS = new Set(['failed', 'quarantined', 'fenced_out', 'retry_scheduled', 'requeued_after_death', 'requeued_lease_expired'])

function activity(d: RunData): Html {
  const tasks = STAGES.filter((s) => d.progress.tasks[s.kind]).map((s) => {
    const t = d.progress.tasks[s.kind]
    return html`<tr>
      <td>${s.name}</td>
      <td class="num">${t.completed}</td>
      <td class="num">${t.queued}</td>
      <td class="num">${t.running}</td>
      <td class="num">${t.failed}</td>
      <td class="num">${t.quarantined}</td>
      <td class="num">${t.canceled}</td>
    </tr>`
  })
  const problems = d.problems.map(
    (t) =>
      html`<tr class="bad">
        <td class="num">${t.id}</td>
        <td>${stageWord(t.kind)}</td>
        <td>${t.status}</td>
        <td class="num">${t.attempts}</td>
        <td class="num">${t.crashCount}</td>
        <td class="error">${t.lastError ?? '-'}</td>
      </tr>`,
  )
  const events = d.events.map(
    (e) =>
      html`<tr class="${BAD_EVENTS.has(e.event) ? 'bad' : e.event === 'snoozed' ? 'warn' : ''}">
        <td>${formatTime(e.at)}</td>
        <td class="num">${e.taskId}</td>
        <td>${stageWord(e.kind)}</td>
        <td>${e.event}</td>
        <td>${e.workerId ?? '-'}</td>
        <td class="error">${e.reason ?? ''}</td>
      </tr>`,
  )
  return html`<h2>Tasks</h2>
    ${table(['stage', 'done', 'queued', 'running', 'failed', 'quarantined', 'canceled'], tasks, '')}
    <h2>Errors</h2>
    ${table(['task', 'stage', 'status', 'attempts', 'crashes', 'last error'], problems, 'No failed, quarantined or retrying tasks.', 'problems')}
    <h2>Recent task events</h2>
    ${table(['at', 'task', 'stage', 'event', 'worker', 'reason'], events, 'No task events yet.', 'events')}`
}
