"""Test harness: config files with their secrets, and the real daemon as a subprocess with an sd_notify listener."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools.local_config import ConfigFiles

ROOT = Path(__file__).resolve().parent.parent

__all__ = ["ConfigFiles", "Daemon", "NotifyListener"]


class NotifyListener:
    """A datagram socket standing in for systemd's ``NOTIFY_SOCKET``."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="telepayd-notify-")) / "notify.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.messages: list[str] = []

    def wait_for(self, text: str, timeout: float = 15.0, *, start: int = 0) -> str:
        """Return the first message from index ``start`` on that contains ``text`` (reading as needed)."""
        deadline = time.monotonic() + timeout
        index = start
        while True:
            while index < len(self.messages):
                if text in self.messages[index]:
                    return self.messages[index]
                index += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no sd_notify message with {text!r}; got {self.messages}")
            self.sock.settimeout(remaining)
            try:
                self.messages.append(self.sock.recv(4096).decode("latin-1"))
            except TimeoutError:
                continue

    def drain(self) -> None:
        """Read every message already sent."""
        self.sock.setblocking(False)
        try:
            while True:
                self.messages.append(self.sock.recv(4096).decode("latin-1"))
        except BlockingIOError:
            pass

    def close(self) -> None:
        if self.sock.fileno() < 0:
            return
        self.drain()
        self.sock.close()
        self.path.unlink(missing_ok=True)


class Daemon:
    """``python -m telepayd run`` as a child process."""

    def __init__(self, config: ConfigFiles, *, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.notify = NotifyListener()
        self.log_path = config.directory / f"daemon-{time.monotonic_ns()}.log"
        environment = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
        environment.update({"NOTIFY_SOCKET": str(self.notify.path), "PYTHONPATH": str(ROOT)})
        environment.update(env or {})
        with open(self.log_path, "wb") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", "telepayd", "run", "-c", str(config.path)],
                stdout=log, stderr=subprocess.STDOUT, env=environment, cwd=config.directory,
            )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.config.port}"

    def wait_ready(self, timeout: float = 20.0) -> str:
        try:
            return self.notify.wait_for("READY=1", timeout)
        except TimeoutError:
            raise TimeoutError(f"daemon not ready; exit={self.process.poll()} log:\n{self.log()}") from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def send(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, wait, and return the exit code (idempotent)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.notify.close()
        return self.process.returncode
