-- Reviews a forge's webhook started: the pull (merge) request each one is about, so that a newer
-- head of the same pull request can find (and cancel) the reviews of older heads, and so that the
-- task says where its review was posted and who caused it. NULL for tasks created through the API.

ALTER TABLE agent.tasks
    ADD COLUMN forge              text,
    ADD COLUMN forge_repository   text,
    ADD COLUMN forge_number       bigint,
    ADD COLUMN forge_head_sha     text,
    -- Who caused the delivery (pusher, commenter), the pull request's author, the delivery's id.
    ADD COLUMN forge_triggered_by text,
    ADD COLUMN forge_author       text,
    ADD COLUMN forge_delivery_id  text,
    ADD CONSTRAINT tasks_forge_complete CHECK (
        (forge IS NULL AND forge_repository IS NULL AND forge_number IS NULL AND forge_head_sha IS NULL)
        OR (forge IS NOT NULL AND forge_repository IS NOT NULL AND forge_number IS NOT NULL
            AND forge_head_sha IS NOT NULL)
    );

-- The active reviews of one pull request, for superseding them.
CREATE INDEX tasks_forge_pull_idx ON agent.tasks (forge, forge_repository, forge_number)
    WHERE forge IS NOT NULL AND state IN (1, 2);
