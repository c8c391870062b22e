-- Owner notifications through the outbox, channel posts (broadcasts), the donation keypad, expiry state.

ALTER TABLE outbox ALTER COLUMN chat_id DROP NOT NULL;   -- NULL: resolved at delivery (notifications)
CREATE INDEX outbox_failed ON outbox (id) WHERE status = 'failed';
CREATE INDEX outbox_sent_at ON outbox (sent_at) WHERE status = 'sent';

ALTER TABLE notifications ADD COLUMN delivered_at timestamptz;

CREATE TABLE channel_posts (
    channel_id bigint PRIMARY KEY REFERENCES channels (id),
    chat_id    bigint NOT NULL,
    message_id bigint NOT NULL,
    posted_at  timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE broadcast_jobs ADD COLUMN started_at timestamptz;

CREATE TABLE keypad_sessions (
    user_id    bigint PRIMARY KEY,
    channel_id bigint NOT NULL REFERENCES channels (id),
    chat_id    bigint NOT NULL,
    message_id bigint NOT NULL,
    amount     text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX keypad_sessions_updated ON keypad_sessions (updated_at);

ALTER TABLE subscriptions ADD COLUMN reminded_days integer[] NOT NULL DEFAULT '{}';
ALTER TABLE subscriptions ADD COLUMN removed_at timestamptz;
CREATE INDEX subscriptions_ends_at ON subscriptions (ends_at) WHERE removed_at IS NULL;
