import {convert} from 'html-to-text'
import {Tokenizer} from 'htmlparser2'

export interface HtmlVisitor {
  /** An opening tag: lower-case name, attributes with entities decoded (the first of a repeated name wins). */
  open?(name: string, attributes: Record<string, string>): void
  close?(name: string): void
  text?(text: string): void
}

/**
 * One linear pass over HTML with htmlparser2's tokenizer: tags and text in
 * document order, no element tree and no stack of open elements. (The
 * tree builders, htmlparser2's Parser and html-to-text's, search that stack
 * on every tag and go quadratic on hostile nesting: 330,000 unclosed tags
 * take a minute.) Bounded by the input: a 1 MB page is tens of milliseconds.
 */
export function walkHtml(html: string, visitor: HtmlVisitor): void {
  let tag = ''
  let attributes: Record<string, string> = Object.create(null)
  let name = ''
  let value = ''
  const tokenizer = new Tokenizer(
    {decodeEntities: true},
    {
      onopentagname(start, end) {
        tag = html.slice(start, end).toLowerCase()
        attributes = Object.create(null)
      },
      onattribname(start, end) {
        name = html.slice(start, end).toLowerCase()
        value = ''
      },
      onattribdata(start, end) {
        value += html.slice(start, end)
      },
      onattribentity(codepoint) {
        value += String.fromCodePoint(codepoint)
      },
      onattribend() {
        if (!(name in attributes)) attributes[name] = value
      },
      onopentagend() {
        visitor.open?.(tag, attributes)
      },
      onselfclosingtag() {
        // In HTML, <div/> opens a div like <div> does.
        visitor.open?.(tag, attributes)
      },
      onclosetag(start, end) {
        visitor.close?.(html.slice(start, end).toLowerCase())
      },
      ontext(start, end) {
        visitor.text?.(html.slice(start, end))
      },
      ontextentity(codepoint) {
        visitor.text?.(String.fromCodePoint(codepoint))
      },
      oncdata() {},
      oncomment() {},
      ondeclaration() {},
      onprocessinginstruction() {},
      onend() {},
    },
  )
  tokenizer.write(html)
  tokenizer.end()
}

/**
 * Past this many tags a page gets the linear text below instead of
 * html-to-text's layout: html-to-text builds a tree whose cost grows with
 * tags x depth, and its walk overflows the stack a few thousand levels down.
 */
const MAX_TAGS_FOR_LAYOUT = 10_000
/** Even under the tag limit, deeper text becomes "..." rather than a stack overflow. */
const MAX_DEPTH = 256

/** The readable text of a page for a model: headings, paragraphs and lists laid out, no scripts, styles, images or navigation. */
export function htmlToText(html: string): string {
  let tags = 0
  walkHtml(html, {
    open: () => void tags++,
    close: () => void tags++,
  })
  if (tags > MAX_TAGS_FOR_LAYOUT) return plainText(html)
  try {
    return convert(html, {
      wordwrap: false,
      limits: {maxDepth: MAX_DEPTH},
      selectors: [
        {selector: 'a', options: {ignoreHref: true}},
        {selector: 'img', format: 'skip'},
        {selector: 'nav', format: 'skip'},
        ...['h1', 'h2', 'h3', 'h4', 'h5', 'h6'].map((selector) => ({selector, options: {uppercase: false}})),
      ],
    })
      .replace(/\n{3,}/g, '\n\n')
      .trim()
  } catch {
    return plainText(html)
  }
}

// Not head: pages may leave it unclosed, and the body would go with it.
const SKIPPED = new Set(['script', 'style', 'noscript', 'template', 'nav', 'svg'])
const BLOCKS = new Set([
  'p',
  'div',
  'br',
  'li',
  'tr',
  'h1',
  'h2',
  'h3',
  'h4',
  'h5',
  'h6',
  'section',
  'article',
  'header',
  'footer',
  'main',
  'aside',
  'table',
  'ul',
  'ol',
  'dl',
  'dt',
  'dd',
  'blockquote',
  'pre',
  'form',
  'hr',
  'address',
  'title',
])

/** Text with tags stripped in one linear pass: a line break at each block element, the skipped elements' content left out. */
export function plainText(html: string): string {
  const parts: string[] = []
  const skipping = new Map<string, number>()
  let skipped = 0
  walkHtml(html, {
    open(name) {
      if (SKIPPED.has(name)) {
        skipping.set(name, (skipping.get(name) ?? 0) + 1)
        skipped++
      }

      if (BLOCKS.has(name)) parts.push('\n')
    },
    close(name) {
      const open = skipping.get(name) ?? 0
      if (open > 0) {
        skipping.set(name, open - 1)
        skipped--
      }

      if (BLOCKS.has(name)) parts.push('\n')
    },
    text(text) {
      if (skipped === 0) parts.push(text)
    },
  })
  return parts
    .join('')
    .replace(/[ \t\f\v\r\u00a0]+/g, ' ')
    .replace(/ ?\n ?/g, '\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim()
}
