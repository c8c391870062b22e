-- Growth (issue 13): the language each user speaks, free trials, access codes, the owner's numbers. New
-- tables and columns with defaults only: no table is rewritten, each ALTER holds its table for milliseconds.
-- The two indexes at the end are built while writes to orders and subscriptions wait: seconds on millions of
-- rows (docs/OPERATIONS.md gives the figures measured by bench/scale.py).

-- A user's language: the one they chose with /language, else the one Telegram last told us (its base
-- subtag), kept so that messages sent without an update (a grant from an IPN, a reminder) speak it too.
CREATE TABLE users (
    user_id           bigint PRIMARY KEY,
    language          text CHECK (language ~ '^[a-z]{2,3}$'),            -- chosen with /language
    telegram_language text CHECK (telegram_language ~ '^[a-z]{2,3}$'),   -- from Telegram's language_code
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- A free trial per channel (0: none). Taken once per user and channel, ever: the primary key decides.
ALTER TABLE channels ADD COLUMN trial_days integer NOT NULL DEFAULT 0 CHECK (trial_days BETWEEN 0 AND 365);
CREATE TABLE trials (
    user_id    bigint NOT NULL,
    channel_id bigint NOT NULL REFERENCES channels (id),
    days       integer NOT NULL CHECK (days > 0),
    taken_at   timestamptz NOT NULL DEFAULT now(),
    ends_at    timestamptz NOT NULL,
    PRIMARY KEY (user_id, channel_id)
);
CREATE INDEX trials_channel ON trials (channel_id, taken_at);

-- Access codes: days of access (like an operator's grant) or a percentage off the next invoice.
CREATE TABLE access_codes (
    code          text PRIMARY KEY CHECK (code ~ '^[A-Z0-9]{1,40}$'),   -- stored upper case
    channel_id    bigint NOT NULL REFERENCES channels (id),
    days          integer CHECK (days BETWEEN 1 AND 3650),
    percent       integer CHECK (percent BETWEEN 1 AND 100),
    tier_position smallint CHECK (tier_position BETWEEN 1 AND 3),       -- a --percent code for one plan only
    uses          integer NOT NULL CHECK (uses > 0),
    used          integer NOT NULL DEFAULT 0 CHECK (used <= uses),
    expires_at    timestamptz,
    disabled_at   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((days IS NULL) <> (percent IS NULL))
);
CREATE INDEX access_codes_channel ON access_codes (channel_id, created_at);

-- One redemption per code and user. A --percent redemption waits for that user's next invoice in the
-- channel (order_id NULL until then).
CREATE TABLE code_redemptions (
    code        text NOT NULL REFERENCES access_codes (code),
    user_id     bigint NOT NULL,
    redeemed_at timestamptz NOT NULL DEFAULT now(),
    order_id    text REFERENCES orders (order_id),
    PRIMARY KEY (code, user_id)
);
CREATE INDEX code_redemptions_user ON code_redemptions (user_id) WHERE order_id IS NULL;

-- The price before a code's discount (NULL: no code) and the code, on the order it lowered.
ALTER TABLE orders ADD COLUMN list_price numeric(12, 2);
ALTER TABLE orders ADD COLUMN code text;

-- The owner's numbers (/stats, `telepayd report`) of one channel and month: its paid orders by when they
-- were paid (an order's updated_at is its grant), and its subscriptions by end, removed ones included (churn).
CREATE INDEX orders_paid ON orders (channel_id, updated_at) WHERE status = 'paid';
CREATE INDEX subscriptions_channel_ends ON subscriptions (channel_id, ends_at);
