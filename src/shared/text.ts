/**
 * Characters that text from outside (criteria, pages, model output, stored
 * rows) must not carry onto a terminal or into jsonb: C0 and C1 controls
 * (NUL, escape sequences, a carriage return that rewrites a line),
 * bidirectional marks, overrides and isolates (text that reads differently
 * from what it is), zero-width spaces and byte-order marks (text that looks
 * like other text), line and paragraph separators, and lone surrogates.
 * Global: use it with replace() or matchAll().
 */
export const UNSAFE_CHARACTERS =
  // eslint-disable-next-line no-control-regex -- finding control characters is the point
  /[\u0000-\u001F\u007F-\u009F\u061C\u200B\u200E\u200F\u2028-\u202E\u2066-\u2069\uFEFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g

/**
 * Terminal escape sequences whole (CSI such as ESC[2J, OSC such as a window
 * title or a hyperlink up to its BEL or ST, and two-character escapes):
 * taking out only the ESC would leave "[2J" in a name.
 */
// eslint-disable-next-line no-control-regex -- finding escape sequences is the point
const ESCAPE_SEQUENCES = /(?:\u001B\[|\u009B)[0-?]*[ -/]*[@-~]?|(?:\u001B\]|\u009D)[^\u0007\u001B\u009C]*(?:\u0007|\u001B\\|\u009C)?|\u001B[@-Z\\-_]?/g

/** "U+202E": how a message names one of them. */
export function codePoint(character: string): string {
  return `U+${character.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`
}

/** The text without terminal escape sequences and unsafe characters (line breaks kept): what a file people `cat` may hold. */
export function withoutEscapes(value: string): string {
  return value.replace(ESCAPE_SEQUENCES, '').replace(UNSAFE_CHARACTERS, (c) => (c === '\n' ? c : ''))
}

/**
 * Text from outside as rvx stores and shows it: escape sequences and unsafe
 * characters taken out (line breaks kept as such only with `lineBreaks`,
 * else a space), runs of spaces made one, trimmed, and cut at `max`
 * characters (never inside a surrogate pair).
 */
export function cleanText(value: string, max: number, options: {lineBreaks?: boolean} = {}): string {
  let out = value.replace(ESCAPE_SEQUENCES, '')
  out = options.lineBreaks
    ? out.replace(/\r\n?/g, '\n').replace(/[\t\u2028\u2029]/g, (c) => (c === '\t' ? ' ' : '\n'))
    : out.replace(/[\t\n\r\u2028\u2029]/g, ' ')
  out = out
    .replace(UNSAFE_CHARACTERS, (c) => (options.lineBreaks && c === '\n' ? c : ''))
    .replace(/[ \u00A0]{2,}/g, ' ')
    .trim()
  if (out.length <= max) return out
  const cut = out.slice(0, max)
  return /[\uD800-\uDBFF]$/.test(cut) ? cut.slice(0, -1) : cut
}
