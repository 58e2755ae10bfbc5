-- Witnesses' cosignatures of the log's checkpoints (c2sp.org/tlog-witness, c2sp.org/tlog-cosignature):
-- one row per checkpoint and witness, append-only like the checkpoints themselves. A checkpoint as
-- served (GetCheckpoint, exports) is its signed note followed by these signature lines.

CREATE TABLE audit.cosignatures (
    tree_size      bigint      NOT NULL REFERENCES audit.checkpoints (tree_size),
    -- The witness's verifier key (`<name>+<key ID>+<key>`): names the witness beyond its name.
    witness_key    text        NOT NULL,
    -- The note signature line, without its newline.
    signature_line text        NOT NULL CONSTRAINT cosignatures_line_form CHECK (signature_line LIKE '— % %'),
    -- The witness's timestamp in the cosignature.
    cosigned_at    timestamptz NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tree_size, witness_key)
);

CREATE INDEX cosignatures_witness_idx ON audit.cosignatures (witness_key, tree_size);

CREATE TRIGGER cosignatures_refuse_update_delete
    BEFORE UPDATE OR DELETE ON audit.cosignatures
    FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER cosignatures_refuse_truncate
    BEFORE TRUNCATE ON audit.cosignatures
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();
ALTER TABLE audit.cosignatures ENABLE ALWAYS TRIGGER cosignatures_refuse_update_delete;
ALTER TABLE audit.cosignatures ENABLE ALWAYS TRIGGER cosignatures_refuse_truncate;

GRANT SELECT, INSERT ON audit.cosignatures TO prfix_audit;
