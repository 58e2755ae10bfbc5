-- The gateway's schema and role. Users, refresh tokens and API keys arrive with edge security.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'prfix_gateway') THEN
        BEGIN
            CREATE ROLE prfix_gateway NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL; -- created concurrently by another database's migration: roles are cluster-wide
        END;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA gateway TO prfix_gateway;
GRANT SELECT ON gateway.schema_migrations TO prfix_gateway;
