"""``make run``: telepayd on this machine alone — a throwaway PostgreSQL, the Telegram and NowPayments
emulators (nothing leaves the machine), a generated config, the real daemon.

It puts one channel on sale (so that the self-check's notification has an owner to reach), then sends a
signed notification as a Cloud Run caller would and checks that it was stored and delivered. From a
terminal it then leaves the daemon running (with ready-to-paste commands, the CLI included) until Ctrl-C;
without one it stops after the self-check, exiting 0 only if it worked. Everything it started, and the
folder with the generated secrets, is removed when it stops.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from telepayd.security.webhook_signature import sign
from tests.harness import Emulator
from tools.local_config import ConfigFiles
from tools.local_postgres import LocalPostgres, require_free_port

PORT = int(os.environ.get("TELEPAYD_PORT", "8080"))
OWNER = 555000111
EXAMPLE = {
    "open_channel_id": "-1003268562225",
    "payment_type": "subscription",
    "payment_data": {"user_id": 6271402111, "username": "alice", "amount": "9.99", "currency": "usd", "tier": 1, "duration_days": 30},
}


def say(text: str) -> None:
    print(f"==> {text}", flush=True)


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"telepayd exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url + "/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.2)
    raise SystemExit("telepayd did not become ready")


def post_signed(url: str, secret: str, body: bytes) -> tuple[int, str]:
    headers = {**sign(secret, body).as_dict(), "Content-Type": "application/json"}
    request = urllib.request.Request(url + "/webhooks/notification", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def telepayd(files: ConfigFiles, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "telepayd", *args, "-c", str(files.path)], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"telepayd {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def delivered(emulator: Emulator, chat_id: int, timeout: float = 15.0) -> bool:
    """Whether the Bot API emulator got a message for ``chat_id`` within ``timeout``."""
    return bool(emulator.wait_calls("sendMessage", timeout=timeout, where=lambda p: int(p.get("chat_id", 0)) == chat_id))


def main() -> int:
    # Ctrl-C or SIGTERM stops everything, even when started with SIGINT ignored (in the background).
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    require_free_port(PORT, "make run")
    workdir = Path(tempfile.mkdtemp(prefix="telepayd-run-"))
    say("starting a throwaway PostgreSQL and the Telegram / NowPayments emulators")
    cluster = LocalPostgres().start()
    emulator = Emulator()
    daemon: subprocess.Popen[bytes] | None = None
    try:
        files = ConfigFiles(workdir, cluster.dsn(), port=PORT, api_base=emulator.base_url)
        files.write()
        say(f"config and secret files in {workdir} (removed when this stops)")
        telepayd(files, "migrate")
        say(telepayd(files, "channels", "add", "--open", EXAMPLE["open_channel_id"], "--closed", "-1003268562226",
                     "--owner", str(OWNER), "--title", "Example channel", "--tier", "9.99:30"))
        daemon = subprocess.Popen([sys.executable, "-m", "telepayd", "run", "-c", str(files.path)])
        url = f"http://127.0.0.1:{PORT}"
        wait_ready(url, daemon)
        say(f"telepayd is ready on {url}")
        body = json.dumps(EXAMPLE).encode()
        status, answer = post_signed(url, files.webhook_secrets[0], body)
        say(f"self-check: a signed notification from a 'Cloud Run' caller -> {status} {answer}")
        if status != 202 or not delivered(emulator, OWNER):
            say("self-check failed: the notification was not stored and delivered to the channel's owner")
            return 1
        say("self-check: the channel's owner got the notification (through the outbox, to the Bot API emulator)")
        if sys.stdin.isatty():
            example = workdir / "notification.json"
            example.write_bytes(body)
            secret_file = files.secret_file("webhook-secrets")
            say("try it yourself (Ctrl-C stops telepayd and PostgreSQL):")
            print(f"""
    curl -s {url}/health
    curl -s {url}/status
    telepayd sign --secret-file {secret_file} < {example} > {workdir}/headers
    curl -s -X POST {url}/webhooks/notification -H 'Content-Type: application/json' \\
         -H @{workdir}/headers --data-binary @{example}
    kill -HUP {daemon.pid}    # reload config and secrets
    export TELEPAYD_CONFIG={files.path}   # then the CLI talks to this daemon's database:
    telepayd channels list; telepayd outbox failed; telepayd orders show --user 6271402111
""", flush=True)
            try:
                daemon.wait()
            except KeyboardInterrupt:
                pass
        return 0
    finally:
        if daemon is not None:
            if daemon.poll() is None:
                daemon.send_signal(signal.SIGTERM)
                daemon.wait(30)
            say(f"telepayd stopped with exit code {daemon.returncode}")
        emulator.stop()
        cluster.remove()
        shutil.rmtree(workdir, ignore_errors=True)  # it holds the generated secrets


if __name__ == "__main__":
    sys.exit(main())
