-- A task created with an API key belongs to the key's owner (a user), and the key that acted is
-- recorded beside the owner. NULL: created with the owner's own login (or before this migration).

ALTER TABLE agent.tasks ADD COLUMN api_key_id text;
