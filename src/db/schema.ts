import type {ColumnType, Generated, Insertable, Selectable, Updateable} from 'kysely'

/** Typed view of the rvx schema; one interface per table, kept in step with migrations/. */

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>
type NullableTimestamp = ColumnType<Date | null, Date | string | null | undefined, Date | string | null>
type Json = ColumnType<unknown, string | undefined, string>

export interface RvxMetaTable {
  key: string
  value: unknown
  updated_at: Timestamp
}

export type TaskStatus = 'queued' | 'running' | 'completed' | 'failed' | 'quarantined' | 'canceled'

export interface TasksTable {
  id: Generated<number>
  kind: string
  payload: Json
  status: Generated<TaskStatus>
  priority: Generated<number>
  run_after: Timestamp
  attempts: Generated<number>
  max_attempts: Generated<number>
  crash_count: Generated<number>
  lease_owner: string | null
  lease_epoch: Generated<number>
  lease_expires_at: NullableTimestamp
  requirements: Json
  scope: string | null
  idempotency_key: string | null
  last_error: string | null
  result: ColumnType<unknown, string | null | undefined, string | null>
  created_at: Timestamp
  updated_at: Timestamp
  started_at: NullableTimestamp
  finished_at: NullableTimestamp
}

export type WorkerStatus = 'starting' | 'idle' | 'busy' | 'draining' | 'stopped' | 'dead'

export interface WorkersTable {
  id: string
  types: string[]
  pool: Generated<string>
  host: string
  pid: number
  version: string
  capabilities: Generated<string[]>
  concurrency: number
  scope: string | null
  status: Generated<WorkerStatus>
  lock_key: number
  started_at: Timestamp
  last_heartbeat_at: Timestamp
  stopped_at: NullableTimestamp
  resource_metrics: Json
  tasks_done: Generated<number>
  tasks_failed: Generated<number>
}

export type TaskEventKind =
  | 'claimed'
  | 'completed'
  | 'failed'
  | 'retry_scheduled'
  | 'snoozed'
  | 'released'
  | 'requeued_after_death'
  | 'requeued_lease_expired'
  | 'fenced_out'
  | 'quarantined'
  | 'retried'
  | 'canceled'

export interface TaskEventsTable {
  id: Generated<number>
  task_id: number
  event: TaskEventKind
  worker_id: string | null
  lease_epoch: number | null
  reason: string | null
  at: Timestamp
}

export interface Database {
  rvx_meta: RvxMetaTable
  tasks: TasksTable
  workers: WorkersTable
  task_events: TaskEventsTable
}

export type TaskRow = Selectable<TasksTable>
export type NewTaskRow = Insertable<TasksTable>
export type TaskUpdate = Updateable<TasksTable>
export type WorkerRow = Selectable<WorkersTable>
export type TaskEventRow = Selectable<TaskEventsTable>
