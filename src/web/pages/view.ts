import type {SourceKey} from '../data.js'
import type {Html} from '../html.js'
import type {Regions} from './layout.js'

/**
 * A page as the server and the live stream see it: the sources it reads, its
 * live regions rendered from them, and the page around those regions. Viewers
 * of the same view (same key) are sent the same regions.
 */
export interface View {
  key: string
  title: string
  nav: 'runs' | 'fleet'
  sources: SourceKey[]
  /** The SSE address that keeps this page live. */
  live: string
  /** Renders the live regions; `data` returns a source's value (each source was read once for everyone). */
  regions(data: (key: SourceKey) => unknown): Regions
  page(regions: Regions): Html
}
