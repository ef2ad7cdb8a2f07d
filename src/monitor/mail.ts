import os from 'node:os'
import type {Transporter} from 'nodemailer'
import type SMTPTransport from 'nodemailer/lib/smtp-transport/index.js'
import {z} from 'zod'

import type {Env} from '../shared/config.js'
import {UsageError} from '../shared/errors.js'

export interface MailAttachment {
  filename: string
  content: string
  contentType?: string
}

export interface MailMessage {
  to: string
  subject: string
  text: string
  attachments?: MailAttachment[]
}

const address = z.email()

/** A person's address, or a one-line usage error naming the input (`field`). */
export function parseAddress(text: string, field = 'address'): string {
  const parsed = address.safeParse(text.trim())
  if (!parsed.success) throw new UsageError(`"${text}" is not an email address: use e.g. ops@example.com`, {field})
  return parsed.data
}

/**
 * Sends mail through the SMTP server named by SMTP_URL
 * (smtp://user:pass@host:587, or smtps:// for TLS from the start). The URL
 * holds a password: it is never logged or printed, only its host.
 * nodemailer is loaded by the first send, not by the commands that only
 * check their mail settings.
 */
export class Mailer {
  readonly host: string
  private readonly options: SMTPTransport.Options
  private transport?: Promise<Transporter>
  private readonly from: string

  constructor(smtpUrl: string, from?: string) {
    let url: URL
    try {
      url = new URL(smtpUrl)
    } catch {
      throw new UsageError('SMTP_URL is not a URL: use smtp://user:password@host:587 (or smtps:// for TLS on connect)')
    }

    if (url.protocol !== 'smtp:' && url.protocol !== 'smtps:') throw new UsageError(`SMTP_URL must start with smtp:// or smtps:// (got ${url.protocol}//)`)
    const secure = url.protocol === 'smtps:'
    this.host = `${url.hostname}:${url.port || (secure ? 465 : 587)}`
    this.from = from ?? `rvx <rvx@${os.hostname()}>`
    this.options = {
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: Number(url.port || (secure ? 465 : 587)),
      secure,
      auth: url.username ? {user: decodeURIComponent(url.username), pass: decodeURIComponent(url.password)} : undefined,
      connectionTimeout: 10_000,
      greetingTimeout: 10_000,
      socketTimeout: 30_000,
    }
  }

  async send(message: MailMessage): Promise<void> {
    this.transport ??= import('nodemailer').then(({default: nodemailer}) => nodemailer.createTransport(this.options))
    const transport = await this.transport
    await transport.sendMail({from: this.from, to: message.to, subject: message.subject, text: message.text, attachments: message.attachments})
  }

  close(): void {
    void this.transport?.then((t) => t.close()).catch(() => {})
  }
}

/** The mailer SMTP_URL describes, or undefined when it is not set. */
export function mailerFromEnv(env: Env): Mailer | undefined {
  return env.SMTP_URL ? new Mailer(env.SMTP_URL, env.RVX_MAIL_FROM) : undefined
}

/** For inputs that send mail (`field`): the mailer, or a one-line error saying how to configure one. */
export function requireMailer(field: string, env: Env): Mailer {
  const mailer = mailerFromEnv(env)
  // The example has no password in it: an error line is scrubbed of URL passwords, and "[redacted]" would teach nothing.
  if (!mailer)
    throw new UsageError(
      `needs an SMTP server: set SMTP_URL, e.g. smtp://smtp.example.com:587, with user:password@ after the // when the server needs a login`,
      {field},
    )
  return mailer
}
