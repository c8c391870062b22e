-- Buyer-facing messages first in the outbox; invite links revoked when access ends.

-- 0: a buyer waits for it (a join link after a payment); 1: everything else. Delivery takes due messages
-- by (priority, id), so a queue of owner notifications never holds back a buyer's link.
ALTER TABLE outbox ADD COLUMN priority smallint NOT NULL DEFAULT 1;
DROP INDEX IF EXISTS outbox_due;
CREATE INDEX outbox_pending ON outbox (priority, id) WHERE status = 'pending';

-- A link is revoked with Telegram when its user's access ends (removal or revoke); NULL while usable.
ALTER TABLE join_links ADD COLUMN revoked_at timestamptz;
CREATE INDEX join_links_user_chat ON join_links (user_id, chat_id) WHERE revoked_at IS NULL;

