"""The pure parts of the hardening: ASCII numbers, bounded IPN parsing, surrogates, the user gate, the
supervisor, the error log budget, backoff, secret file modes."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import stat

import pytest

from telepayd.backoff import Backoff
from telepayd.config import unsafe_secret_mode
from telepayd.handlers.gate import UserGate
from telepayd.numbers import ascii_int
from telepayd.payments import InvalidIpn, parse_ipn
from telepayd.runtime import Metrics
from telepayd.security import ipn_signature
from telepayd.security.ipn_signature import IPN_SHAPE, signed_texts, verify_ipn
from telepayd.security.strict_json import JSONBodyError, parse_json, parse_json_object


@pytest.mark.parametrize("text", ["²", "٣", "1_000", " 1", "1 ", "+1", "1\n", "", "٠", "𝟗", "9" * 20, "0x1"])
def test_only_ascii_digits_make_a_number(text):
    assert ascii_int(text) is None
    assert ascii_int(text, signed=True) is None


def test_ascii_numbers():
    assert ascii_int("0") == 0 and ascii_int("42") == 42 and ascii_int("-42") is None
    assert ascii_int("-1001234567890", signed=True) == -1001234567890
    assert ascii_int(12) is None and ascii_int(None) is None


@pytest.mark.parametrize("payment_id", ["²", "٣", "1_0", " 5", True, 0, -1, 2**63, "x"])
def test_an_ipn_payment_id_must_be_ascii_digits(payment_id):
    with pytest.raises(InvalidIpn):
        parse_ipn({"payment_id": payment_id, "payment_status": "finished", "order_id": "o", "price_amount": 1,
                   "price_currency": "usd"})


def _hostile_bodies() -> dict[str, bytes]:
    return {
        "many top-level keys": json.dumps({f"k{i}": 1 for i in range(5000)}).encode(),
        "many objects, each with top-level keys": json.dumps({f"k{i}": {"k1": 1, "k2": 2} for i in range(2000)}).encode(),
        "keys x objects": json.dumps({"a": [{f"k{j}": 0 for j in range(20)} for _ in range(200)], **{f"k{j}": 0 for j in range(2000)}}).encode(),
        "deep": b'{"a":' * 50 + b"1" + b"}" * 50,
        "long array": json.dumps({"a": list(range(10000))}).encode(),
    }


@pytest.mark.parametrize("name", list(_hostile_bodies()))
def test_hostile_ipn_shapes_are_refused_before_any_hashing(name, monkeypatch):
    body = _hostile_bodies()[name]
    assert len(body) <= 65536
    hashed = []
    monkeypatch.setattr(ipn_signature.hmac, "new", lambda *a, **k: hashed.append(a) or hmac.new(*a, **k))
    with pytest.raises(JSONBodyError):
        verify_ipn(body, "0" * 128, [b"secret"])
    assert hashed == []


def test_a_real_sized_ipn_with_a_nested_object_is_within_the_shape():
    body = json.dumps({**{f"field_{i}": "x" for i in range(25)}, "fee": {"currency": "usdt", "depositFee": 0.1, "serviceFee": 0.2},
                       "payment_id": 1, "order_id": "o"}).encode()
    documented, _ = signed_texts(body)
    assert documented.startswith('{"fee":{') and IPN_SHAPE.max_keys >= 10 * 30


def test_the_documented_form_is_the_same_when_nested_objects_are_bigger_than_the_top_level():
    body = b'{"b":{"z":1,"a":2,"b":3,"c":4},"a":0}'
    documented, fully_sorted = signed_texts(body)
    assert documented == '{"a":0,"b":{"a":2,"b":3}}'
    assert fully_sorted == '{"a":0,"b":{"a":2,"b":3,"c":4,"z":1}}'
    signature = hmac.new(b"s", documented.encode(), hashlib.sha512).hexdigest()
    verify_ipn(body, signature, [b"s"])


@pytest.mark.parametrize("body", [b'{"a": "\\ud800"}', b'{"\\udfff": 1}', b'["ok", ["\\udbff x"]]', b'{"a": "\\uD83D"}'])
def test_unpaired_surrogates_are_invalid_json(body):
    with pytest.raises(JSONBodyError, match="surrogate"):
        parse_json(body)
    with pytest.raises(JSONBodyError):
        verify_ipn(body if body.startswith(b"{") else b'{"x":' + body + b"}", "0" * 128, [b"s"])


def test_paired_surrogates_and_escaped_backslashes_are_fine():
    assert parse_json_object(b'{"a": "\\ud83d\\ude00", "b": "\\\\ud800"}') == {"a": "😀", "b": "\\ud800"}


async def test_the_user_gate_runs_one_at_a_time_and_turns_away_the_excess():
    gate = UserGate(waiting=2)
    running, order, refused = [], [], 0
    release = asyncio.Event()

    async def update(n: int) -> None:
        nonlocal refused
        async with gate.enter(7) as admitted:
            if not admitted:
                refused += 1
                return
            running.append(n)
            assert len(running) == 1
            await release.wait()
            order.append(n)
            running.remove(n)

    tasks = [asyncio.create_task(update(n)) for n in range(6)]
    await asyncio.sleep(0.01)
    async with gate.enter(8) as other_user:  # another user is not held up
        assert other_user
    release.set()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2] and refused == 3
    assert len(gate) == 0  # nothing kept for users with nothing running


async def test_the_supervisor_restarts_a_failing_task_and_says_it_is_down(monkeypatch):
    from telepayd import supervisor as supervisor_module
    from telepayd.runtime import Runtime

    class Quick(Backoff):
        def __init__(self, **_):
            super().__init__(first=0.05, most=0.05, jitter=0)

    monkeypatch.setattr(supervisor_module, "Backoff", Quick)
    runtime = Runtime.__new__(Runtime)
    runtime.metrics = Metrics()
    tasks = supervisor_module.Supervisor(runtime)
    attempts = []

    async def flaky() -> None:
        attempts.append(1)
        if len(attempts) < 3:
            raise KeyError("poison")

    task = tasks.start("flaky", flaky)
    await asyncio.sleep(0.02)
    assert "flaky" in tasks.down and "KeyError" in tasks.down["flaky"]
    await asyncio.wait_for(task, 2)
    assert len(attempts) == 3 and tasks.down == {} and tasks.restarts == 2
    assert runtime.metrics.errors == {"background task flaky": 2}


def test_unexpected_errors_are_logged_within_a_budget(caplog):
    metrics = Metrics()
    log = logging.getLogger("test.budget")
    with caplog.at_level(logging.ERROR, logger="test.budget"):
        for _ in range(500):
            try:
                raise ValueError("boom")
            except ValueError as exc:
                metrics.log_error(log, "POST notification", exc)
    assert metrics.errors["POST notification"] == 500
    assert 1 <= len(caplog.records) <= 6
    assert all(record.exc_info for record in caplog.records)


def test_backoff_doubles_to_a_ceiling_with_jitter():
    backoff = Backoff(first=1, most=8, jitter=0.1)
    delays = [backoff.next() for _ in range(6)]
    for delay, nominal in zip(delays, [1, 2, 4, 8, 8, 8]):
        assert nominal * 0.9 <= delay <= nominal * 1.1
    backoff.reset()
    assert 0.9 <= backoff.next() <= 1.1


@pytest.mark.parametrize("mode, unsafe", [
    (0o600, ""), (0o640, ""), (0o400, ""), (0o604, "readable by everyone"), (0o620, "writable by its group"),
    (0o602, "writable by everyone"), (0o660, "writable by its group"), (0o666, "readable by everyone"),
])
def test_secret_file_modes(mode, unsafe):
    assert unsafe_secret_mode(stat.S_IFREG | mode) == unsafe
