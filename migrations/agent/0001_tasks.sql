-- Tasks, their events and the audit outbox, and the role the agent runs as.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'prfix_agent') THEN
        BEGIN
            CREATE ROLE prfix_agent NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL; -- created concurrently by another database's migration: roles are cluster-wide
        END;
    END IF;
END
$$;

CREATE TABLE agent.tasks (
    task_id          uuid        PRIMARY KEY,
    kind             smallint    NOT NULL CONSTRAINT tasks_kind_known CHECK (kind BETWEEN 1 AND 3),
    state            smallint    NOT NULL CONSTRAINT tasks_state_known CHECK (state BETWEEN 1 AND 5),
    owner            text        NOT NULL,
    -- The encoded Create*Request (protobuf): the change set and options the work needs.
    request          bytea       NOT NULL,
    -- The encoded TaskResult once the task succeeded.
    result           bytea,
    error            text        NOT NULL DEFAULT '',
    attempts         integer     NOT NULL DEFAULT 0,
    lease_owner      text,
    lease_expires_at timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    ended_at         timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Workers claim the oldest queued (or lease-expired running) task.
CREATE INDEX tasks_claim_idx ON agent.tasks (state, created_at);
CREATE INDEX tasks_owner_idx ON agent.tasks (owner, created_at DESC);

CREATE TABLE agent.task_events (
    task_id    uuid        NOT NULL REFERENCES agent.tasks (task_id) ON DELETE CASCADE,
    sequence   bigint      NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- The encoded TaskEvent (protobuf).
    payload    bytea       NOT NULL,
    PRIMARY KEY (task_id, sequence)
);

-- Audit events written in the same transaction as the state change they record; a relay ships them.
CREATE TABLE agent.audit_outbox (
    id           bigserial   PRIMARY KEY,
    event_id     uuid        NOT NULL CONSTRAINT audit_outbox_event_id_key UNIQUE,
    -- The encoded prfix.audit.v1.AuditEvent.
    payload      bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    attempts     integer     NOT NULL DEFAULT 0,
    delivered_at timestamptz
);

CREATE INDEX audit_outbox_pending_idx ON agent.audit_outbox (id) WHERE delivered_at IS NULL;

GRANT USAGE ON SCHEMA agent TO prfix_agent;
GRANT SELECT, INSERT, UPDATE, DELETE ON agent.tasks, agent.task_events, agent.audit_outbox TO prfix_agent;
GRANT USAGE ON SEQUENCE agent.audit_outbox_id_seq TO prfix_agent;
GRANT SELECT ON agent.schema_migrations TO prfix_agent;
