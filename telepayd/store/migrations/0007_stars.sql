-- Telegram Stars (currency XTR) beside NowPayments: Stars prices on tiers, the rail of each order, each Stars
-- charge recorded once, and the Stars subscription (monthly renewal) a subscription may carry.

-- A tier's price in whole Stars beside its USD price; NULL: not offered in Stars. 10000 is Telegram's cap.
ALTER TABLE tiers ADD COLUMN stars_price integer CHECK (stars_price BETWEEN 1 AND 10000);

-- How an order is paid. A Stars order keeps its price in Stars (currency 'xtr', a whole number).
ALTER TABLE orders ADD COLUMN rail text NOT NULL DEFAULT 'nowpayments' CHECK (rail IN ('nowpayments', 'stars'));
-- A renewal (a later charge of a Stars subscription) is an order of its own, linked to the order whose
-- payload the subscription carries.
ALTER TABLE orders ADD COLUMN renews_order_id text REFERENCES orders (order_id);
CREATE INDEX orders_renews ON orders (renews_order_id) WHERE renews_order_id IS NOT NULL;

-- Each Stars charge once, by Telegram's telegram_payment_charge_id (like an IPN's payment id).
CREATE TABLE stars_charges (
    charge_id          text PRIMARY KEY CHECK (length(charge_id) <= 256),
    order_id           text REFERENCES orders (order_id),   -- the order it paid (a renewal: its own order)
    payload            text NOT NULL,                       -- the invoice payload: the order id it was sold as
    user_id            bigint NOT NULL,
    currency           text NOT NULL,
    amount             bigint NOT NULL,
    is_recurring       boolean NOT NULL DEFAULT false,
    subscription_until timestamptz,                         -- Telegram's subscription_expiration_date
    source             text NOT NULL CHECK (source IN ('update', 'sweep')),
    outcome            text NOT NULL DEFAULT 'received',
    body               text NOT NULL,
    received_at        timestamptz NOT NULL DEFAULT now(),
    granted_at         timestamptz,
    granted_from       timestamptz,                         -- the access it bought (a refund takes back what is left)
    granted_until      timestamptz,
    refunded_at        timestamptz
);
CREATE INDEX stars_charges_order ON stars_charges (order_id);

-- The Stars subscription that renews this access: its first charge (what editUserStarSubscription names),
-- Telegram's next charge date, and whether the buyer cancelled it.
ALTER TABLE subscriptions ADD COLUMN renewal_charge_id text;
ALTER TABLE subscriptions ADD COLUMN renewal_until timestamptz;
ALTER TABLE subscriptions ADD COLUMN renewal_canceled boolean NOT NULL DEFAULT false;

-- Where the transactions sweep stopped reading getStarTransactions (one row).
CREATE TABLE stars_sweep (
    id         smallint PRIMARY KEY CHECK (id = 1),
    read_up_to integer NOT NULL DEFAULT 0,
    swept_at   timestamptz
);

-- A renewal asks whether the buyer's latest join link to the channel was used (then no new link is sent).
CREATE INDEX join_links_latest ON join_links (user_id, chat_id, created_at);

-- The Stars sweep runs only once a Stars order exists: found without reading the crypto orders.
CREATE INDEX orders_stars ON orders (created_at) WHERE rail = 'stars';
