-- A task created by `prfix eval` carries the id of the evaluation run it belongs to, so the tasks
-- (and their audit records) of one run can be told apart from everyday reviews and fixes. NULL:
-- not part of an evaluation (or created before this migration).

ALTER TABLE agent.tasks ADD COLUMN eval_run_id text;
