"""Outbox throughput against the Bot API emulator: limits off (messages/s), and limits on (the measured rate
must sit within 10% under the configured one)."""

from __future__ import annotations

import subprocess
import sys
import time

import psycopg

from bench.targets import verdict
from tests.harness import Emulator
from tools.local_config import ConfigFiles
from tools.local_stack import local_stack

UNLIMITED = 3000
LIMITED = 300
RATE = 30.0


def _deliver(files: ConfigFiles, emulator: Emulator, count: int, limits: dict[str, float]) -> float:
    """Queue ``count`` messages to distinct chats, run the daemon, return Telegram-side messages/s."""
    files.settings = {"outbox": limits, "logging": {"level": "warning"}}
    files.write()
    emulator.reset()
    with psycopg.connect(files.dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE outbox")
        conn.execute(
            "INSERT INTO outbox (kind, chat_id, payload) SELECT 'message', 100000 + g, '{\"text\": \"hello\"}'"
            " FROM generate_series(1, %s) AS g", [count])
    daemon = subprocess.Popen([sys.executable, "-m", "telepayd", "run", "-c", str(files.path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            sent = [c["at"] for c in emulator.calls("sendMessage") if c["ok"]]
            if len(sent) >= count:
                break
            time.sleep(0.5)
    finally:
        daemon.terminate()
        daemon.wait(20)
    sent.sort()
    assert len(sent) >= count, f"only {len(sent)} of {count} delivered"
    # Rate over the steady part: from the 10th message on, so start-up does not count.
    return (len(sent) - 10) / (sent[-1] - sent[9])


def main() -> None:
    with local_stack("telepayd-bench-outbox-") as stack:
        files = ConfigFiles(stack.workdir, stack.cluster.dsn(), api_base=stack.emulator.base_url)
        files.write()
        subprocess.run([sys.executable, "-m", "telepayd", "migrate", "-c", str(files.path)], check=True, capture_output=True)
        off = {"messages_per_second": 0, "per_chat_per_second": 0, "per_group_per_minute": 0}
        unlimited = _deliver(files, stack.emulator, UNLIMITED, off)
        limited = _deliver(files, stack.emulator, LIMITED, {"messages_per_second": RATE})
    ratio = limited / RATE
    print("outbox delivery to the Bot API emulator (one daemon, distinct chats):")
    print(f"  limits off        {unlimited:8.0f} messages/s ({UNLIMITED} messages)")
    print(f"  limits on         {limited:8.1f} messages/s with messages_per_second = {RATE:g} ({LIMITED} messages)")
    print(f"  measured/limit    {ratio:8.2f} (target: within 10% under, 0.90-1.00: "
          f"{verdict(0.90 <= ratio <= 1.00, 'outbox within 10% under the limit')})")


if __name__ == "__main__":
    main()
