import {createHash, randomBytes} from 'node:crypto'

import {RvxError, UsageError} from '../shared/errors.js'
import {UNSAFE_CHARACTERS} from '../shared/text.js'
import type {Executor} from './executor.js'
import {sql} from './kysely.js'

/**
 * API tokens: `rvx_` and 43 random characters, shown once when created; the
 * database keeps a SHA-256 of each (a stolen table opens nothing). A write
 * token may do what a read token may, and start, stop and change things.
 */

export const SCOPES = ['read', 'write'] as const
export type Scope = (typeof SCOPES)[number]

export interface ApiToken {
  id: number
  name: string
  scope: Scope
  createdAt: Date
  lastUsedAt: Date | null
  revokedAt: Date | null
}

/** Last use is written at most this often per token: a busy script must not turn every read into a write. */
const LAST_USED_EVERY_MS = 60_000

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex')
}

/** A name people tell tokens apart by: one line, 1-100 characters. */
export function tokenName(name: string): string {
  const trimmed = name.trim()
  if (trimmed.length === 0 || trimmed.length > 100 || trimmed.match(UNSAFE_CHARACTERS))
    throw new UsageError('must be 1-100 characters on one line, e.g. crm', {field: 'name'})
  return trimmed
}

export async function createToken(db: Executor, o: {name: string; scope: Scope}): Promise<{token: string; id: number}> {
  const token = `rvx_${randomBytes(32).toString('base64url')}`
  const name = tokenName(o.name)
  const row = await db
    .insertInto('api_tokens')
    .values({name, scope: o.scope, token_hash: hashToken(token)})
    .onConflict((oc) => oc.column('name').where('revoked_at', 'is', null).doNothing())
    .returning('id')
    .executeTakeFirst()
  if (!row) throw new UsageError(`"${name}" is taken by a live token: pick another name, or revoke that one first (rvx tokens revoke ${name})`, {field: 'name'})
  return {token, id: row.id}
}

export async function listTokens(db: Executor, o: {all?: boolean} = {}): Promise<ApiToken[]> {
  const rows = await db
    .selectFrom('api_tokens')
    .select(['id', 'name', 'scope', 'created_at', 'last_used_at', 'revoked_at'])
    .$if(!o.all, (q) => q.where('revoked_at', 'is', null))
    .orderBy('id')
    .execute()
  return rows.map((r) => ({id: r.id, name: r.name, scope: r.scope, createdAt: r.created_at, lastUsedAt: r.last_used_at, revokedAt: r.revoked_at}))
}

/** Revokes the live token with this id or name; requests that carry it are refused from now on. */
export async function revokeToken(db: Executor, idOrName: string): Promise<ApiToken> {
  const byId = /^[0-9]{1,15}$/.test(idOrName)
  const row = await db
    .updateTable('api_tokens')
    .set({revoked_at: sql`now()` as never})
    .where('revoked_at', 'is', null)
    .where(byId ? 'id' : 'name', '=', byId ? Number(idOrName) : idOrName)
    .returning(['id', 'name', 'scope', 'created_at', 'last_used_at', 'revoked_at'])
    .executeTakeFirst()
  if (!row) throw new RvxError(`no live token ${byId ? 'with id' : 'named'} ${idOrName}: rvx tokens list shows them`, {code: 'token_not_found'})
  return {id: row.id, name: row.name, scope: row.scope, createdAt: row.created_at, lastUsedAt: row.last_used_at, revokedAt: row.revoked_at}
}

/** The live token a request presented, its use recorded; undefined when it is unknown or revoked. */
export async function authenticate(db: Executor, presented: string): Promise<{id: number; name: string; scope: Scope} | undefined> {
  const row = await db
    .selectFrom('api_tokens')
    .select(['id', 'name', 'scope', 'last_used_at'])
    .where('token_hash', '=', hashToken(presented))
    .where('revoked_at', 'is', null)
    .executeTakeFirst()
  if (!row) return undefined
  if (!row.last_used_at || Date.now() - row.last_used_at.getTime() > LAST_USED_EVERY_MS)
    await db
      .updateTable('api_tokens')
      .set({last_used_at: sql`now()` as never})
      .where('id', '=', row.id)
      .execute()
  return {id: row.id, name: row.name, scope: row.scope}
}

/** Whether a token of scope `has` may do what needs `needs`. */
export function allows(has: Scope, needs: Scope): boolean {
  return has === 'write' || needs === 'read'
}
