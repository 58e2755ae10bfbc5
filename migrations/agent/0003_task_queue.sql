-- The task queue: a per-task event counter (taken under the task's row lock, so sequences have no
-- gaps and no duplicates) and an index for finding running tasks whose lease ran out.

ALTER TABLE agent.tasks ADD COLUMN last_sequence bigint NOT NULL DEFAULT 0;
CREATE INDEX tasks_lease_idx ON agent.tasks (lease_expires_at) WHERE state = 2;
