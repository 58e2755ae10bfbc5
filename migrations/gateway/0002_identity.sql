-- Users, refresh tokens (stored hashed, in families for reuse detection) and API keys (stored hashed).

CREATE TABLE gateway.users (
    username      text        PRIMARY KEY CONSTRAINT users_username_format CHECK (username ~ '^[a-z0-9._-]{3,64}$'),
    password_hash text        NOT NULL,
    roles         text[]      NOT NULL DEFAULT '{}',
    disabled      boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    last_login_at timestamptz
);

CREATE TABLE gateway.refresh_tokens (
    -- SHA-256 of the token; the token itself is never stored.
    token_hash bytea       PRIMARY KEY,
    -- Every rotation of one login shares a family; reuse of a spent token revokes the family.
    family     uuid        NOT NULL,
    username   text        NOT NULL REFERENCES gateway.users (username) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    revoked_at timestamptz
);

CREATE INDEX refresh_tokens_family_idx ON gateway.refresh_tokens (family);

CREATE TABLE gateway.api_keys (
    key_id       text        PRIMARY KEY,
    name         text        NOT NULL,
    owner        text        NOT NULL,
    roles        text[]      NOT NULL DEFAULT '{}',
    -- SHA-256 of the secret (random, 256 bits: a slow hash adds nothing).
    secret_hash  bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    last_used_at timestamptz,
    revoked_at   timestamptz
);

GRANT SELECT, INSERT, UPDATE ON gateway.users, gateway.refresh_tokens, gateway.api_keys TO prfix_gateway;
