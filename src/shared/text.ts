/**
 * Characters that text from outside (criteria, pages, model output, stored
 * rows) must not carry onto a terminal or into jsonb: C0 and C1 controls
 * (NUL, escape sequences, a carriage return that rewrites a line),
 * bidirectional marks, overrides and isolates (text that reads differently
 * from what it is), line and paragraph separators, and lone surrogates.
 * Global: use it with replace() or matchAll().
 */
export const UNSAFE_CHARACTERS =
  // eslint-disable-next-line no-control-regex -- finding control characters is the point
  /[\u0000-\u001F\u007F-\u009F\u061C\u200E\u200F\u2028-\u202E\u2066-\u2069]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g

/** "U+202E": how a message names one of them. */
export function codePoint(character: string): string {
  return `U+${character.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`
}
