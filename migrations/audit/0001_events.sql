-- The audit log's events and the least-privileged role the audit service runs as.
-- The role may read and append, nothing else; later migrations add the hash chain and checkpoints.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'prfix_audit') THEN
        BEGIN
            CREATE ROLE prfix_audit NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL; -- created concurrently by another database's migration: roles are cluster-wide
        END;
    END IF;
END
$$;

CREATE TABLE audit.events (
    sequence      bigint      PRIMARY KEY CONSTRAINT events_sequence_positive CHECK (sequence > 0),
    event_id      uuid        NOT NULL CONSTRAINT events_event_id_key UNIQUE,
    occurred_at   timestamptz NOT NULL,
    actor_subject text        NOT NULL,
    actor_roles   text[]      NOT NULL DEFAULT '{}',
    actor_ip      text        NOT NULL DEFAULT '',
    action        text        NOT NULL,
    resource      text        NOT NULL DEFAULT '',
    result        smallint    NOT NULL CONSTRAINT events_result_known CHECK (result BETWEEN 1 AND 3),
    request_id    text        NOT NULL DEFAULT '',
    trace_id      text        NOT NULL DEFAULT '',
    metadata      jsonb       NOT NULL DEFAULT '{}',
    recorded_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX events_occurred_at_idx ON audit.events (occurred_at);
CREATE INDEX events_actor_idx ON audit.events (actor_subject, sequence);
CREATE INDEX events_action_idx ON audit.events (action, sequence);
CREATE INDEX events_resource_idx ON audit.events (resource, sequence);

GRANT USAGE ON SCHEMA audit TO prfix_audit;
GRANT SELECT, INSERT ON audit.events TO prfix_audit;
GRANT SELECT ON audit.schema_migrations TO prfix_audit;
