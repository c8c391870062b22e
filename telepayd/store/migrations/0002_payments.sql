-- Channels and tiers for sale, orders, NowPayments payments and IPN events, subscriptions, join links,
-- anomalies, the outbox of messages to Telegram, and the operator's manual actions.

CREATE TABLE channels (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,   -- the short "channel key" in deep links
    open_channel_id   bigint NOT NULL,
    closed_channel_id bigint NOT NULL,
    owner_chat_id     bigint NOT NULL,
    title             text NOT NULL,
    description       text NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL DEFAULT now(),
    removed_at        timestamptz
);
CREATE UNIQUE INDEX channels_open_active ON channels (open_channel_id) WHERE removed_at IS NULL;
CREATE UNIQUE INDEX channels_closed_active ON channels (closed_channel_id) WHERE removed_at IS NULL;

CREATE TABLE tiers (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel_id bigint NOT NULL REFERENCES channels (id),
    position   smallint NOT NULL,
    price      numeric(12, 2) NOT NULL CHECK (price > 0),
    days       integer NOT NULL CHECK (days > 0),
    retired_at timestamptz
);
CREATE INDEX tiers_channel ON tiers (channel_id) WHERE retired_at IS NULL;

CREATE TABLE orders (
    order_id     text PRIMARY KEY CHECK (length(order_id) <= 64),
    kind         text NOT NULL CHECK (kind IN ('subscription', 'donation')),
    user_id      bigint NOT NULL,
    username     text,
    channel_id   bigint NOT NULL REFERENCES channels (id),
    tier_id      bigint REFERENCES tiers (id),
    days         integer,
    price        numeric(12, 2) NOT NULL CHECK (price > 0),
    currency     text NOT NULL DEFAULT 'usd',
    status       text NOT NULL DEFAULT 'created',
    invoice_id   text,
    invoice_url  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_user ON orders (user_id, created_at DESC);

CREATE TABLE payments (
    payment_id    bigint PRIMARY KEY,
    order_id      text NOT NULL REFERENCES orders (order_id),
    status        text NOT NULL,
    actually_paid numeric,
    pay_currency  text,
    granted_at    timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payments_order ON payments (order_id);

CREATE TABLE ipn_events (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payment_id     bigint,
    payment_status text,
    order_id       text,
    body           text NOT NULL,
    outcome        text NOT NULL DEFAULT 'received',
    received_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX ipn_events_once ON ipn_events (payment_id, payment_status) WHERE payment_id IS NOT NULL;
CREATE INDEX ipn_events_order ON ipn_events (order_id);

CREATE TABLE subscriptions (
    user_id      bigint NOT NULL,
    channel_id   bigint NOT NULL REFERENCES channels (id),
    ends_at      timestamptz NOT NULL,
    last_link_at timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, channel_id)
);

CREATE TABLE join_links (
    invite_link text PRIMARY KEY,
    order_id    text REFERENCES orders (order_id),
    user_id     bigint NOT NULL,
    chat_id     bigint NOT NULL,
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    approved_at timestamptz
);

CREATE TABLE anomalies (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind       text NOT NULL,
    order_id   text,
    detail     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX anomalies_kind ON anomalies (kind);

CREATE TABLE outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            text NOT NULL,
    chat_id         bigint NOT NULL,
    payload         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);
CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE status = 'pending';

CREATE TABLE operator_actions (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    action     text NOT NULL,
    user_id    bigint,
    channel_id bigint,
    detail     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
