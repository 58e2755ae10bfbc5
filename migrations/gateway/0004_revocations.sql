-- Token revocations, the source of truth every verifier (gateway, agent, audit) copies into memory:
-- revoked token ids (logout) and not-before times per subject (a user disabled, a role removed, a
-- password changed) and per API key (revoked). A token is refused when its `jti` is revoked or its
-- `iat` (whole seconds) is before the not-before of its subject or of its key.
--
-- Every change bumps `revocation_state.version` in its transaction and stamps its row with the new
-- version, then announces it with `pg_notify('prfix_revocations', version)`. The bump takes the
-- row's lock, so changes commit in version order: a reader that holds version v and reads every
-- row above v in one snapshot is exactly current as of that snapshot.

CREATE TABLE gateway.revocation_state (
    singleton boolean PRIMARY KEY DEFAULT true CONSTRAINT revocation_state_singleton CHECK (singleton),
    version   bigint  NOT NULL DEFAULT 0
);
INSERT INTO gateway.revocation_state (singleton, version) VALUES (true, 0);

CREATE TABLE gateway.revoked_tokens (
    jti        text        PRIMARY KEY,
    -- The token's own expiry: past it the row means nothing and is purged.
    expires_at timestamptz NOT NULL,
    version    bigint      NOT NULL,
    revoked_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX revoked_tokens_version_idx ON gateway.revoked_tokens (version);
CREATE INDEX revoked_tokens_expires_idx ON gateway.revoked_tokens (expires_at);

CREATE TABLE gateway.token_not_before (
    -- `subject`: `id` is a token's `sub`; `api_key`: `id` is a token's `key` claim.
    scope      text        NOT NULL CONSTRAINT token_not_before_scope_known CHECK (scope IN ('subject', 'api_key')),
    id         text        NOT NULL,
    -- Seconds since the epoch on the gateway's clock, the unit of `iat`: tokens with iat < this
    -- are refused. Set to the second after the change, so tokens issued earlier in that second go too.
    not_before bigint      NOT NULL,
    version    bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, id)
);
CREATE INDEX token_not_before_version_idx ON gateway.token_not_before (version);

-- The verifying services read these tables under their own roles. The roles are cluster-wide and
-- may not exist yet when the gateway migrates first; create them as their own migrations would.
DO $$
DECLARE
    reader text;
BEGIN
    FOREACH reader IN ARRAY ARRAY['prfix_agent', 'prfix_audit'] LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = reader) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', reader);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL; -- created concurrently by another migration
            END;
        END IF;
    END LOOP;
END
$$;

GRANT SELECT, UPDATE ON gateway.revocation_state TO prfix_gateway;
GRANT SELECT, INSERT, UPDATE, DELETE ON gateway.revoked_tokens, gateway.token_not_before TO prfix_gateway;
GRANT USAGE ON SCHEMA gateway TO prfix_agent, prfix_audit;
GRANT SELECT ON gateway.revocation_state, gateway.revoked_tokens, gateway.token_not_before TO prfix_agent, prfix_audit;

-- Verifiers that started before this table existed learn of it now.
SELECT pg_notify('prfix_revocations', '0');
