import {type Kysely, sql} from '../src/db/kysely.js'

// Signed webhooks (Standard Webhooks) through an outbox:
// - webhooks: where events go, which events, and the signing secret (the monitor must have it to sign);
// - webhook_events: what happened, written by triggers in the transaction that changed the run or the company, so an
//   event exists exactly when its change committed (only while some webhook wants that type);
// - webhook_deliveries: one row per webhook and event, sent by the active monitor in order per webhook and run, with
//   its attempts, last answer and next attempt (the delivery log).
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table webhooks (
      id bigint generated always as identity primary key,
      url text not null,
      events text[] not null,
      secret text not null,
      created_at timestamptz not null default now()
    )
  `.execute(db)
  await sql`
    create table webhook_events (
      id bigint generated always as identity primary key,
      type text not null,
      run_id bigint,
      data jsonb not null,
      created_at timestamptz not null default now()
    )
  `.execute(db)
  await sql`
    create table webhook_deliveries (
      id bigint generated always as identity primary key,
      webhook_id bigint not null references webhooks (id) on delete cascade,
      event_id bigint not null references webhook_events (id) on delete cascade,
      run_id bigint,
      status text not null default 'pending' check (status in ('pending', 'delivered', 'failed')),
      attempts integer not null default 0,
      next_attempt_at timestamptz not null default now(),
      last_status integer,
      last_error text,
      delivered_at timestamptz,
      created_at timestamptz not null default now(),
      unique (webhook_id, event_id)
    )
  `.execute(db)
  await sql`create index webhook_deliveries_pending_idx on webhook_deliveries (next_attempt_at, id) where status = 'pending'`.execute(db)
  await sql`create index webhook_deliveries_order_idx on webhook_deliveries (webhook_id, run_id, id) where status = 'pending'`.execute(db)

  // One event and its deliveries to every webhook that wants its type; nothing when none does.
  await sql`
    create function rvx_webhook_event(event_type text, event_run bigint, event_data jsonb) returns void language plpgsql as $$
    declare
      event_id bigint;
    begin
      if not exists (select 1 from webhooks where event_type = any(events)) then
        return;
      end if;
      insert into webhook_events (type, run_id, data) values (event_type, event_run, event_data) returning id into event_id;
      insert into webhook_deliveries (webhook_id, event_id, run_id)
        select w.id, event_id, event_run from webhooks w where event_type = any(w.events) order by w.id;
    end
    $$
  `.execute(db)
  await sql`
    create function rvx_run_event() returns trigger language plpgsql as $$
    begin
      perform rvx_webhook_event('run.' || new.status, new.id, jsonb_build_object(
        'run', jsonb_build_object('id', new.id, 'status', new.status, 'stage', new.stage, 'quantity', new.quantity,
          'provider', new.provider, 'criteria', new.criteria, 'notes', new.notes, 'createdAt', new.created_at, 'finishedAt', new.finished_at),
        'selected', (select count(*) from companies c where c.run_id = new.id and c.status = 'selected')));
      return null;
    end
    $$
  `.execute(db)
  await sql`
    create trigger runs_webhook_event after update of status on runs for each row
      when (new.status is distinct from old.status and new.status in ('completed', 'needs_decision', 'failed'))
      execute function rvx_run_event()
  `.execute(db)
  await sql`
    create function rvx_lead_event() returns trigger language plpgsql as $$
    begin
      perform rvx_webhook_event('lead.selected', new.run_id, jsonb_build_object(
        'runId', new.run_id,
        'company', jsonb_build_object('id', new.id, 'name', new.name, 'domain', new.domain, 'website', new.website, 'city', new.city,
          'state', new.state, 'pms', new.pms, 'unitsEstimate', new.units_estimate, 'icpScore', new.icp_score, 'icpTier', new.icp_tier)));
      return null;
    end
    $$
  `.execute(db)
  await sql`
    create trigger companies_webhook_event after update of status on companies for each row
      when (new.status = 'selected' and old.status is distinct from 'selected')
      execute function rvx_lead_event()
  `.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop trigger companies_webhook_event on companies`.execute(db)
  await sql`drop trigger runs_webhook_event on runs`.execute(db)
  await sql`drop function rvx_lead_event()`.execute(db)
  await sql`drop function rvx_run_event()`.execute(db)
  await sql`drop function rvx_webhook_event(text, bigint, jsonb)`.execute(db)
  await sql`drop table webhook_deliveries`.execute(db)
  await sql`drop table webhook_events`.execute(db)
  await sql`drop table webhooks`.execute(db)
}
