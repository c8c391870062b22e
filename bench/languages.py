"""Languages: the bot's answers in Russian (a gettext catalog) beside the same answers in English (the source,
no catalog), through one running daemon, samples taken in turn (a drift of the shared machine weighs on
both alike). Each sample is a new user, so each pays the first update's language lookup on both sides.

Targets: /start to the channel list and a deep link to a channel's plans within 1.10x at p50, and 1.5x at p99
(the tail of a few hundred samples on a shared machine is mostly noise)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from bench.targets import verdict
from tests.harness import Daemon, TelegramUser
from tools.local_config import ConfigFiles
from tools.local_stack import local_stack

SAMPLES = int(os.environ.get("BENCH_LANGUAGE_SAMPLES", "200"))
WARMUP = 5
FIRST_USER = 8_100_000_000


def _seconds(stack, user: TelegramUser, text: str) -> float:
    started = time.time()
    assert user.send(text) == 200
    calls = stack.emulator.wait_calls("sendMessage", where=lambda p: int(p.get("chat_id", 0)) == user.user_id)
    return calls[0]["at"] - started


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    with local_stack("telepayd-bench-languages-") as stack:
        files = ConfigFiles(stack.workdir, stack.cluster.dsn(), api_base=stack.emulator.base_url,
                            settings={"logging": {"level": "warning"}})
        files.write()
        run = [sys.executable, "-m", "telepayd", "-c", str(files.path)]
        subprocess.run([*run, "migrate"], check=True, capture_output=True)
        for n in range(10):
            subprocess.run([*run, "channels", "add", "--open", str(-1001000000000 - n), "--closed", str(-1002000000000 - n),
                            "--owner", "555000111", "--title", f"Channel {n}", "--tier", "9.99:30:500", "--tier", "24.99:90"],
                           check=True, capture_output=True)
        daemon = Daemon(files)
        try:
            daemon.wait_ready(60)
            stack.emulator.wait_calls("setMyDescription", 4)
            samples: dict[tuple[str, str], list[float]] = {}
            user_id = FIRST_USER
            for n in range(SAMPLES + WARMUP):
                for language in ("en", "ru"):
                    for kind, text in (("start", "/start"), ("deep link", "/start sub_1")):
                        stack.emulator.reset()
                        user_id += 1
                        user = TelegramUser(daemon, user_id, language_code=language)
                        took = _seconds(stack, user, text)
                        if n >= WARMUP:
                            samples.setdefault((kind, language), []).append(took)
        finally:
            daemon.stop()
    print(f"languages: the bot's answers in Russian (catalog) beside English (source), {SAMPLES} samples each, in turn")
    for kind in ("start", "deep link"):
        for q, name in ((0.5, "p50"), (0.99, "p99")):
            english = _percentile(samples[(kind, "en")], q) * 1000
            russian = _percentile(samples[(kind, "ru")], q) * 1000
            ratio = russian / english
            target = 1.10 if name == "p50" else 1.5
            label = "/start to the channel list" if kind == "start" else "a deep link to the plans"
            print(f"  {label + ' ' + name:<34} en {english:6.1f} ms   ru {russian:6.1f} ms   ratio {ratio:5.2f}  "
                  f"target <= {target:.2f}: {verdict(ratio <= target, f'languages: {label} {name} within {target:.2f}x')}")


if __name__ == "__main__":
    main()
