"""The pure parts of Telegram Stars: plan syntax, a donation's Stars, the pre-checkout decision, button
data, metric labels and the [stars] config section."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from telepayd import stars, texts
from telepayd.texts import ENGLISH
from telepayd.admin import UsageError, parse_tier
from telepayd.config import load
from telepayd.errors import ConfigError
from telepayd.handlers.callbacks import decode, encode
from telepayd.metrics import Instruments
from telepayd.store.channels import TierSpec
from telepayd.store.orders import Order
from tests.harness import ConfigFiles


def test_a_plan_may_carry_a_stars_price():
    assert parse_tier("9.99:30") == TierSpec(Decimal("9.99"), 30, None)
    assert parse_tier("9.99:30:500") == TierSpec(Decimal("9.99"), 30, 500)
    assert parse_tier("24.99:90:10000").stars == 10000


@pytest.mark.parametrize("text", ["9.99:30:0", "9.99:30:10001", "9.99:30:", "9.99:30:5.5", "9.99:30:-1", "9.99:30:٥٠٠",
                                  "9.99:30:500:1", "9.99:30: 500"])
def test_a_bad_stars_price_is_one_clear_line(text):
    with pytest.raises(UsageError) as caught:
        parse_tier(text)
    assert str(caught.value).startswith(f"--tier {text!r}: ")


def test_a_donations_stars_are_rounded_up_within_telegrams_cap():
    assert stars.stars_for_usd(Decimal("13"), Decimal("0.013")) == 1000
    assert stars.stars_for_usd(Decimal("4.99"), Decimal("0.013")) == 384  # 383.8 rounded up
    assert stars.stars_for_usd(Decimal("9999.99"), Decimal("0.013")) is None  # 769,231 > 10,000
    assert stars.stars_for_usd(Decimal("130"), Decimal("0.013")) == 10000
    assert stars.stars_for_usd(Decimal("130.01"), Decimal("0.013")) is None


def order(**changes) -> Order:
    fields = dict(order_id="tp_0123456789abcdef0123", kind="subscription", user_id=1, username=None, channel_id=1,
                  tier_id=1, days=30, price=Decimal(500), currency="xtr", status="invoiced", invoice_id=None,
                  invoice_url="https://t.me/$x", created_at=datetime.now(timezone.utc), rail="stars")
    return Order(**(fields | changes))


def test_pre_checkout_lets_only_the_buyer_pay_an_open_stars_order_at_its_price():
    ok = dict(user_id=1, currency="XTR", total_amount=500)
    assert stars.precheckout_refusal(order(), ENGLISH, **ok) is None
    assert stars.precheckout_refusal(order(status="created"), ENGLISH, **ok) is None
    assert stars.precheckout_refusal(None, ENGLISH, **ok) == ENGLISH.PRECHECKOUT_UNKNOWN
    assert stars.precheckout_refusal(order(rail="nowpayments", currency="usd"), ENGLISH, **ok) == ENGLISH.PRECHECKOUT_UNKNOWN
    assert stars.precheckout_refusal(order(), ENGLISH, **(ok | {"user_id": 2})) == ENGLISH.PRECHECKOUT_NOT_YOURS
    for status in ("paid", "refunded", "expired", "failed"):
        assert stars.precheckout_refusal(order(status=status), ENGLISH, **ok) == ENGLISH.PRECHECKOUT_CLOSED
    assert stars.precheckout_refusal(order(), ENGLISH, **(ok | {"total_amount": 499})) == ENGLISH.PRECHECKOUT_PRICE
    assert stars.precheckout_refusal(order(), ENGLISH, **(ok | {"currency": "USD"})) == ENGLISH.PRECHECKOUT_PRICE


def test_only_a_30_day_plan_is_sold_as_a_renewing_subscription():
    assert stars.subscription_invoice(order())
    assert not stars.subscription_invoice(order(days=90))
    assert not stars.subscription_invoice(order(kind="donation", days=None))
    assert not stars.subscription_invoice(order(code="SUMMER7K3M9Q2X"))  # a discount is for one invoice


def test_stars_buttons_round_trip_and_forged_ones_are_refused():
    for action, args in (("np", (3, 7)), ("xtr", (3, 7)), ("dnp", (3, 1250)), ("dxtr", (3, 1250)), ("rnoff", (3,)), ("rnon", (3,))):
        button = decode(encode(action, *args))
        assert button is not None and (button.action, button.args) == (action, args)
    assert decode("xtr:3") is None and decode("rnoff:3:4") is None and decode("dxtr:3:-5") is None


def test_money_is_shown_in_the_orders_currency():
    assert texts.money(Decimal("9.99")) == "$9.99"
    assert texts.money(Decimal(1300), "xtr") == "1,300 ⭐"
    assert ENGLISH.owner_payment("T", "subscription", Decimal(500), 30, 1, "alice", "xtr", renewal=True).endswith(
        "500 ⭐ (30 days subscription renewed) from @alice.")
    assert len(ENGLISH.stars_invoice_title("A" * 60, 30)) <= 32


def test_stars_outcomes_are_a_fixed_label_set():
    seen = Instruments()
    for outcome in ("granted", "renewed", "duplicate", "refunded: access taken back", "user_mismatch", "free text"):
        seen.stars_payment(outcome)
    assert dict(seen.stars_payments) == {"granted": 1, "renewed": 1, "duplicate": 1, "refunded": 1, "user_mismatch": 1, "other": 1}


def test_the_stars_section_has_defaults_and_bounds(tmp_path: Path):
    files = ConfigFiles(tmp_path, "postgresql://telepay@localhost/telepay")
    files.write()
    config = load(files.path)
    assert config.stars.enabled is None and config.stars.usd_per_star == Decimal("0.013")
    assert "/status" in config.stars.terms_text and config.stars.support_text
    files.settings = {"stars": {"enabled": True, "usd_per_star": "0.02", "support_text": "  Mail us  "}}
    files.write()
    config = load(files.path)
    assert (config.stars.enabled, config.stars.usd_per_star, config.stars.support_text) == (True, Decimal("0.02"), "Mail us")
    files.settings = {"stars": {"enabled": "yes", "usd_per_star": 0.013, "terms_text": "", "colour": 1}}
    files.write()
    with pytest.raises(ConfigError) as caught:
        load(files.path)
    text = "\n".join(caught.value.problems)
    assert "[stars] enabled: expected true or false" in text
    assert "[stars] usd_per_star: expected the USD value of one Star as a string" in text
    assert "[stars] terms_text: expected 1 to 4000 characters" in text
    assert "[stars] colour: unknown key" in text
