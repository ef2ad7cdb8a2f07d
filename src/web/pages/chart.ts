import type {ChartData} from '../data.js'
import {formatCost} from '../format.js'
import {html, type Html} from '../html.js'

/**
 * The last hour at a glance, drawn on the server as SVG (no chart library, no
 * script): tasks completed per minute and dollars per minute, one stacked bar
 * per minute, a colour per stage. Colours are CSS classes (series-N), since
 * the CSP allows no inline style.
 */
export function chart(d: ChartData): Html {
  return html`<h2>Last hour, by stage</h2>
    <div class="charts">
      ${panel('Tasks completed per minute', d, d.completions, (v) => String(Math.round(v)))} ${panel('$ per minute', d, d.spend, (v) => formatCost(v))}
    </div>
    <ul class="legend">
      ${d.series.map(
        (s, i) =>
          html`<li>
            <svg class="swatch" viewBox="0 0 10 10" aria-hidden="true"><rect class="series-${i}" width="10" height="10" /></svg>${s}
          </li>`,
      )}
    </ul>`
}

const W = 600
const H = 170
const LEFT = 56
const TOP = 10
const BOTTOM = 20

function panel(title: string, d: ChartData, points: ChartData['completions'], format: (v: number) => string): Html {
  const stacks = Array.from({length: d.minutes}, () => d.series.map(() => 0))
  for (const p of points) {
    const i = d.series.indexOf(p.series)
    if (i >= 0 && p.ago >= 0 && p.ago < d.minutes) stacks[p.ago][i] += p.value
  }

  const totals = stacks.map((s) => s.reduce((a, b) => a + b, 0))
  const sum = totals.reduce((a, b) => a + b, 0)
  const top = niceCeiling(Math.max(0, ...totals))
  const plotH = H - TOP - BOTTOM
  const barW = (W - LEFT) / d.minutes
  const bars: Html[] = []
  for (let ago = 0; ago < d.minutes; ago++) {
    const x = LEFT + (d.minutes - 1 - ago) * barW
    let y = H - BOTTOM
    stacks[ago].forEach((value, i) => {
      if (value <= 0) return
      const h = (value / top) * plotH
      y -= h
      const when = ago === 0 ? 'this minute' : `${ago} min ago`
      bars.push(
        html`<rect class="series-${i}" x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${Math.max(1, barW - 1).toFixed(1)}" height="${h.toFixed(1)}"
          ><title>${d.series[i]}: ${format(value)}, ${when}</title></rect
        >`,
      )
    })
  }

  return html`<figure class="chart">
    <figcaption>${title} <span class="total">(${format(sum)} in the last hour)</span></figcaption>
    <svg viewBox="0 0 ${W} ${H}" role="img" aria-label="${title}">
      <line class="axis" x1="${LEFT}" y1="${H - BOTTOM}" x2="${W}" y2="${H - BOTTOM}" />
      <line class="axis" x1="${LEFT}" y1="${TOP}" x2="${LEFT}" y2="${H - BOTTOM}" />
      <line class="grid" x1="${LEFT}" y1="${TOP}" x2="${W}" y2="${TOP}" />
      <text class="label" x="${LEFT - 4}" y="${TOP + 4}" text-anchor="end">${format(top)}</text>
      <text class="label" x="${LEFT - 4}" y="${H - BOTTOM}" text-anchor="end">${format(0)}</text>
      <text class="label" x="${LEFT}" y="${H - 4}">${d.minutes} min ago</text>
      <text class="label" x="${W}" y="${H - 4}" text-anchor="end">now</text>
      ${bars}
    </svg>
  </figure>`
}

/** A round number at or above `v` (1, 2 or 5 times a power of ten) for the top of the axis. */
export function niceCeiling(v: number): number {
  if (!(v > 0)) return 1
  const p = 10 ** Math.floor(Math.log10(v))
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p
  return 10 * p
}
