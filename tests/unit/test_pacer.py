"""The outbox pacer: Telegram's limits as bookkeeping (overall rate, one per second per chat, 20 a minute
per group), checked on what it decides, not on how long it sleeps."""

from __future__ import annotations

import asyncio

from telepayd.config import OutboxConfig
from telepayd.outbox import SAFETY_MARGIN, Pacer


def pacer(**limits: float) -> Pacer:
    config = OutboxConfig(**limits)
    return Pacer(lambda: config)


async def test_a_chat_is_busy_after_its_turn_and_others_are_not():
    p = pacer()
    await p.turn(42)
    assert p.is_busy(42) and not p.is_busy(43)
    assert p.busy_chats() == [42]


async def test_intervals_follow_the_limits_with_the_safety_margin():
    p = pacer(messages_per_second=30, per_chat_per_second=1, per_group_per_minute=20)
    assert p._chat_interval(42) == SAFETY_MARGIN / 1
    assert p._chat_interval(-1001) == SAFETY_MARGIN * 60 / 20
    off = pacer(messages_per_second=0, per_chat_per_second=0, per_group_per_minute=0)
    assert off._chat_interval(42) == 0 and off._chat_interval(-1001) == 0


async def test_a_second_turn_of_one_chat_waits_and_another_chat_does_not():
    p = pacer(messages_per_second=0, per_chat_per_second=20)  # 1/20 s per chat (x the margin)
    loop = asyncio.get_running_loop()
    await p.turn(1)
    started = loop.time()
    await p.turn(2)
    other = loop.time() - started
    await p.turn(1)
    same = loop.time() - started
    assert other < SAFETY_MARGIN / 20 <= same + 0.005


async def test_a_pause_holds_every_chat():
    p = pacer()
    p.pause(30)
    turn = asyncio.create_task(p.turn(7))
    await asyncio.sleep(0.05)
    assert not turn.done()
    turn.cancel()


async def test_busy_chats_forget_chats_whose_time_has_passed():
    p = pacer(messages_per_second=0, per_chat_per_second=50)
    for chat in range(100):
        await p.turn(chat)
    await asyncio.sleep(SAFETY_MARGIN / 50 + 0.01)
    assert p.busy_chats() == [] and p._next_chat == {}
