import {spawnSync} from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped'])
const SUFFIXES: Record<string, string[]> = {histogram: ['_bucket', '_sum', '_count'], summary: ['_sum', '_count']}

/**
 * Checks a scrape in Prometheus' text format (0.0.4) the way promtool check
 * metrics does, without promtool: every sample belongs to a family declared
 * with # HELP and # TYPE before it, names and label names are valid, values
 * are numbers, no series appears twice, histogram buckets carry `le`, and
 * only counters end in _total. Returns the problems found, one line each.
 */
export function lintExposition(text: string): string[] {
  const problems: string[] = []
  const families = new Map<string, {type?: string; help?: string; samples: number}>()
  const seen = new Set<string>()
  const family = (name: string) => {
    let f = families.get(name)
    if (!f) families.set(name, (f = {samples: 0}))
    return f
  }

  for (const [i, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue
    const meta = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line)
    if (meta) {
      const [, what, name, rest = ''] = meta
      const f = family(name)
      if (!NAME.test(name)) problems.push(`line ${i + 1}: invalid metric name ${name}`)
      if (f.samples > 0) problems.push(`line ${i + 1}: # ${what} ${name} after its samples`)
      if (what === 'HELP') {
        if (f.help !== undefined) problems.push(`line ${i + 1}: second # HELP for ${name}`)
        f.help = rest
      } else {
        if (f.type !== undefined) problems.push(`line ${i + 1}: second # TYPE for ${name}`)
        if (!TYPES.has(rest)) problems.push(`line ${i + 1}: unknown type ${rest} for ${name}`)
        f.type = rest
      }

      continue
    }

    if (line.startsWith('#')) continue
    const sample = /^([^\s{]+)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$/.exec(line)
    if (!sample) {
      problems.push(`line ${i + 1}: not a sample: ${line}`)
      continue
    }

    const [, name, labelText = '', value] = sample
    const owner = [...families.entries()].find(([n, f]) => n === name || (SUFFIXES[f.type ?? '']?.some((s) => n + s === name) ?? false))
    if (!owner) {
      problems.push(`line ${i + 1}: sample ${name} has no # TYPE before it`)
      continue
    }

    owner[1].samples++
    const labels = [...labelText.matchAll(/([^=,\s]+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]] as const)
    const rebuilt = labels.map(([k, v]) => `${k}="${v}"`).join(',')
    if (rebuilt !== labelText.replace(/,$/, '')) problems.push(`line ${i + 1}: malformed labels {${labelText}}`)
    for (const [k] of labels) if (!LABEL.test(k) || k.startsWith('__')) problems.push(`line ${i + 1}: invalid label name ${k}`)
    if (new Set(labels.map(([k]) => k)).size !== labels.length) problems.push(`line ${i + 1}: a label twice in ${name}`)
    // As Prometheus parses them (Go's ParseFloat): Inf and NaN in any case (prom-client writes Nan).
    if (!/^(?:[+-]?inf|nan|[+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)$/i.test(value)) problems.push(`line ${i + 1}: value ${value} is not a number`)
    if (name.endsWith('_bucket') && owner[1].type === 'histogram' && !labels.some(([k]) => k === 'le')) problems.push(`line ${i + 1}: bucket without le`)
    const key = `${name}{${[...labels].sort().map(([k, v]) => `${k}="${v}"`)}}`
    if (seen.has(key)) problems.push(`line ${i + 1}: series ${key} twice`)
    seen.add(key)
  }

  for (const [name, f] of families) {
    if (f.help === undefined) problems.push(`${name}: no # HELP`)
    if (f.type === undefined) problems.push(`${name}: no # TYPE`)
    if (f.type === 'counter' && !name.endsWith('_total')) problems.push(`${name}: a counter's name should end in _total`)
    if (f.type !== 'counter' && name.endsWith('_total')) problems.push(`${name}: only counters' names end in _total (it is a ${f.type})`)
  }

  return problems
}

/** Debian's `promtool` (package prometheus), when this machine has it. */
export function promtoolPath(): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/bin', '/usr/local/bin']) {
    const candidate = path.join(dir, 'promtool')
    if (dir && fs.existsSync(candidate)) return candidate
  }

  return undefined
}

/** `promtool check metrics` on a scrape: its exit code and what it said. */
export function promtoolCheck(promtool: string, text: string): {status: number | null; output: string} {
  const r = spawnSync(promtool, ['check', 'metrics'], {input: text, encoding: 'utf8', timeout: 30_000})
  return {status: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim()}
}
