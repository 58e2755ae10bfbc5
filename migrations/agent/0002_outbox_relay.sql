-- The audit outbox in the shape the shared relay reads (prfix_runtime::outbox): delivered records are
-- deleted, failed ones wait until next_attempt_at; the event id inside the payload is the idempotency key.

DROP INDEX agent.audit_outbox_pending_idx;
ALTER TABLE agent.audit_outbox
    DROP CONSTRAINT audit_outbox_event_id_key,
    DROP COLUMN event_id,
    DROP COLUMN delivered_at,
    ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX audit_outbox_due_idx ON agent.audit_outbox (next_attempt_at, id);
