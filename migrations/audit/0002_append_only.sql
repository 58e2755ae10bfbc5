-- The events table is append-only for everyone, owners and superusers included: UPDATE and DELETE
-- (per row) and TRUNCATE (per statement) are refused by triggers that stay on in replica mode
-- (ENABLE ALWAYS), so `session_replication_role = replica` does not switch them off. Disabling them
-- takes ALTER TABLE by the owner, and what is changed then is caught by the hash chain and the
-- signed checkpoints.

CREATE FUNCTION audit.refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit.events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER events_refuse_update_delete
    BEFORE UPDATE OR DELETE ON audit.events
    FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();

CREATE TRIGGER events_refuse_truncate
    BEFORE TRUNCATE ON audit.events
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();

ALTER TABLE audit.events ENABLE ALWAYS TRIGGER events_refuse_update_delete;
ALTER TABLE audit.events ENABLE ALWAYS TRIGGER events_refuse_truncate;
