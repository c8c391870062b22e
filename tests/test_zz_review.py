"""Throwaway review probes (to be deleted)."""
from __future__ import annotations

import time
from decimal import Decimal

from tests.harness import TelegramUser, pay_stars, renew_stars
from tests.test_buying_e2e import ALICE, OWNER, add_channel, buttons, db, telepayd, to
from tests.test_growth_e2e import RUSSIAN, said, data_of, created_codes, execute
from tests.test_stars_e2e import choose_stars
from tests.test_reconcile_e2e import wait_for
from telepayd.texts import ENGLISH


def test_r1_russian_user_redeem_language_stats(config_files, start_daemon, emulator):
    key = add_channel(config_files, "9.99:30")
    daemon = start_daemon(config_files)
    ivan = TelegramUser(daemon, ALICE, "ivan", language_code="ru")
    assert ivan.send("/start") == 200
    said(emulator, ALICE, RUSSIAN.START)
    assert ivan.send("/redeem NOSUCHCODE22") == 200
    time.sleep(1.5)
    assert ivan.send("/language") == 200
    time.sleep(1.5)
    assert ivan.send("/stats") == 200
    time.sleep(1.5)
    assert ivan.send("/redeem") == 200
    time.sleep(1.5)
    msgs = [c["params"]["text"] for c in emulator.calls("sendMessage") if to(ALICE)(c["params"])]
    print("\nMESSAGES:", *msgs, sep="\n---\n")
    # then send the code as a message of its own, as REDEEM_ASK says
    (code,) = created_codes(config_files, "--channel", str(key), "--days", "7")
    assert ivan.send(code) == 200
    time.sleep(1.5)
    msgs = [c["params"]["text"] for c in emulator.calls("sendMessage") if to(ALICE)(c["params"])]
    print("\nAFTER CODE AS MESSAGE:", msgs[-1])
    print("subs:", db(config_files, "SELECT count(*) FROM subscriptions"))
    assert RUSSIAN.CODE_WRONG in msgs
