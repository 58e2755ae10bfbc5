-- Per-call access records of audited methods wait here until the relay has appended them to the
-- audit log: durable across restarts of the gateway and outages of the audit service.

CREATE TABLE gateway.access_outbox (
    id              bigserial   PRIMARY KEY,
    -- The encoded prfix.audit.v1.AuditEvent; its event id makes redelivery safe.
    payload         bytea       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX access_outbox_due_idx ON gateway.access_outbox (next_attempt_at, id);

GRANT SELECT, INSERT, UPDATE, DELETE ON gateway.access_outbox TO prfix_gateway;
GRANT USAGE ON SEQUENCE gateway.access_outbox_id_seq TO prfix_gateway;
