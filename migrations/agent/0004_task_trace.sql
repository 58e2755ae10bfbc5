-- The W3C trace context (`traceparent`) of the call that created a task, so that the worker's span,
-- its calls to Ollama and the task's audit records join the caller's trace. Empty for tasks created
-- before this migration or without a trace.

ALTER TABLE agent.tasks ADD COLUMN traceparent text NOT NULL DEFAULT '';
