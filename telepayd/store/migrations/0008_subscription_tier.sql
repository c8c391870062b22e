-- The tier behind each subscription (that of the last plan paid for; a later refund does not change it),
-- kept on the subscription: counting the running subscriptions by tier (GET /metrics) then reads the
-- subscriptions alone, where it looked up the latest order of every running subscription (1.3 s a read with
-- 300,000 running).
--
-- Holds subscriptions (ACCESS EXCLUSIVE) for its whole run: 5-8 s on a million subscriptions with 300,000
-- running and 3 million orders (bench/scale.py). The daemon applies it at start, serving degraded until it is
-- done (503 with Retry-After: webhooks and IPNs are sent again); other daemons on the database wait for the
-- table meanwhile. With [database] migrate_on_start = false, run `telepayd migrate` at a quiet time.

ALTER TABLE subscriptions ADD COLUMN tier_id bigint;  -- NULL: granted by an operator, never paid for

-- Only the running ones: an ended subscription gets its tier again with its next payment. The order paid
-- last (an order's updated_at is when it was marked paid, the grant); an order refunded since is left out
-- here, where the daemon keeps its tier: for rows before this migration only, and only a label.
UPDATE subscriptions s SET tier_id = (
    SELECT o.tier_id FROM orders o
    WHERE o.user_id = s.user_id AND o.channel_id = s.channel_id AND o.kind = 'subscription' AND o.status = 'paid'
    ORDER BY o.updated_at DESC LIMIT 1)
WHERE s.ends_at > now();

-- One index for the sweeps' reads by end and for that count: with the channel and the tier in it, the
-- running subscriptions are counted from the index alone. It replaces subscriptions_ends_at.
CREATE INDEX subscriptions_running ON subscriptions (ends_at) INCLUDE (channel_id, tier_id) WHERE removed_at IS NULL;
DROP INDEX subscriptions_ends_at;
