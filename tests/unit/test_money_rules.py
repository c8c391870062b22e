"""The money rules that need no database: reading an IPN, the order of statuses, order ids."""

from __future__ import annotations

from decimal import Decimal

import pytest

from telepayd.payments import FINAL_STATUSES, STATUS_RANK, InvalidIpn, ignored_because, parse_ipn
from telepayd.store.orders import new_order_id

IPN = {"payment_id": 5077125051, "payment_status": "finished", "order_id": "tp_0123", "price_amount": 9.99,
       "price_currency": "USD", "actually_paid": "25.4", "pay_currency": "usdttrc20"}


def test_an_ipn_is_read_from_its_top_level_fields():
    ipn = parse_ipn({**IPN, "payment_id": "5077125051", "fee": {"price_amount": 1}})
    assert ipn.payment_id == 5077125051 and ipn.price_amount == Decimal("9.99") and ipn.price_currency == "usd"
    assert ipn.actually_paid == Decimal("25.4") and ipn.pay_currency == "usdttrc20"


@pytest.mark.parametrize("field, value", [
    ("payment_id", None), ("payment_id", 1.5), ("payment_id", "12a"), ("payment_status", "paid"), ("payment_status", None),
    ("order_id", ""), ("order_id", "x" * 65), ("order_id", 12), ("price_amount", "NaN"), ("price_amount", True),
    ("price_amount", None), ("price_currency", ""), ("price_currency", 840), ("order_id", "tp_\x00x"),
    ("price_currency", "usd\x00"), ("pay_currency", "btc\x00"),
])
def test_an_unusable_field_is_named(field, value):
    with pytest.raises(InvalidIpn, match=field):
        parse_ipn({**IPN, field: value})


def test_statuses_only_move_forward():
    order = ["waiting", "confirming", "confirmed", "sending", "partially_paid", "finished"]
    assert sorted(STATUS_RANK, key=STATUS_RANK.get) == order
    for earlier, later in zip(order, order[1:]):
        assert ignored_because(earlier, later) is None
        assert ignored_because(later, earlier) == f"ignored: older than {later}"
        assert ignored_because(later, later) == f"ignored: older than {later}"


@pytest.mark.parametrize("final", sorted(FINAL_STATUSES))
def test_final_statuses_never_change(final):
    for incoming in [*STATUS_RANK, *FINAL_STATUSES]:
        assert ignored_because(final, incoming) == f"ignored: {final} is final"
    assert ignored_because("waiting", final) is None


def test_after_finished_only_a_refund_counts():
    assert ignored_because("finished", "refunded") is None
    assert ignored_because("finished", "failed") == "ignored: finished can only be refunded"
    assert ignored_because("finished", "expired") == "ignored: finished can only be refunded"
    assert ignored_because(None, "finished") is None  # a payment seen for the first time


def test_order_ids_are_opaque_unique_and_fit_an_invite_link_name():
    ids = {new_order_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(i.startswith("tp_") and len(i) <= 32 and i[3:].isalnum() for i in ids)
