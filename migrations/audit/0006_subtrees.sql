-- Heads of complete subtrees of the log's Merkle tree at every 8th level (256 leaves, 65,536, 2^24...),
-- written by the checkpointer as they complete: any tree head or proof is then read from O(log n)
-- stored hashes instead of every leaf (as Trillian Tessera's tiles do). Append-only like the events:
-- a changed row is caught by the checkpointer (heads recomputed from it stop matching the signed
-- checkpoints) and by every client verifying a proof.

CREATE TABLE audit.subtrees (
    level smallint NOT NULL CONSTRAINT subtrees_level_stride CHECK (level > 0 AND level % 8 = 0),
    index bigint   NOT NULL CONSTRAINT subtrees_index_positive CHECK (index >= 0),
    hash  bytea    NOT NULL CONSTRAINT subtrees_hash_len CHECK (octet_length(hash) = 32),
    PRIMARY KEY (level, index)
);

CREATE TRIGGER subtrees_refuse_update_delete
    BEFORE UPDATE OR DELETE ON audit.subtrees
    FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER subtrees_refuse_truncate
    BEFORE TRUNCATE ON audit.subtrees
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();
ALTER TABLE audit.subtrees ENABLE ALWAYS TRIGGER subtrees_refuse_update_delete;
ALTER TABLE audit.subtrees ENABLE ALWAYS TRIGGER subtrees_refuse_truncate;

GRANT SELECT, INSERT ON audit.subtrees TO prfix_audit;
