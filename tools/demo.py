"""``make demo``: telepayd's main job, end to end, on this machine alone.

A throwaway PostgreSQL, the Telegram Bot API and NowPayments emulators, and the real daemon; then a
scripted walk: a user subscribes and pays, gets the join link and is let in (an intruder with the same link
is not); another pays in Telegram Stars and renews; a donation typed on the keypad; a signed notification from a "Cloud Run" caller; a secret rotated
with SIGHUP. From a terminal the daemon then stays up for you to poke with curl until Ctrl-C; without one
the demo exits, 0 only if every step worked.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from telepayd.security.webhook_signature import generate_secret, sign
from tests.harness import Daemon, Emulator, TelegramUser, http_post, pay_stars, renew_stars
from tools.local_config import ConfigFiles
from tools.local_postgres import LocalPostgres, require_free_port

PORT = int(os.environ.get("TELEPAYD_PORT", "8080"))
OPEN, CLOSED, OWNER = -1001111111111, -1002222222222, 555000111
ALICE, MALLORY, DAVE = 6271402111, 6666666666, 7333333333


class StepFailed(Exception):
    pass


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def detail(text: str) -> None:
    print(f"    {text}", flush=True)


def expect(condition: object, what: str) -> None:
    if not condition:
        raise StepFailed(what)
    detail(f"✔ {what}")


def last_text(emulator: Emulator, chat: int, contains: str, timeout: float = 15) -> str:
    calls = emulator.wait_calls("sendMessage", timeout=timeout, where=lambda p: int(p["chat_id"]) == chat and contains in p["text"])
    if not calls:
        raise StepFailed(f"no message to {chat} containing {contains!r}")
    return calls[-1]["params"]["text"]


def buttons(params: dict) -> list[dict]:
    return [b for row in (params.get("reply_markup") or {}).get("inline_keyboard", []) for b in row]


def telepayd(files: ConfigFiles, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "telepayd", *args, "-c", str(files.path)], capture_output=True, text=True)
    if result.returncode:
        raise StepFailed(f"telepayd {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout.strip()


def subscribe_and_pay(files: ConfigFiles, emulator: Emulator, daemon: Daemon, key: int) -> None:
    say("Alice opens the bot and picks the channel")
    alice = TelegramUser(daemon, ALICE, "alice")
    alice.send("/start")
    menu = emulator.wait_calls("sendMessage", where=lambda p: int(p["chat_id"]) == ALICE)[-1]["params"]
    detail(f"bot: {menu['text']}  buttons: {[b['text'] for b in buttons(menu)]}")
    alice.press(f"ch:{key}")
    tiers = emulator.wait_calls("editMessageText", where=lambda p: "Choose a plan" in p.get("text", ""))[-1]["params"]
    detail(f"bot: plans {[b['text'] for b in buttons(tiers)][:-1]}")
    alice.press(buttons(tiers)[0]["callback_data"])
    choice = emulator.wait_calls("editMessageText", where=lambda p: "How would you like to pay" in p.get("text", ""))[-1]["params"]
    detail(f"bot: {choice['text']}  buttons: {[b['text'] for b in buttons(choice)][:2]}; Alice pays with crypto")
    alice.press(buttons(choice)[0]["callback_data"])
    pay = emulator.wait_calls("editMessageText", where=lambda p: any("url" in b for b in buttons(p)))[-1]["params"]
    button = buttons(pay)[0]
    detail(f"bot: [{button['text']}] -> {button['url']}")
    order_id = next(o for o, inv in emulator.invoices().items() if inv["invoice_url"] == button["url"])

    say(f"NowPayments reports the payment for order {order_id}")
    for status in ("waiting", "confirming", "confirmed", "finished"):
        answer = emulator.send_ipn(order_id, status, payment_id=5077125051)
        detail(f"IPN {status:<10} -> {answer['status']} {answer['answer'].get('outcome', answer['answer'])}")
    dm = last_text(emulator, ALICE, "Payment confirmed")
    link = next(word for word in dm.split() if word.startswith("https://t.me/+"))
    expect(link, f"Alice got her personal join link {link}")
    expect(last_text(emulator, OWNER, "New payment"), "the channel owner was told about the payment")

    say("Alice uses her link; Mallory tries the same link")
    alice.ask_to_join(CLOSED, link)
    expect(emulator.wait_calls("approveChatJoinRequest", where=lambda p: int(p["user_id"]) == ALICE), "Alice was let in")
    TelegramUser(daemon, MALLORY, "mallory").ask_to_join(CLOSED, link)
    expect(emulator.wait_calls("declineChatJoinRequest", where=lambda p: int(p["user_id"]) == MALLORY),
           "Mallory was declined: a leaked link is useless")
    detail(telepayd(files, "orders", "show", order_id).replace("\n", "\n    "))


def pay_in_stars(files: ConfigFiles, emulator: Emulator, daemon: Daemon, key: int) -> None:
    say("Dave pays the 30-day plan in Telegram Stars: a subscription that renews by itself")
    dave = TelegramUser(daemon, DAVE, "dave")
    dave.send(f"/start sub_{key}")
    tiers = emulator.wait_calls("sendMessage", where=lambda p: int(p["chat_id"]) == DAVE and "Choose a plan" in p["text"])[-1]["params"]
    dave.press(buttons(tiers)[0]["callback_data"])
    choice = emulator.wait_calls("editMessageText", where=lambda p: int(p.get("chat_id", 0)) == DAVE
                                 and "How would you like to pay" in p.get("text", ""))[-1]["params"]
    dave.press(buttons(choice)[1]["callback_data"])
    pay = emulator.wait_calls("editMessageText", where=lambda p: any(b.get("url", "").startswith("https://t.me/$") for b in buttons(p)))
    button = buttons(pay[-1]["params"])[0]
    detail(f"bot: [{button['text']}] -> {button['url']} (createInvoiceLink, XTR, every 30 days)")
    paid = pay_stars(emulator, dave, button["url"])
    expect(paid["ok"], f"Telegram's pre-checkout was answered ok; charge {paid['charge_id']}")
    dm = last_text(emulator, DAVE, "Payment confirmed")
    link = next(word for word in dm.split() if word.startswith("https://t.me/+"))
    expect(link, "Dave got his personal join link")
    dave.ask_to_join(CLOSED, link)
    expect(emulator.wait_calls("approveChatJoinRequest", where=lambda p: int(p["user_id"]) == DAVE), "Dave was let in")
    order_id = paid["payload"]
    say("30 days later Telegram charges Dave again")
    renew_stars(emulator, dave, order_id, paid["amount"])
    expect(last_text(emulator, DAVE, "renewed"), "the renewal extended his access by 30 days, no new link needed")
    detail(telepayd(files, "orders", "show", "--user", str(DAVE)).replace("\n", "\n    "))


def donate(emulator: Emulator, daemon: Daemon, key: int) -> None:
    say("Bob donates $12.50 on the keypad")
    bob = TelegramUser(daemon, 424242, "bob")
    bob.send(f"/start don_{key}")
    pad = emulator.wait_calls("sendMessage", where=lambda p: int(p["chat_id"]) == 424242 and "Donate to" in p["text"])[-1]
    codes = {".": 10, "✅": 13}
    for key_label in "12.50✅":
        before = len(emulator.calls("answerCallbackQuery"))
        bob.press(f"kp:{codes.get(key_label, key_label)}", message_id=pad["message_id"])
        emulator.wait_calls("answerCallbackQuery", before + 1)
    choice = emulator.wait_calls("editMessageText", where=lambda p: "How would you like to pay" in p.get("text", ""))[-1]["params"]
    detail(f"bot: {choice['text']}  buttons: {[b['text'] for b in buttons(choice)]}; Bob pays with crypto")
    bob.press(buttons(choice)[0]["callback_data"])
    invoice = emulator.wait_calls("editMessageText", where=lambda p: any("url" in b and b["text"] == "Pay $12.50" for b in buttons(p)))
    expect(invoice, "the keypad turned into a $12.50 invoice")
    url = next(b["url"] for b in buttons(invoice[-1]["params"]) if "url" in b)
    order_id = next(o for o, inv in emulator.invoices().items() if inv["invoice_url"] == url)
    emulator.send_ipn(order_id, "finished")
    expect(last_text(emulator, OWNER, "donation"), "the owner was told about the donation")


def cloud_run_notification(files: ConfigFiles, emulator: Emulator, daemon: Daemon, secret: str, message_id: str) -> int:
    body = json.dumps({"open_channel_id": str(OPEN), "payment_type": "subscription",
                       "payment_data": {"user_id": 42, "username": "carol", "amount": "24.99", "currency": "usd", "duration_days": 90}}).encode()
    headers = {**sign(secret, body, message_id=message_id).as_dict(), "Content-Type": "application/json"}
    status, answer = http_post(daemon.base_url + "/webhooks/notification", body, headers)
    detail(f"POST /webhooks/notification ({message_id}) -> {status} {answer.decode()}")
    return status


def rotate_secret(files: ConfigFiles, emulator: Emulator, daemon: Daemon) -> None:
    old = files.webhook_secrets[0]
    new = generate_secret()
    say("The operator rotates the Cloud Run secret: new first, old kept for the overlap, then SIGHUP")
    files.webhook_secrets = [new, old]
    files.write()
    mark = len(daemon.notify.messages)
    daemon.send(signal.SIGHUP)
    daemon.notify.wait_for("READY=1", start=mark)
    detail("sd_notify: " + " | ".join(m.replace("\n", " ") for m in daemon.notify.messages[mark:]))
    expect(cloud_run_notification(files, emulator, daemon, new, "msg_new_secret") == 202, "the new secret works")
    expect(cloud_run_notification(files, emulator, daemon, old, "msg_old_secret") == 202, "the old one still works during the overlap")
    files.webhook_secrets = [new]
    files.write()
    mark = len(daemon.notify.messages)
    daemon.send(signal.SIGHUP)
    daemon.notify.wait_for("READY=1", start=mark)
    expect(cloud_run_notification(files, emulator, daemon, old, "msg_retired") == 401, "after retiring it, the old secret gets 401")


def main() -> int:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    require_free_port(PORT, "make demo")
    workdir = Path(tempfile.mkdtemp(prefix="telepayd-demo-"))
    say("Starting a throwaway PostgreSQL and the Telegram / NowPayments emulators")
    cluster = LocalPostgres().start()
    emulator = Emulator()
    daemon: Daemon | None = None
    try:
        files = ConfigFiles(workdir, cluster.dsn(), port=PORT, api_base=emulator.base_url,
                            settings={"subscriptions": {"sweep_interval_seconds": 2}})
        files.write()
        detail(f"config and secret files: {workdir}")
        detail(telepayd(files, "migrate").splitlines()[-1])
        key = int(telepayd(files, "channels", "add", "--open", str(OPEN), "--closed", str(CLOSED), "--owner", str(OWNER),
                           "--title", "Premium Signals", "--description", "Daily calls", "--tier", "9.99:30:500",
                           "--tier", "24.99:90:1300").split()[2].rstrip(":"))
        detail(f"channel {key} on sale: $9.99 or 500 Stars for 30 days, $24.99 or 1300 Stars for 90 days")
        say(f"Starting telepayd on 127.0.0.1:{PORT}")
        daemon = Daemon(files)
        detail("sd_notify: " + daemon.wait_ready().replace("\n", " "))
        subscribe_and_pay(files, emulator, daemon, key)
        pay_in_stars(files, emulator, daemon, key)
        donate(emulator, daemon, key)
        say("A Cloud Run service sends a signed payment notification (and retries it)")
        expect(cloud_run_notification(files, emulator, daemon, files.webhook_secrets[0], "msg_demo_1") == 202, "stored before the 202")
        expect(cloud_run_notification(files, emulator, daemon, files.webhook_secrets[0], "msg_demo_1") == 200, "the retry is a duplicate, no second effect")
        expect(last_text(emulator, OWNER, "@carol"), "the owner got the notification through the outbox")
        rotate_secret(files, emulator, daemon)
        say("Every step worked.")
        if sys.stdin.isatty():
            example = workdir / "notification.json"
            example.write_text(json.dumps({"open_channel_id": str(OPEN), "payment_type": "donation", "payment_data": {"amount": "5.00"}}))
            print(f"""
telepayd stays up on http://127.0.0.1:{PORT} (Ctrl-C stops everything). Try:

    curl -s http://127.0.0.1:{PORT}/status
    telepayd sign --secret-file {files.secret_file('webhook-secrets')} < {example} > {workdir}/headers
    curl -s -X POST http://127.0.0.1:{PORT}/webhooks/notification -H 'Content-Type: application/json' \\
         -H @{workdir}/headers --data-binary @{example}
    telepayd orders show --user {ALICE} -c {files.path}
""", flush=True)
            try:
                daemon.process.wait()
            except KeyboardInterrupt:
                pass
        return 0
    except (StepFailed, TimeoutError) as exc:
        print(f"\n!! demo step failed: {exc}", file=sys.stderr)
        if daemon is not None:
            print(daemon.log()[-3000:], file=sys.stderr)
        return 1
    finally:
        if daemon is not None:
            code = daemon.stop()
            say(f"telepayd stopped (exit code {code})")
        emulator.stop()
        cluster.remove()
        shutil.rmtree(workdir, ignore_errors=True)  # it holds the generated secrets


if __name__ == "__main__":
    sys.exit(main())
