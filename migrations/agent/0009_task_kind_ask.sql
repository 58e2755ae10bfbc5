-- Questions about a pull request's change (`/ask` in a comment) are tasks of their own kind,
-- TASK_KIND_ASK = 4.

ALTER TABLE agent.tasks DROP CONSTRAINT tasks_kind_known;
ALTER TABLE agent.tasks ADD CONSTRAINT tasks_kind_known CHECK (kind BETWEEN 1 AND 4);
