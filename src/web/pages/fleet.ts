import {CHART_KEY, type ChartData, FLEET_KEY, type FleetData} from '../data.js'
import {formatAge, formatGb, stageWord, workerStages} from '../format.js'
import {html} from '../html.js'
import {chart} from './chart.js'
import {region, type Regions} from './layout.js'
import {stageBars, table} from './parts.js'
import type {View} from './view.js'

/**
 * Fleet: the operator's page. Is the fleet healthy (workers by stage, each
 * worker's heartbeat and load, dead ones marked), what is stuck (the queue,
 * open alerts), what is it doing (runs in progress, the last hour's chart).
 * The same snapshot as `rvx workers status` (monitor/fleet.ts).
 */
export function fleetView(): View {
  return {
    key: 'fleet',
    title: 'Fleet',
    nav: 'fleet',
    sources: [FLEET_KEY, CHART_KEY],
    live: '/events?page=fleet',
    regions: (data) => ({...regions(data(FLEET_KEY) as FleetData), 'fleet-chart': chart(data(CHART_KEY) as ChartData)}),
    page: (r) =>
      html`<h1>Fleet</h1>
        ${region('fleet-alerts', r)} ${region('fleet-chart', r)} ${region('fleet-types', r)} ${region('fleet-workers', r)} ${region('fleet-queue', r)}
        ${region('fleet-runs', r)}`,
  }
}

function regions(d: FleetData): Regions {
  const s = d.fleet
  const types = s.fleet.map(
    (f) =>
      html`<tr>
        <td>${stageWord(f.type)}</td>
        <td class="num">${f.starting + f.idle + f.busy + f.draining}</td>
        <td class="num">${f.idle}</td>
        <td class="num">${f.busy}</td>
        <td class="num">${f.draining}</td>
        <td class="num ${f.dead > 0 ? 'bad' : ''}">${f.dead}</td>
        <td class="num">${f.doneLast5m}</td>
        <td class="num">${f.failedLast5m}</td>
      </tr>`,
  )
  const workers = s.workers.map((w) => {
    const m = w.resourceMetrics
    const task = w.currentTasks[0]
    const gpu = typeof m.gpu_type === 'string' && m.gpu_type !== 'none' ? `${m.gpu_type} ${formatGb(m.gpu_vram_available_gb)} free` : '-'
    return html`<tr class="worker ${w.status === 'dead' ? 'dead' : ''}" data-worker="${w.id}" data-status="${w.status}">
      <td>${w.id}</td>
      <td>${workerStages(w.types)}</td>
      <td>${w.pool}</td>
      <td>${w.host} (pid ${w.pid})</td>
      <td><span class="badge worker-${w.status}">${w.status}</span></td>
      <td class="num">${formatAge(w.heartbeatAgeS)} ago${w.heartbeatLatencyMs === null ? '' : ` (${w.heartbeatLatencyMs} ms)`}</td>
      <td class="num">${typeof m.cpu_percent === 'number' ? `${m.cpu_percent}%` : '-'}</td>
      <td class="num">${formatGb(m.memory_available_gb)} free of ${formatGb(m.memory_total_gb)}</td>
      <td>${gpu}</td>
      <td>
        ${task ? `${stageWord(task.kind)}#${task.id} for ${formatAge(task.elapsedS)}${w.currentTasks.length > 1 ? ` +${w.currentTasks.length - 1} more` : ''}` : '-'}
      </td>
      <td class="num">${w.tasksDone}/${w.tasksFailed}</td>
    </tr>`
  })
  const queue = s.queue.map(
    (q) =>
      html`<tr>
        <td>${stageWord(q.kind)}</td>
        <td class="num">${q.queued}</td>
        <td class="num">${q.running}</td>
        <td class="num ${q.failed > 0 ? 'bad' : ''}">${q.failed}</td>
        <td class="num ${q.quarantined > 0 ? 'bad' : ''}">${q.quarantined}</td>
        <td class="num">${q.oldestQueuedAgeS === null ? '-' : formatAge(q.oldestQueuedAgeS)}</td>
        <td class="num">${q.retriesWaiting}</td>
      </tr>`,
  )
  const runs = s.runs.map(
    (r) =>
      html`<tr>
        <td><a href="/runs/${r.id}">#${r.id}</a></td>
        <td>${r.stage}</td>
        <td class="num">${r.quantity}</td>
        <td class="bars">${stageBars(r.percent)}</td>
      </tr>`,
  )
  const alerts = d.alerts.map(
    (a) =>
      html`<li class="alert severity-${a.severity}">
        <span class="badge">${a.severity}</span> ${a.subject}
        <span class="age">${formatAge(a.ageS)} ago${a.runId !== null ? html` · <a href="/runs/${a.runId}">run #${a.runId}</a>` : ''}</span>
      </li>`,
  )
  const dead = s.workers.filter((w) => w.status === 'dead').length
  return {
    'fleet-alerts': html`<h2>Open alerts (${d.alerts.length})</h2>
      ${
        alerts.length === 0
          ? html`<p class="empty">None.</p>`
          : html`<ul class="alerts">
              ${alerts}
            </ul>`
      }`,
    'fleet-types': html`<h2>Workers by stage</h2>
      ${table(['stage', 'active', 'idle', 'busy', 'draining', 'dead', 'done 5m', 'failed 5m'], types, 'No workers: start some with rvx worker all.')}`,
    'fleet-workers': html`<h2>Workers (${s.workers.length}${dead > 0 ? html`, <span class="bad">${dead} dead</span>` : ''})</h2>
      ${table(['worker', 'stages', 'pool', 'host', 'status', 'heartbeat (round trip)', 'cpu', 'memory', 'gpu', 'current task', 'done/failed'], workers, 'None.', 'workers')}`,
    'fleet-queue': html`<h2>Queue</h2>
      ${table(['stage', 'queued', 'running', 'failed', 'quarantined', 'oldest queued', 'retries waiting'], queue, 'Empty.')}`,
    'fleet-runs': html`<h2>Runs in progress</h2>
      ${table(['run', 'stage', 'quantity', 'progress'], runs, 'None.')}`,
  }
}
