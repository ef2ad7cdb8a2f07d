import type {ColumnType, Generated, Selectable} from 'kysely'

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
  snoozes: Generated<number>
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
  /** Lifetime counts per task kind: {"company": {"done": 12, "failed": 1}}. */
  kind_counts: Generated<Json>
  /** How long its last heartbeat took to come back: a slow worker is not a dead one. */
  heartbeat_latency_ms: number | null
  /** Times the sweep declared it dead, and the last time (a death is alerted even when the worker registers again at once). */
  deaths: Generated<number>
  last_death_at: NullableTimestamp
  /** The last time PostgreSQL refused it a connection (too many clients). */
  db_refused_at: NullableTimestamp
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

export type RunStatus = 'running' | 'needs_decision' | 'completed' | 'failed' | 'canceled'
/** A stage's name in the registry (src/pipeline/stages/index.ts, which checks it), or 'done'. */
export type RunStage = string

export interface RunsTable {
  id: Generated<number>
  criteria: Json
  quantity: number
  contacts_min: number
  contacts_max: number
  provider: string
  status: Generated<RunStatus>
  stage: Generated<RunStage>
  discovery_rounds: Generated<number>
  /** The run's budget in US dollars (null: none). */
  max_usd: ColumnType<string | null, number | string | null | undefined, number | string | null>
  /** Candidates discovery dropped because an earlier run delivered them or the run excludes them. */
  suppressed: Generated<number>
  options: Json
  notes: string | null
  created_at: Timestamp
  updated_at: Timestamp
  finished_at: NullableTimestamp
  /** Set while the run is paused (rvx runs pause): its scope is in paused_scopes, no worker claims its tasks. */
  paused_at: NullableTimestamp
  /** Where its export was last written (orchestrate, rvx runs export, a monitor with --export-dir). */
  export_path: string | null
}

export type CompanyStatus = 'candidate' | 'qualified' | 'disqualified' | 'selected'

export interface CompaniesTable {
  id: Generated<number>
  run_id: number
  domain: string
  name: string
  website: string | null
  city: string | null
  state: string | null
  pms: string | null
  units_estimate: number | null
  status: Generated<CompanyStatus>
  icp_fit: 'yes' | 'no' | 'unknown' | null
  icp_score: number | null
  icp_tier: string | null
  confidence: string | null
  reasons: Json
  sources: Json
  discovered_by: string
  discovery_round: Generated<number>
  simulated: Generated<boolean>
  researched_at: NullableTimestamp
  /** Per criterion (and the site): {verdict, evidence: [{url, quote}], by, note}. */
  verdicts: Json
  /** The deterministic checks' facts (PMS links, address, own domains). */
  checks: Json
  disqualified_by: Generated<string[]>
  /** Judged from the research cache (researched_at is the original research's date). */
  from_cache: Generated<boolean>
  created_at: Timestamp
}

export interface ContactsTable {
  id: Generated<number>
  run_id: number
  company_id: number
  full_name: string
  title: string | null
  tier: number | null
  email: string | null
  phone: string | null
  linkedin_url: string | null
  confidence: string | null
  sources: Json
  simulated: Generated<boolean>
  email_status: 'valid_domain' | 'no_mx' | 'invalid' | 'unchecked' | null
  from_cache: Generated<boolean>
  created_at: Timestamp
}

export interface LlmCallsTable {
  id: Generated<number>
  run_id: number | null
  task_id: number | null
  provider: string
  model: string
  input_tokens: Generated<number>
  output_tokens: Generated<number>
  cached_tokens: Generated<number>
  latency_ms: Generated<number>
  cost_usd: ColumnType<string, number | string | undefined, number | string>
  outcome: string
  /** Time the call waited for its share of the provider's quota. */
  waited_ms: Generated<number>
  /** The provider's token counts were not usable: the tokens (and the cost) are rvx's estimates. */
  usage_estimated: Generated<boolean>
  created_at: Timestamp
  /** Given by the worker before the call was recorded: the record is written again from its journal, never twice. */
  call_id: string | null
}

export interface RateLimitsTable {
  key: string
  limit_rpm: number | null
  limit_tpm: number | null
  limit_source: Generated<'none' | 'configured' | 'learned'>
  rate_rpm: number
  rate_tpm: number | null
  requests: number
  tokens: number | null
  refilled_at: Timestamp
  last_cut_at: NullableTimestamp
  saw_limit: Generated<boolean>
  updated_at: Timestamp
  /** Until when a 429's wait pauses the fleet's quota. */
  paused_until: NullableTimestamp
  /** How far pauses have pushed the line back in all, ms (a caller compares it before and after its wait). */
  paused_ms: Generated<number>
}

export interface BudgetHoldsTable {
  id: Generated<number>
  run_id: number
  task_id: number
  usd: ColumnType<string, number | string, number | string>
  expires_at: Timestamp
}

export interface ResearchCacheTable {
  /** The name of the stage whose answer it is. */
  kind: string
  key: string
  domain: string
  provider: string
  value: Json
  cost_usd: ColumnType<string, number | string | undefined, number | string>
  created_at: Timestamp
  hits: Generated<number>
  last_hit_at: NullableTimestamp
}

export interface RunExclusionsTable {
  run_id: number
  domain: string
}

export type AlertSeverity = 'info' | 'warning' | 'critical'

export interface AlertsTable {
  id: Generated<number>
  key: string
  kind: string
  severity: ColumnType<AlertSeverity, AlertSeverity | undefined, AlertSeverity>
  subject: string
  details: Json
  run_id: number | null
  recipient: string | null
  deliveries: Json
  attempts: Generated<number>
  next_attempt_at: Timestamp
  last_error: string | null
  created_at: Timestamp
  delivered_at: NullableTimestamp
  resolved_at: NullableTimestamp
}

/** A scope whose queued tasks no worker claims (see pauseScope). */
export interface PausedScopesTable {
  scope: string
  paused_at: Timestamp
  reason: string | null
}

/** What a stage found about a company (one row per company and stage). */
export interface CompanyFactsTable {
  run_id: number
  company_id: number
  stage: string
  value: Json
  evidence: Json
  provider: string
  simulated: Generated<boolean>
  created_at: Timestamp
}

export interface ApiTokensTable {
  id: Generated<number>
  name: string
  scope: 'read' | 'write'
  /** SHA-256 (hex) of the token: the token itself is shown once and never stored. */
  token_hash: string
  created_at: Timestamp
  last_used_at: NullableTimestamp
  revoked_at: NullableTimestamp
}

export interface ApiIdempotencyTable {
  token_id: number
  key: string
  request_hash: string
  run_id: number | null
  created_at: Timestamp
}

export interface WebhooksTable {
  id: Generated<number>
  url: string
  events: string[]
  secret: string
  created_at: Timestamp
}

export interface WebhookEventsTable {
  id: Generated<number>
  type: string
  run_id: number | null
  data: Json
  created_at: Timestamp
}

export type DeliveryStatus = 'pending' | 'delivered' | 'failed'

export interface WebhookDeliveriesTable {
  id: Generated<number>
  webhook_id: number
  event_id: number
  run_id: number | null
  status: Generated<DeliveryStatus>
  attempts: Generated<number>
  next_attempt_at: Timestamp
  last_status: number | null
  last_error: string | null
  delivered_at: NullableTimestamp
  created_at: Timestamp
}

export interface SchedulesTable {
  id: Generated<number>
  name: string | null
  cron: string
  tz: string
  criteria: Json
  quantity: number
  contacts_min: number
  contacts_max: number
  provider: string
  max_usd: ColumnType<string | null, number | null | undefined, number | null>
  options: Json
  fires_after: Timestamp
  paused_at: NullableTimestamp
  created_at: Timestamp
}

export interface ScheduleFiresTable {
  schedule_id: number
  slot: Timestamp
  run_id: number | null
  skipped: string | null
  created_at: Timestamp
}

export interface Database {
  rvx_meta: RvxMetaTable
  tasks: TasksTable
  workers: WorkersTable
  task_events: TaskEventsTable
  runs: RunsTable
  companies: CompaniesTable
  contacts: ContactsTable
  llm_calls: LlmCallsTable
  alerts: AlertsTable
  rate_limits: RateLimitsTable
  budget_holds: BudgetHoldsTable
  research_cache: ResearchCacheTable
  run_exclusions: RunExclusionsTable
  paused_scopes: PausedScopesTable
  company_facts: CompanyFactsTable
  api_tokens: ApiTokensTable
  api_idempotency: ApiIdempotencyTable
  webhooks: WebhooksTable
  webhook_events: WebhookEventsTable
  webhook_deliveries: WebhookDeliveriesTable
  schedules: SchedulesTable
  schedule_fires: ScheduleFiresTable
}

export type RunRow = Selectable<RunsTable>
export type CompanyRow = Selectable<CompaniesTable>
export type ContactRow = Selectable<ContactsTable>

export type TaskRow = Selectable<TasksTable>
export type AlertRow = Selectable<AlertsTable>
