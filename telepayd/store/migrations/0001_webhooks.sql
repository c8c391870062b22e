-- Webhook-ids seen (replay protection and idempotency), accepted notifications and broadcast jobs.

CREATE TABLE webhook_messages (
    webhook_id  text PRIMARY KEY,
    route       text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_messages_received_at ON webhook_messages (received_at);

CREATE TABLE notifications (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id      text NOT NULL UNIQUE,
    open_channel_id text NOT NULL,
    payment_type    text NOT NULL,
    payment_data    jsonb NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE broadcast_jobs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id       text UNIQUE,           -- NULL when started from the command line
    open_channel_ids text[],                -- NULL means every channel
    requested_at     timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz
);
