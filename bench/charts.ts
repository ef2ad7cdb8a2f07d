/**
 * Line charts for bench results: an SVG built here (no charting library, no native build), rasterized to PNG by the
 * headless Chromium the browser tests use (test/helpers/browser.ts: Debian's chromium through playwright-core).
 */
import fs from 'node:fs'
import path from 'node:path'

import {launchBrowser} from '../test/helpers/browser.js'

export interface Series {
  name: string
  points: Array<[x: number, y: number]>
}

export interface Chart {
  /** File name without extension: NAME.svg and NAME.png are written. */
  name: string
  title: string
  x: string
  y: string
  series: Series[]
}

const WIDTH = 800
const HEIGHT = 400
const PAD = {left: 70, right: 20, top: 40, bottom: 70}
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf']

const xml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')

/** Ticks at 1, 2 or 5 times a power of ten, about `count` of them from 0 to past `max`. */
function ticks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0, 1]
  const raw = max / count
  const power = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw)!
  const out: number[] = []
  for (let v = 0; v < max + step; v += step) out.push(Number(v.toPrecision(12)))
  return out
}

const label = (v: number) => (Math.abs(v) >= 1e6 ? `${v / 1e6}M` : Math.abs(v) >= 1e4 ? `${v / 1e3}k` : String(v))

export function lineChartSvg(c: Chart): string {
  const all = c.series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y))
  const xTicks = ticks(Math.max(1, ...all.map(([x]) => x)))
  const yTicks = ticks(Math.max(0, ...all.map(([, y]) => y)))
  const [xMax, yMax] = [xTicks.at(-1)!, yTicks.at(-1)!]
  const plotW = WIDTH - PAD.left - PAD.right
  const plotH = HEIGHT - PAD.top - PAD.bottom
  const px = (x: number) => PAD.left + (x / xMax) * plotW
  const py = (y: number) => PAD.top + plotH - (y / yMax) * plotH
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="DejaVu Sans, sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${WIDTH / 2}" y="22" text-anchor="middle" font-size="15">${xml(c.title)}</text>`,
  ]
  for (const y of yTicks) {
    out.push(
      `<line x1="${PAD.left}" x2="${WIDTH - PAD.right}" y1="${py(y)}" y2="${py(y)}" stroke="#e5e5e5"/>`,
      `<text x="${PAD.left - 6}" y="${py(y) + 4}" text-anchor="end">${label(y)}</text>`,
    )
  }

  for (const x of xTicks) out.push(`<text x="${px(x)}" y="${PAD.top + plotH + 16}" text-anchor="middle">${label(x)}</text>`)
  out.push(
    `<line x1="${PAD.left}" x2="${PAD.left}" y1="${PAD.top}" y2="${PAD.top + plotH}" stroke="#333"/>`,
    `<line x1="${PAD.left}" x2="${WIDTH - PAD.right}" y1="${PAD.top + plotH}" y2="${PAD.top + plotH}" stroke="#333"/>`,
    `<text x="${PAD.left + plotW / 2}" y="${PAD.top + plotH + 34}" text-anchor="middle">${xml(c.x)}</text>`,
    `<text transform="translate(16 ${PAD.top + plotH / 2}) rotate(-90)" text-anchor="middle">${xml(c.y)}</text>`,
  )
  c.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]
    const points = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y))
    if (points.length > 1)
      out.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${points.map(([x, y]) => `${px(x)},${py(y)}`).join(' ')}"/>`)
    for (const [x, y] of points) out.push(`<circle cx="${px(x)}" cy="${py(y)}" r="2.5" fill="${color}"/>`)
    const lx = PAD.left + (i % 4) * 180
    const ly = HEIGHT - 18 + Math.floor(i / 4) * 14
    out.push(`<rect x="${lx}" y="${ly - 9}" width="12" height="4" fill="${color}"/>`, `<text x="${lx + 16}" y="${ly - 4}">${xml(s.name)}</text>`)
  })
  out.push('</svg>')
  return out.join('\n')
}

/** Writes each chart to DIR/NAME.svg and DIR/NAME.png; returns the PNG paths. */
export async function writeCharts(charts: Chart[], dir: string): Promise<string[]> {
  fs.mkdirSync(dir, {recursive: true})
  const browser = await launchBrowser()
  try {
    const page = await browser.context.newPage()
    await page.setViewportSize({width: WIDTH, height: HEIGHT})
    const written: string[] = []
    for (const c of charts) {
      const svg = lineChartSvg(c)
      fs.writeFileSync(path.join(dir, `${c.name}.svg`), svg)
      await page.setContent(`<!doctype html><html><body style="margin:0">${svg}</body></html>`)
      const file = path.join(dir, `${c.name}.png`)
      await page.screenshot({path: file, clip: {x: 0, y: 0, width: WIDTH, height: HEIGHT}})
      written.push(file)
    }

    return written
  } finally {
    await browser.close()
  }
}
