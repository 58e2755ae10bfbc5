-- Every event carries its RFC 6962 leaf hash and the chain hash SHA-256(previous chain || leaf), and
-- signed checkpoints (Merkle tree heads) cover the log. Rows from before the hash chain cannot be
-- given hashes (the table refuses UPDATE), so this migration needs an empty log.

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM audit.events) THEN
        RAISE EXCEPTION 'audit.events has rows from before the hash chain; export them and start from a new database';
    END IF;
END
$$;

ALTER TABLE audit.events
    ADD COLUMN leaf_hash  bytea NOT NULL CONSTRAINT events_leaf_hash_len CHECK (octet_length(leaf_hash) = 32),
    ADD COLUMN chain_hash bytea NOT NULL CONSTRAINT events_chain_hash_len CHECK (octet_length(chain_hash) = 32);

CREATE TABLE audit.checkpoints (
    tree_size   bigint      PRIMARY KEY CONSTRAINT checkpoints_size_positive CHECK (tree_size > 0),
    root_hash   bytea       NOT NULL CONSTRAINT checkpoints_root_len CHECK (octet_length(root_hash) = 32),
    signed_note text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER checkpoints_refuse_update_delete
    BEFORE UPDATE OR DELETE ON audit.checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER checkpoints_refuse_truncate
    BEFORE TRUNCATE ON audit.checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();
ALTER TABLE audit.checkpoints ENABLE ALWAYS TRIGGER checkpoints_refuse_update_delete;
ALTER TABLE audit.checkpoints ENABLE ALWAYS TRIGGER checkpoints_refuse_truncate;

GRANT SELECT, INSERT ON audit.checkpoints TO prfix_audit;
