-- The flags a task was created with: the context they were evaluated for and each evaluation that
-- decides what the task does (kill switch, model and prompt variants), as JSON:
-- {"context": {"user": .., "roles": [..], "repository": .., "forge": .., "model": ..},
--  "evaluations": [{"flag": .., "enabled": .., "variant": .., "value": .., "source": ..}]}.
-- '{}' for tasks created before this migration.

ALTER TABLE agent.tasks ADD COLUMN flags jsonb NOT NULL DEFAULT '{}'::jsonb;
