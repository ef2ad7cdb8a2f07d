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
  // Scaled to where the data is: from the oldest minute with any (at least MIN_SPAN back) to now, not always the hour.
  const oldest = Math.max(-1, ...[...d.completions, ...d.spend].filter((p) => p.value > 0 && p.ago < d.minutes).map((p) => p.ago))
  const span = Math.min(d.minutes, Math.max(MIN_SPAN, oldest + 1))
  return html`<h2>Last hour, by stage</h2>
    <div class="charts">
      ${panel('Tasks completed per minute', d, span, d.completions, (v) => String(Math.round(v)))}
      ${panel('$ per minute', d, span, d.spend, (v) => formatCost(v))}
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

/** The shortest stretch a chart shows (minutes): a few minutes of data are not drawn as one wide bar. */
const MIN_SPAN = 10
const W = 600
const H = 170
const LEFT = 56
const TOP = 10
const BOTTOM = 20

/** One panel over the last `minutes` (what the hour holds before them is in its total, not drawn). */
function panel(title: string, d: ChartData, minutes: number, points: ChartData['completions'], format: (v: number) => string): Html {
  const stacks = Array.from({length: minutes}, () => d.series.map(() => 0))
  let sum = 0
  for (const p of points) {
    const i = d.series.indexOf(p.series)
    if (i < 0 || p.ago < 0 || p.ago >= d.minutes) continue
    sum += p.value
    if (p.ago < minutes) stacks[p.ago][i] += p.value
  }

  const totals = stacks.map((s) => s.reduce((a, b) => a + b, 0))
  const top = niceCeiling(Math.max(0, ...totals))
  const plotH = H - TOP - BOTTOM
  const barW = (W - LEFT) / minutes
  const bars: Html[] = []
  for (let ago = 0; ago < minutes; ago++) {
    const x = LEFT + (minutes - 1 - ago) * barW
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
      <text class="label" x="${LEFT}" y="${H - 4}">${minutes} min ago</text>
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
