-- Forge webhook deliveries the gateway has taken, by the forge's delivery id, so that a delivery
-- sent again (a forge's retry or redelivery, or a replay) is acknowledged and ignored on every
-- replica. A row is written only for a delivery whose signature checked and whose repository is
-- configured; refusals are in the audit log, not here.

CREATE TABLE gateway.webhook_deliveries (
    -- The forge connection's name (`gateway.forges.<name>`).
    forge        text        NOT NULL,
    -- GitHub `X-GitHub-Delivery`, GitLab `X-Gitlab-Event-UUID`, Gitea `X-Gitea-Delivery`.
    delivery_id  text        NOT NULL,
    -- SHA-256 of the raw body: the same id with another body is a replay, refused with 409.
    body_sha256  bytea       NOT NULL,
    event        text        NOT NULL,
    repository   text        NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT webhook_deliveries_forge_delivery_key PRIMARY KEY (forge, delivery_id)
);

CREATE INDEX webhook_deliveries_received_idx ON gateway.webhook_deliveries (received_at);

GRANT SELECT, INSERT, DELETE ON gateway.webhook_deliveries TO prfix_gateway;
