"""Test harness: config files with their secrets, and the real daemon as a subprocess with an sd_notify listener."""

from __future__ import annotations

import os
import shutil
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
        shutil.rmtree(self.path.parent, ignore_errors=True)


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


def http_post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    """POST with the standard library; return the status and body, whatever the status."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


class Emulator:
    """The Telegram Bot API and NowPayments emulators (one subprocess), driven over their control API."""

    def __init__(self) -> None:
        from tools.local_postgres import free_port

        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        # Its own log file: what it prints (a client hanging up on it) must not interleave with pytest's output.
        self.log_file = tempfile.NamedTemporaryFile(prefix="telepayd-emulator-", suffix=".log", delete=False)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.emulators.server", str(self.port)],
            env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT, stdout=self.log_file, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"the emulator did not start: {Path(self.log_file.name).read_text()[-2000:]}") from None
                time.sleep(0.05)

    def _call(self, method: str, path: str, body: object = None, *, timeout: float = 30.0) -> object:
        import json
        import urllib.request

        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)

    def reset(self) -> None:
        self._call("POST", "/_emulator/reset", {})

    def calls(self, method: str | None = None) -> list[dict]:
        suffix = f"?method={method}" if method else ""
        return self._call("GET", "/_emulator/telegram/calls" + suffix)  # type: ignore[return-value]

    def wait_calls(self, method: str, count: int = 1, *, timeout: float = 15.0, where=None) -> list[dict]:
        """Wait until at least ``count`` calls of ``method`` (matching ``where``) were recorded."""
        deadline = time.monotonic() + timeout
        while True:
            found = [c for c in self.calls(method) if where is None or where(c["params"])]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def fail(self, method: str, status: int, *, description: str = "Error", retry_after: int | None = None,
             count: int | None = None, seconds: float | None = None) -> None:
        self._call("POST", "/_emulator/telegram/fail", {"method": method, "status": status, "description": description,
                                                         "retry_after": retry_after, "count": count, "seconds": seconds})

    def enforce_limits(self, per_second: float = 30, per_chat_per_second: float = 1, per_group_per_minute: float = 20) -> None:
        self._call("POST", "/_emulator/telegram/limits", {"per_second": per_second, "per_chat_per_second": per_chat_per_second,
                                                           "per_group_per_minute": per_group_per_minute})

    def slow(self, method: str, seconds: float) -> None:
        """Make Telegram answer ``method`` (``*``: every method) ``seconds`` late."""
        self._call("POST", "/_emulator/telegram/slow", {"method": method, "seconds": seconds})

    def star_links(self) -> dict[str, dict]:
        """The Stars invoices the bot created: link (``message:<chat>:<id>`` for sendInvoice) -> its params."""
        return self._call("GET", "/_emulator/telegram/stars/links")  # type: ignore[return-value]

    def star_charge(self, user_id: int, payload: str, amount: int, period: int | None = None,
                    username: str = "alice") -> dict:
        """Telegram charging the user (and listing the transaction): ``{"charge_id", "subscription_expiration_date"}``."""
        return self._call("POST", "/_emulator/telegram/stars/charge", {  # type: ignore[return-value]
            "user_id": user_id, "payload": payload, "amount": amount, "period": period, "username": username})

    def precheckout_answer(self, query_id: str, timeout: float = 10.0) -> dict:
        """Wait for the bot's answer to pre-checkout query ``query_id``: ``{"answered", "ok", "error_message"}``."""
        from urllib.parse import quote

        return self._call("GET", f"/_emulator/telegram/stars/precheckout/{quote(query_id, safe='')}?timeout={timeout}",
                          timeout=timeout + 30)  # type: ignore[return-value]

    def star_charges(self) -> dict[str, dict]:
        """Every charge: id -> user_id, amount, payload, period, refunded, canceled, date."""
        return self._call("GET", "/_emulator/telegram/stars/charges")  # type: ignore[return-value]

    def invoices(self) -> dict[str, dict]:
        return self._call("GET", "/_emulator/nowpayments/invoices")  # type: ignore[return-value]

    def fail_invoices(self, count: int) -> None:
        self._call("POST", "/_emulator/nowpayments/fail-invoices", {"count": count})

    def send_ipn(self, order_id: str, status: str, *, payment_id: int | None = None, overrides: dict | None = None,
                 signature: str | None = None) -> dict:
        return self._call("POST", "/_emulator/nowpayments/ipn", {  # type: ignore[return-value]
            "order_id": order_id, "status": status, "payment_id": payment_id, "overrides": overrides or {},
            "signature": signature})

    def set_payment(self, order_id: str, status: str, *, payment_id: int | None = None, overrides: dict | None = None) -> int:
        """Make NowPayments' API say ``status`` for a payment of ``order_id``, without sending an IPN."""
        return self._call("POST", "/_emulator/nowpayments/payment", {  # type: ignore[index]
            "order_id": order_id, "status": status, "payment_id": payment_id, "overrides": overrides or {}})["payment_id"]

    def fail_lookups(self, count: int, status: int = 503) -> None:
        """Answer the next ``count`` payment lookups (-1: every one, until 0 is set) with ``status``."""
        self._call("POST", "/_emulator/nowpayments/fail-lookups", {"count": count, "status": status})

    def fail_payment(self, payment_id: int, status: int) -> None:
        """Answer every lookup of ``payment_id`` with ``status`` (0: normally again)."""
        self._call("POST", "/_emulator/nowpayments/fail-payment", {"payment_id": payment_id, "status": status})

    def lookups(self) -> list[int]:
        return self._call("GET", "/_emulator/nowpayments/lookups")  # type: ignore[return-value]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log_file.close()
        os.unlink(self.log_file.name)


class TelegramUser:
    """A scripted Telegram user: sends updates to the daemon's webhook as Telegram would."""

    _update_ids = iter(range(1, 10**9))

    def __init__(self, daemon: Daemon, user_id: int, username: str = "alice", *, secret: str = "tg-secret-token-1",
                 language_code: str | None = None) -> None:
        self.daemon = daemon
        self.user_id = user_id
        self.username = username
        self.secret = secret
        self.language_code = language_code  # Telegram's language_code for the user, when set

    @property
    def user(self) -> dict:
        user = {"id": self.user_id, "is_bot": False, "first_name": self.username.title(), "username": self.username}
        if self.language_code is not None:
            user["language_code"] = self.language_code
        return user

    def _post(self, update: dict) -> int:
        import json

        update = {"update_id": next(self._update_ids), **update}
        status, _ = http_post(self.daemon.base_url + "/telegram", json.dumps(update).encode(),
                              {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": self.secret})
        return status

    def send(self, text: str) -> int:
        message = {"message_id": next(self._update_ids), "date": int(time.time()), "text": text, "from": self.user,
                   "chat": {"id": self.user_id, "type": "private", "first_name": self.username.title()}}
        if text.startswith("/"):
            command = text.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return self._post({"message": message})

    def press(self, data: str, message_id: int = 1) -> int:
        return self._post({"callback_query": {
            "id": str(next(self._update_ids)), "from": self.user, "chat_instance": "ci", "data": data,
            "message": {"message_id": message_id, "date": int(time.time()), "text": "menu",
                        "chat": {"id": self.user_id, "type": "private"}, "from": {"id": 7000000001, "is_bot": True, "first_name": "TelePay"}},
        }})

    def _private_message(self, **content: object) -> dict:
        return {"message_id": next(self._update_ids), "date": int(time.time()), "from": self.user,
                "chat": {"id": self.user_id, "type": "private", "first_name": self.username.title()}, **content}

    def pre_checkout(self, payload: str, total_amount: int, currency: str = "XTR") -> tuple[int, str]:
        """The user confirmed paying the invoice: the webhook's status and the query id to answer."""
        query_id = str(next(self._update_ids))
        status = self._post({"pre_checkout_query": {"id": query_id, "from": self.user, "currency": currency,
                                                    "total_amount": total_amount, "invoice_payload": payload}})
        return status, query_id

    def successful_payment(self, payload: str, total_amount: int, charge_id: str, *, currency: str = "XTR",
                           subscription_expiration_date: int | None = None, is_recurring: bool | None = None,
                           is_first_recurring: bool | None = None) -> int:
        """Telegram's service message after a charge (the optional fields only when given)."""
        payment: dict = {"currency": currency, "total_amount": total_amount, "invoice_payload": payload,
                         "telegram_payment_charge_id": charge_id, "provider_payment_charge_id": ""}
        optional = {"subscription_expiration_date": subscription_expiration_date, "is_recurring": is_recurring,
                    "is_first_recurring": is_first_recurring}
        payment.update({key: value for key, value in optional.items() if value is not None})
        return self._post({"message": self._private_message(successful_payment=payment)})

    def refunded_payment(self, payload: str, total_amount: int, charge_id: str) -> int:
        """Telegram's service message after a refund of a payment in Stars."""
        return self._post({"message": self._private_message(refunded_payment={
            "currency": "XTR", "total_amount": total_amount, "invoice_payload": payload,
            "telegram_payment_charge_id": charge_id})})

    def bot_membership_changed(self, chat_id: int, status: str, **rights: bool) -> int:
        """Telegram telling the bot its own membership in a chat changed (my_chat_member)."""
        bot = {"id": 7000000001, "is_bot": True, "first_name": "TelePay", "username": "telepay_test_bot"}
        old = {"status": "administrator", "user": bot, "can_be_edited": False, "is_anonymous": False,
               "can_manage_chat": True, "can_delete_messages": True, "can_manage_video_chats": True,
               "can_restrict_members": True, "can_promote_members": False, "can_change_info": True,
               "can_invite_users": True, "can_post_stories": False, "can_edit_stories": False,
               "can_delete_stories": False}
        new = {**old, **rights} if status == "administrator" else {"status": status, "user": bot}
        if status == "left":
            new = {"status": "left", "user": bot}
        return self._post({"my_chat_member": {
            "chat": {"id": chat_id, "type": "channel", "title": "Closed"}, "from": self.user, "date": int(time.time()),
            "old_chat_member": old, "new_chat_member": new,
        }})

    def ask_to_join(self, chat_id: int, invite_link: str) -> int:
        return self._post({"chat_join_request": {
            "chat": {"id": chat_id, "type": "channel", "title": "Closed"}, "from": self.user, "user_chat_id": self.user_id,
            "date": int(time.time()),
            "invite_link": {"invite_link": invite_link, "creator": {"id": 7000000001, "is_bot": True, "first_name": "TelePay"},
                            "creates_join_request": True, "is_primary": False, "is_revoked": False},
        }})


def pay_stars(emulator: Emulator, user: TelegramUser, link: str, *, deliver: bool = True) -> dict:
    """``user`` pays the Stars invoice ``link`` as Telegram runs it: pre-checkout, the bot's answer, then (if ok)
    the charge and, when ``deliver``, the successful_payment message (recurring for a subscription link).

    Returns ``{"ok", "error_message", "charge_id" (None when refused), "payload", "amount", "expiration"}``."""
    links = emulator.star_links()
    if link not in links:
        raise AssertionError(f"the emulator knows no invoice link {link!r}; it has {sorted(links)}")
    invoice = links[link]
    payload, currency = invoice["payload"], invoice["currency"]
    amount = sum(price["amount"] for price in invoice["prices"])
    status, query_id = user.pre_checkout(payload, amount, currency)
    assert status == 200, f"the webhook answered the pre-checkout query with {status}"
    answer = emulator.precheckout_answer(query_id)
    assert answer["answered"], f"the bot did not answer the pre-checkout query {query_id} for {payload!r}"
    paid = {"ok": answer["ok"], "error_message": answer["error_message"], "charge_id": None, "payload": payload,
            "amount": amount, "expiration": None}
    if not answer["ok"]:
        return paid
    period = invoice.get("subscription_period")
    charge = emulator.star_charge(user.user_id, payload, amount, period, user.username)
    paid.update(charge_id=charge["charge_id"], expiration=charge["subscription_expiration_date"])
    if deliver:
        recurring = True if period else None
        status = user.successful_payment(payload, amount, charge["charge_id"], currency=currency,
                                         subscription_expiration_date=paid["expiration"], is_recurring=recurring,
                                         is_first_recurring=recurring)
        assert status == 200, f"the webhook answered the successful payment with {status}"
    return paid


def renew_stars(emulator: Emulator, user: TelegramUser, payload: str, amount: int, *, deliver: bool = True) -> str:
    """Telegram renewing ``user``'s Stars subscription to invoice ``payload`` (as it does 30 days on): a new
    charge and, when ``deliver``, its successful_payment (recurring, not the first). Returns the charge id."""
    charge = emulator.star_charge(user.user_id, payload, amount, 2592000, user.username)
    if deliver:
        status = user.successful_payment(payload, amount, charge["charge_id"],
                                         subscription_expiration_date=charge["subscription_expiration_date"],
                                         is_recurring=True, is_first_recurring=False)
        assert status == 200, f"the webhook answered the renewal's successful payment with {status}"
    return charge["charge_id"]
