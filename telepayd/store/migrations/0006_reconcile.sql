-- Reconciliation: payments are re-checked with NowPayments when no IPN moved them for a while, and each
-- recorded status says where it came from.

-- 'ipn' (a signed callback) or 'reconcile' (our own GET /v1/payment/{id}: the sweep, the operator, a buyer).
ALTER TABLE ipn_events ADD COLUMN source text NOT NULL DEFAULT 'ipn';

-- When the payment was last asked about, and how many times without a change (the gap between checks
-- doubles with each, so a payment that never moves costs a few calls a day, not one a sweep).
ALTER TABLE payments ADD COLUMN checked_at timestamptz;
ALTER TABLE payments ADD COLUMN checks integer NOT NULL DEFAULT 0;

-- The sweep looks only at payments still moving; finished and final ones (nearly all) are not in the index.
CREATE INDEX payments_moving ON payments (updated_at)
    WHERE status IN ('waiting', 'confirming', 'confirmed', 'sending', 'partially_paid');

-- Unpaid orders are expired after the invoice's lifetime; the index holds only the open ones.
CREATE INDEX orders_open ON orders (created_at) WHERE status IN ('created', 'invoiced');

-- For the metrics: invoices created lately, and the time of the last IPN (both read at each scrape).
CREATE INDEX orders_created ON orders (created_at);
CREATE INDEX ipn_events_received ON ipn_events (received_at) WHERE source = 'ipn';  -- not the lookups
