"""Label values in /metrics come from fixed sets: whatever a caller passes, a label never grows past them."""

from __future__ import annotations

from telepayd.metrics import Instruments
from telepayd.reconcile import OUTCOMES


def test_reconcile_outcomes_are_labels_as_they_are_and_anything_else_is_other():
    seen = Instruments()
    for outcome in OUTCOMES:
        seen.count_reconciled(outcome)
    seen.count_reconciled("payment 5077125801 of order tp_4f0c2a9e1b7d3c5a8e6f")
    seen.count_reconciled("price_mismatch")
    assert set(seen.reconciled) == {*OUTCOMES, "price_mismatch", "other"}
    assert seen.reconciled["other"] == 1


def test_metrics_off_counts_nothing():
    off = Instruments(enabled=False)
    off.paused()
    off.count_reconciled("granted")
    off.delivered("message", sent=True)
    assert off.outbox_pauses == 0 and not off.reconciled and not off.outbox_sent
