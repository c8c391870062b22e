"""Genuine IPNs while strangers attack: the p99 answer time of signed NowPayments IPNs (a) on an idle daemon
and (b) while, all at once, 50 Telegram users press buttons as fast as the daemon takes them, one client
posts unsigned 64 KiB hostile IPN bodies as fast as it can (from a new address each time, so that the
per-address rate limit does not hide the cost of parsing them), and 1,000 slow clients hold connections
open by trickling request headers. Target: (b) under 1 s, no IPN answered 503; the ratio (b)/(a) is printed.

Addresses are told apart as behind a reverse proxy: the daemon trusts 127.0.0.1 as a proxy and reads
``X-Forwarded-For``, so NowPayments, Telegram and the attackers each have their own address.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import time
import urllib.request

import aiohttp
import psycopg

from bench.http import running_daemon
from bench.targets import verdict
from tests.emulators.nowpayments_api import ipn_body, sign_ipn
from tools.local_config import TELEGRAM_SECRET_TOKEN, ConfigFiles
from tools.local_stack import local_stack

IPNS_PER_PHASE = int(os.environ.get("BENCH_ATTACK_IPNS", "80"))
IPN_INTERVAL = 0.2  # seconds between genuine IPNs (NowPayments sends a few per payment, not a flood)
BUTTON_USERS = 50
SLOW_CLIENTS = 1000
NOWPAYMENTS_ADDRESS = "51.89.194.21"
TELEGRAM_ADDRESS = "149.154.167.99"
CHANNEL_KEY = 1


def _hostile_bodies() -> list[bytes]:
    """Unsigned bodies of about 64 KiB, each in a shape that once cost the most to check."""
    bodies = [
        json.dumps({f"k{i}": {f"k{j}": 0 for j in range(3)} for i in range(1400)}),  # objects x top-level keys
        json.dumps({f"k{i}": 1 for i in range(5500)}),  # many keys
        '{"a":' * 10000 + "1" + "}" * 10000,  # deep
        json.dumps({"a": list(range(11000))}),  # a long array
        json.dumps({"payment_id": "\\ud800", "pad": "x" * 65000}).replace("\\\\ud800", "\\ud800"),  # not text
    ]
    return [body.encode()[:65536] for body in bodies]


def _seed(dsn: str, count: int) -> list[str]:
    """A channel with a tier and ``count`` invoiced orders straight in the database; return the order ids."""
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO channels (open_channel_id, closed_channel_id, owner_chat_id, title)"
                     " VALUES (-1001111111111, -1002222222222, 555000111, 'Bench')")
        conn.execute("INSERT INTO tiers (channel_id, position, price, days) VALUES (%s, 1, 9.99, 30)", [CHANNEL_KEY])
        orders = [f"tp_bench{n:012d}" for n in range(count)]
        for n, order_id in enumerate(orders):
            conn.execute("INSERT INTO orders (order_id, kind, user_id, channel_id, tier_id, days, price, status)"
                         " VALUES (%s, 'subscription', %s, %s, 1, 30, 9.99, 'invoiced')", [order_id, 9_000_000 + n, CHANNEL_KEY])
    return orders


async def _genuine_ipns(base_url: str, orders: list[str], first_payment_id: int) -> tuple[list[float], dict[int, int]]:
    """Send one signed ``finished`` IPN per order, paced; return each answer time and the count per status."""
    times: list[float] = []
    statuses: dict[int, int] = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        for n, order_id in enumerate(orders):
            invoice = {"id": "1", "order_id": order_id, "order_description": "Bench", "_price_number": 9.99, "price_currency": "usd"}
            body = ipn_body(invoice, "finished", first_payment_id + n)
            headers = {"Content-Type": "application/json", "x-nowpayments-sig": sign_ipn(body),
                       "X-Forwarded-For": NOWPAYMENTS_ADDRESS}
            started = time.perf_counter()
            async with session.post(base_url + "/webhooks/nowpayments", data=body, headers=headers) as response:
                await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1
            times.append(time.perf_counter() - started)
            await asyncio.sleep(IPN_INTERVAL)
    return times, statuses


def _p99(times: list[float]) -> float:
    return statistics.quantiles(times, n=100, method="inclusive")[98]


# The attackers run in a process of their own, so that their load does not slow the measuring client.

async def _press_buttons(base_url: str, emulator_url: str, user_id: int, stop: float, counts: dict[str, int]) -> None:
    """Press, wait until the bot answered that press (as a person, or a script driving a Telegram client,
    only sees the answer), press again."""
    presses = ["list:0", f"ch:{CHANNEL_KEY}", f"tier:{CHANNEL_KEY}:1", "link:1", "kp:5", "forged!"]
    user = {"id": user_id, "is_bot": False, "first_name": "u"}
    headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET_TOKEN,
               "X-Forwarded-For": TELEGRAM_ADDRESS}
    async with aiohttp.ClientSession() as session:
        n = 0
        while time.monotonic() < stop:
            n += 1
            update = {"update_id": user_id * 100000 + n, "callback_query": {
                "id": f"{user_id}-{n}", "from": user, "chat_instance": "c", "data": presses[n % len(presses)],
                "message": {"message_id": 1, "date": 0, "text": "menu", "chat": {"id": user_id, "type": "private"}}}}
            try:
                async with session.post(base_url + "/telegram", json=update, headers=headers) as response:
                    await response.read()
                    counts[f"telegram {response.status}"] = counts.get(f"telegram {response.status}", 0) + 1
                if response.status == 200:
                    async with session.get(f"{emulator_url}/_emulator/telegram/answered/{user_id}-{n}?timeout=10") as answer:
                        if not (await answer.json())["answered"]:
                            counts["presses unanswered"] = counts.get("presses unanswered", 0) + 1
                else:
                    await asyncio.sleep(1)
            except aiohttp.ClientError:
                counts["telegram errors"] = counts.get("telegram errors", 0) + 1


async def _post_hostile_bodies(base_url: str, stop: float, counts: dict[str, int]) -> None:
    bodies = _hostile_bodies()
    async with aiohttp.ClientSession() as session:
        n = 0
        while time.monotonic() < stop:
            n += 1
            headers = {"Content-Type": "application/json", "x-nowpayments-sig": "0" * 128,
                       "X-Forwarded-For": f"203.0.{n // 250 % 250}.{n % 250 + 1}"}
            try:
                async with session.post(base_url + "/webhooks/nowpayments", data=bodies[n % len(bodies)], headers=headers) as response:
                    await response.read()
                    counts[f"hostile {response.status}"] = counts.get(f"hostile {response.status}", 0) + 1
            except aiohttp.ClientError:
                counts["hostile errors"] = counts.get("hostile errors", 0) + 1


async def _hold_slowly(host: str, port: int, stop: float, counts: dict[str, int]) -> None:
    """Open a connection and trickle request headers, a few bytes a second; open another when closed."""
    while time.monotonic() < stop:
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            counts["slow refused"] = counts.get("slow refused", 0) + 1
            await asyncio.sleep(1)
            continue
        counts["slow opened"] = counts.get("slow opened", 0) + 1
        try:
            writer.write(b"POST /webhooks/nowpayments HTTP/1.1\r\nHost: x\r\n")
            while time.monotonic() < stop:
                await asyncio.sleep(1 + random.random())
                writer.write(b"X-a: b\r\n")
                await writer.drain()
                if reader.at_eof():
                    break
        except OSError:
            pass
        finally:
            writer.close()


async def _attack(base_url: str, emulator_url: str, host: str, port: int, seconds: float, counts: dict[str, int]) -> None:
    stop = time.monotonic() + seconds
    await asyncio.gather(
        *(_press_buttons(base_url, emulator_url, 7_000_000 + n, stop, counts) for n in range(BUTTON_USERS)),
        _post_hostile_bodies(base_url, stop, counts),
        *(_hold_slowly(host, port, stop, counts) for _ in range(SLOW_CLIENTS)),
    )


def _attacker_process(base_url: str, emulator_url: str, host: str, port: int, seconds: float, results) -> None:
    counts: dict[str, int] = {}
    asyncio.run(_attack(base_url, emulator_url, host, port, seconds, counts))
    results.put(counts)


def _status(base_url: str) -> dict:
    with urllib.request.urlopen(base_url + "/status", timeout=10) as response:
        return json.load(response)


def main() -> None:
    with local_stack("telepayd-bench-attack-") as stack:
        files = ConfigFiles(stack.workdir, stack.cluster.dsn(), api_base=stack.emulator.base_url, settings={
            "server": {"trusted_proxies": ["127.0.0.1/32"]},
            # Telegram's own addresses send every update: let them all in, so the presses reach the bot.
            "telegram.rate_limit": {"per_minute": 1_000_000, "burst": 1_000_000},
            "logging": {"level": "warning"},
        })
        files.write()
        subprocess.run([sys.executable, "-m", "telepayd", "migrate", "-c", str(files.path)], check=True, capture_output=True)
        orders = _seed(files.dsn, 2 * IPNS_PER_PHASE)
        with running_daemon(files, settle=1, stop_seconds=30) as base_url:
            idle, idle_statuses = asyncio.run(_genuine_ipns(base_url, orders[:IPNS_PER_PHASE], 6_000_000))
            results: multiprocessing.Queue = multiprocessing.Queue()
            seconds = IPNS_PER_PHASE * IPN_INTERVAL + 15
            attacker = multiprocessing.Process(target=_attacker_process, args=(base_url, stack.emulator.base_url, "127.0.0.1", files.port, seconds, results))
            attacker.start()
            time.sleep(5)  # the attack at full strength before the first genuine IPN
            attacked, attacked_statuses = asyncio.run(_genuine_ipns(base_url, orders[IPNS_PER_PHASE:], 7_000_000))
            counts = results.get(timeout=seconds + 60)
            attacker.join(30)
            status = _status(base_url)
    ratio = _p99(attacked) / _p99(idle)
    unavailable = attacked_statuses.get(503, 0)
    met = _p99(attacked) < 1.0 and unavailable == 0 and set(attacked_statuses) == {200}
    verdict(met, "genuine IPNs under attack: p99 < 1 s, no 503")
    print("genuine signed IPNs under attack (p99 of the answer time, one daemon, PostgreSQL, the emulators):")
    print(f"  idle daemon       p99 {_p99(idle) * 1000:8.1f} ms  median {statistics.median(idle) * 1000:6.1f} ms  answers {idle_statuses}")
    print(f"  under attack      p99 {_p99(attacked) * 1000:8.1f} ms  median {statistics.median(attacked) * 1000:6.1f} ms  answers {attacked_statuses}")
    print(f"  ratio attack/idle {ratio:8.2f}   target: p99 under attack < 1 s and no 503 -> {'met' if met else 'MISSED'}")
    print(f"  the attack: {BUTTON_USERS} Telegram users pressing buttons, one client posting 64 KiB hostile IPN bodies,"
          f" {SLOW_CLIENTS} slow clients; what they got: {dict(sorted(counts.items()))}")
    print(f"  daemon: rejections {status['rejections']}, tasks down {status['tasks']['down']}, errors {status['errors']}")


if __name__ == "__main__":
    main()
