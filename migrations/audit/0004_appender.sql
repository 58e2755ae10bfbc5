-- Who appended each event and when the audit service received it, inside the leaf hash (canonical
-- encoding v2, docs/audit.md). Rows from before keep encoding 1 and no appender: their leaf hashes
-- were taken over the v1 encoding and still verify with it. Every row written from now on is v2 and
-- carries all three facts (the CHECK says so); the table stays append-only (no UPDATE fills old rows).

ALTER TABLE audit.events
    ADD COLUMN encoding            smallint    NOT NULL DEFAULT 1,
    ADD COLUMN appender_subject    text,
    ADD COLUMN appender_credential text,
    ADD COLUMN received_at         timestamptz,
    ADD CONSTRAINT events_encoding_known CHECK (
        encoding = 1 AND appender_subject IS NULL AND appender_credential IS NULL AND received_at IS NULL
        OR encoding = 2 AND appender_subject IS NOT NULL AND appender_credential IS NOT NULL AND received_at IS NOT NULL
    );

-- Old rows keep the 1 they were given above; new rows must say their encoding.
ALTER TABLE audit.events ALTER COLUMN encoding DROP DEFAULT;

CREATE INDEX events_appender_idx ON audit.events (appender_subject, sequence);
