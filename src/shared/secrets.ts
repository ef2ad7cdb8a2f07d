import {type Env, readEnvironment} from './config.js'

/**
 * Secrets rvx holds (API keys, passwords, webhook paths) must never be
 * printed, logged or stored, also when an upstream server echoes them back in
 * an error body. scrub() takes them out of any text before it goes anywhere:
 * the values found in the environment, any a caller registers, and tokens
 * that look like keys whatever their source.
 */

const REDACTED = '[redacted]'
const known = new Set<string>()
let fromEnv: Env | undefined

/** Environment variables whose whole value is a secret. */
const SECRET_NAME = /(^|_)(KEY|TOKEN|SECRET|PASSWORD|PASS)$/i
/** Environment variables holding URLs whose password, credential query parameters (and, for webhooks, path) are secrets. */
const SECRET_URLS = ['DATABASE_URL', 'SMTP_URL', 'RVX_ALERT_WEBHOOK', 'OPENAI_BASE_URL', 'RVX_SEARXNG_URL']
/** Names of URL query parameters and headers whose value is a credential (api-key, key, token, access_token, sig, ...). */
const CREDENTIAL_NAME = String.raw`[\w.-]*?(?:key|token|secret|password|passwd|pwd|sig|signature|credential|auth)s?`
/**
 * Shapes of credentials, wherever they come from: OpenAI-style keys, bearer tokens, userinfo in URLs (user:password@,
 * or a token alone before the @), credential query parameters (?api-key=..., &sig=...), and headers echoed back
 * (api-key: ..., Authorization: ...).
 */
const SHAPES: Array<[RegExp, string]> = [
  [/\bsk-[A-Za-z0-9_-]{12,}/g, REDACTED],
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{12,}/gi, `$1 ${REDACTED}`],
  [/(\b[a-z][a-z0-9+.-]*:\/\/[^\s:/@]+:)[^\s@/]+@/gi, `$1${REDACTED}@`],
  [/(\bhttps?:\/\/)[^\s:/@?#[\]]+@/gi, `$1${REDACTED}@`],
  [new RegExp(String.raw`([?&;]${CREDENTIAL_NAME}=)(?!\[redacted\])[^&#\s"'<>]+`, 'gi'), `$1${REDACTED}`],
  [
    new RegExp(
      String.raw`\b((?:x-|openai-)?api-key|authorization|proxy-authorization|cookie)(["']?\s*[:=]\s*["']?)(?!Bearer\b|Basic\b|\[redacted\])[^\s"',;]{6,}`,
      'gi',
    ),
    `$1$2${REDACTED}`,
  ],
]

/** A value that must never be shown (ignored when too short to be told apart from ordinary text). */
export function registerSecret(value: string | undefined | null): void {
  if (value && value.length >= 6) known.add(value)
}

/** Registers the secrets in an environment: *_KEY, *_TOKEN, *_SECRET, *_PASSWORD values and the credentials in URL variables. */
export function registerSecretsFrom(env: Env): void {
  for (const [name, value] of Object.entries(env)) if (value && SECRET_NAME.test(name)) registerSecret(value)
  for (const name of SECRET_URLS) {
    const value = env[name]
    if (!value) continue
    try {
      const url = new URL(value)
      registerSecret(decodeURIComponent(url.password))
      registerSecret(url.password)
      // A token alone before the @, and credential query parameters (?api-key=..., as Azure-style gateways are configured).
      if (!url.password) registerSecret(decodeURIComponent(url.username))
      for (const [param, secret] of url.searchParams) if (new RegExp(`^${CREDENTIAL_NAME}$`, 'i').test(param)) registerSecret(secret)
      // A Slack-style webhook's path is its credential.
      if (name === 'RVX_ALERT_WEBHOOK' && url.pathname.length > 1) registerSecret(url.pathname)
    } catch {
      // not a URL: nothing to take out
    }
  }
}

/** The text with every known secret and every credential-shaped token replaced by [redacted]. */
export function scrub(text: string): string {
  // Whatever the environment holds is never printed, whichever command (or test) runs: taken from it as it is now.
  const env = readEnvironment()
  if (fromEnv !== env) {
    fromEnv = env
    registerSecretsFrom(env)
  }

  let out = text
  for (const secret of known) if (out.includes(secret)) out = out.split(secret).join(REDACTED)
  for (const [shape, replacement] of SHAPES) out = out.replace(shape, replacement)
  return out
}
