"""The pure parts of reconciliation: what a buyer's message means, the per-user limit, what each outcome
tells the buyer, how the money rules' answers are classified, and the [reconcile] settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from telepayd.config import ReconcileConfig, load
from telepayd.errors import ConfigError
from telepayd.handlers import payment_check
from telepayd.handlers.payment_check import PerHourLimit, describe, payment_id_in
from telepayd.nowpayments import PaymentProviderError, _means_not_found
from telepayd.reconcile import (
    APPLIED, GRANTED, INVALID, NOT_FOUND, OTHER_ORDER, REFUSED, UNCHANGED, UNREACHABLE, Check, _classify,
)
from tests.harness import ConfigFiles


@pytest.mark.parametrize("text, expected", [
    ("5077125123", 5077125123), (" 5077125123\n", 5077125123), ("123456", 123456),
    ("12345", None), ("", None), (None, None), ("50771 25123", None), ("-5077125123", None),
    ("٥٠٧٧١٢٥١٢٣", None),  # Arabic-Indic digits: not an id
    ("5077125123a", None), ("9" * 20, None), ("0000000", None), ("9223372036854775807", 9223372036854775807),
])
def test_a_payment_id_is_six_to_nineteen_ascii_digits(text, expected):
    assert payment_id_in(text) == expected


def test_the_per_user_limit_allows_a_burst_then_the_hourly_rate(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(payment_check.time, "monotonic", lambda: now[0])
    limit = PerHourLimit(6, 5)
    assert [limit.acquire(1) for _ in range(5)] == [0.0] * 5
    wait = limit.acquire(1)
    assert 590 <= wait <= 610  # one check every 10 minutes after the burst
    assert limit.acquire(2) == 0.0  # each user their own
    now[0] += 601
    assert limit.acquire(1) == 0.0
    assert limit.acquire(1) > 0


@pytest.mark.parametrize("rules, outcome", [
    ("granted", GRANTED), ("duplicate", UNCHANGED), ("already granted", UNCHANGED),
    ("ignored: older than finished", UNCHANGED), ("ignored: failed is final", UNCHANGED),
    ("price_mismatch", REFUSED), ("payment_order_mismatch", REFUSED), ("unknown_channel", REFUSED),
    ("status confirming", APPLIED), ("status failed", APPLIED), ("refunded: access taken back", APPLIED),
])
def test_the_money_rules_answers_are_classified(rules, outcome):
    assert _classify(rules) == outcome


@pytest.mark.parametrize("check, says", [
    (Check(NOT_FOUND, 7), "knows no payment"),
    (Check(OTHER_ORDER, 7, "tp_someone_else", "finished"), "is for another order"),
    (Check(UNREACHABLE, 7, detail="NowPayments GET /payment/7 failed: 503"), "cannot be reached"),
    (Check(INVALID, 7, detail="bad"), "cannot be reached"),
    (Check(REFUSED, 7, "tp_x", "finished", "price_mismatch"), "cannot be applied to its order"),
    (Check(APPLIED, 7, "tp_x", "waiting", "status waiting"), "has not received the money"),
    (Check(GRANTED, 7, "tp_x", "finished", "granted", kind="donation"), "your donation has reached the channel"),
    (Check(UNCHANGED, 7, "tp_x", "finished", "duplicate", kind="donation"), "your donation has reached the channel"),
    (Check(GRANTED, 7, "tp_x", "finished", "granted"), "Your access is granted"),
    (Check(UNCHANGED, 7, "tp_x", "finished", "duplicate"), "already applied"),
    (Check(APPLIED, 7, "tp_x", "confirming", "status confirming"), "still confirming"),
    (Check(UNCHANGED, 7, "tp_x", "sending", "duplicate"), "still sending"),
    (Check(APPLIED, 7, "tp_x", "partially_paid", "status partially_paid"), "only partly paid"),
    (Check(APPLIED, 7, "tp_x", "expired", "status expired"), "expired at NowPayments"),
    (Check(APPLIED, 7, "tp_x", "refunded", "refunded"), "was refunded"),
])
def test_each_outcome_tells_the_buyer_something_precise_and_nothing_internal(check, says):
    text = describe(check)
    assert says in text
    assert "tp_" not in text and "503" not in text and "price_mismatch" not in text


@pytest.mark.parametrize("status, detail, not_found", [
    (404, '{"message":"Payment not found"}', True), (400, '{"message":"Payment not found"}', True),
    (400, '{"message":"Payment id must be a number"}', False), (401, "Invalid api key", False),
    (None, "", False),
])
def test_not_found_is_told_apart_from_other_refusals(status, detail, not_found):
    assert _means_not_found(PaymentProviderError("x", status=status, detail=detail)) is not_found


def test_reconcile_settings_are_validated(tmp_path: Path):
    files = ConfigFiles(tmp_path, "postgresql://telepay@localhost/telepay")
    files.write()
    assert load(files.path).reconcile == ReconcileConfig()
    files.settings = {"reconcile": {"stale_after_minutes": 0, "interval_seconds": "5", "buyer_checks_per_hour": 101,
                                    "batch": 3}}
    files.write()
    with pytest.raises(ConfigError) as caught:
        load(files.path)
    text = "\n".join(caught.value.problems)
    assert "[reconcile] stale_after_minutes: expected a whole number from 1 to 10080, got 0" in text
    assert "[reconcile] interval_seconds: expected a whole number from 1 to 86400, got '5'" in text
    assert "[reconcile] buyer_checks_per_hour: expected a whole number from 1 to 100, got 101" in text
    assert "[reconcile] batch: unknown key" in text
