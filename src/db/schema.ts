import type {ColumnType, Generated, Insertable, Selectable} from 'kysely'

/** Typed view of the rvx schema; one interface per table, kept in step with migrations/. */
export interface RvxMetaTable {
  key: string
  value: unknown
  updated_at: ColumnType<Date, Date | string | undefined, Date | string>
}

export interface Database {
  rvx_meta: RvxMetaTable
}

export type RvxMeta = Selectable<RvxMetaTable>
export type NewRvxMeta = Insertable<RvxMetaTable>
export type {Generated}
