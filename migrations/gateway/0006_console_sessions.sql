-- Browser sessions of the web console (docs/console.md). The browser holds a random token in an
-- HttpOnly cookie; only its SHA-256 is stored. The edge exchanges a live session for a short-lived
-- access token on each REST call, so a session never reaches page scripts. A session ends at its
-- idle expiry (no call for `console_idle_secs`), its absolute expiry, logout, or when its user is
-- disabled or deleted.

CREATE TABLE gateway.console_sessions (
    -- SHA-256 of the cookie's token; the token itself is never stored.
    token_hash   bytea       PRIMARY KEY,
    username     text        NOT NULL REFERENCES gateway.users (username) ON DELETE CASCADE,
    -- The per-session CSRF token state-changing requests carry in `X-CSRF-Token` (not a secret
    -- from the page, which reads it from `GET /console/session`, only from other sites).
    csrf_token   text        NOT NULL,
    -- SHA-256 of the refresh token of the Login the session began with: logout revokes its family.
    refresh_hash bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);

CREATE INDEX console_sessions_expires_idx ON gateway.console_sessions (expires_at);

GRANT SELECT, INSERT, UPDATE, DELETE ON gateway.console_sessions TO prfix_gateway;
