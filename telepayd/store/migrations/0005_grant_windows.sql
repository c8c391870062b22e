-- What each payment granted, so a refund takes back only that (and only what is left of it); revokes are
-- remembered, because a revoke ends every grant made before it.

ALTER TABLE payments ADD COLUMN granted_from timestamptz;   -- the access this payment bought: from ...
ALTER TABLE payments ADD COLUMN granted_until timestamptz;  -- ... until (NULL for donations and old rows)
ALTER TABLE subscriptions ADD COLUMN revoked_at timestamptz;  -- the last `subscriptions revoke`

-- Due messages by time, beside (priority, id): with many messages waiting for a retry, the due ones are
-- found without reading the others.
CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE status = 'pending';
