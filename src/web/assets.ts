import fs from 'node:fs'

/**
 * The dashboard's static files, shipped in the package next to this module
 * (the build copies src/web/assets to dist) and read once at start: a fixed
 * list, so no request names a path on disk.
 */
const FILES = {
  'dashboard.css': 'text/css; charset=utf-8',
  'live.js': 'text/javascript; charset=utf-8',
  'favicon.svg': 'image/svg+xml',
} as const

export interface Asset {
  type: string
  body: string
}

export function loadAssets(): Map<string, Asset> {
  return new Map(Object.entries(FILES).map(([name, type]) => [name, {type, body: fs.readFileSync(new URL(`./assets/${name}`, import.meta.url), 'utf8')}]))
}
