"""``GET /metrics`` through the running daemon: Prometheus' text format (read back with prometheus_client's own
parser), values that move as requests, IPNs, webhook messages and deliveries happen, and the allowlist."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import psycopg
from prometheus_client.parser import text_string_to_metric_families

from telepayd.security.webhook_signature import sign
from tests.harness import TelegramUser, http_post
from tests.test_alert_rules import metric_names_in_rules
from tests.test_buying_e2e import ALICE, add_channel, buy, telepayd
from tests.test_notification_e2e import NOTIFICATION

IDS = ("6271402111", "tp_", "-100", "5077")  # a user, order, chat or payment id: never in a label


def scrape(daemon) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(daemon.base_url + "/metrics", timeout=10) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = answer.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            assert not any(part in value for _, value in labels for part in IDS), sample
            samples[(sample.name, labels)] = sample.value
    return samples


def refused(daemon) -> tuple[int, str]:
    """The status and error code /metrics answered with (it must refuse)."""
    try:
        urllib.request.urlopen(daemon.base_url + "/metrics", timeout=10)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)["error"]
    raise AssertionError("/metrics answered 200")


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_move_as_the_daemon_works(config_files, start_daemon, emulator):
    key = add_channel(config_files, "4.99:7", "9.99:30")
    daemon = start_daemon(config_files)
    before = scrape(daemon)
    assert value(before, "telepayd_up", dependency="database") == 1
    assert value(before, "telepayd_database_figures_ok") == 1
    assert any(name == "telepayd_build_info" for name, _ in before)

    body = json.dumps(NOTIFICATION).encode()
    headers = {**sign(config_files.webhook_secrets[0], body, message_id="msg_metrics_1").as_dict(),
               "content-type": "application/json"}
    assert http_post(daemon.base_url + "/webhooks/notification", body, headers)[0] == 202
    assert http_post(daemon.base_url + "/webhooks/notification", body, headers)[0] == 200  # the same again
    assert http_post(daemon.base_url + "/webhooks/notification", b"{}", {"content-type": "application/json"})[0] == 401

    granted = telepayd(config_files, "subscriptions", "grant", "--channel", str(key), "--user", "424242", "--days", "3")
    assert granted.returncode == 0, granted.stderr
    order_id = buy(emulator, TelegramUser(daemon, ALICE, "alice"), key, tier_index=1)  # the second plan
    for status in ("confirming", "finished"):
        assert emulator.send_ipn(order_id, status, payment_id=5077125801)["status"] == 200
    emulator.wait_calls("createChatInviteLink", 2)  # the grant's and the buyer's
    emulator.wait_calls("sendMessage", where=lambda p: "Payment confirmed" in p.get("text", ""))
    emulator.fail("sendMessage", 403, description="Forbidden: bot was blocked by the user", count=1)
    assert TelegramUser(daemon, ALICE, "alice").send("/help") == 200  # the bot's answer is refused
    time.sleep(6)  # the database figures are read at most every 5 s
    after = scrape(daemon)

    assert value(after, "telepayd_webhook_messages_total", route="notification", result="accepted") == 1
    assert value(after, "telepayd_webhook_messages_total", route="notification", result="duplicate") == 1
    assert value(after, "telepayd_http_requests_total", route="notification", status="202") == 1
    assert value(after, "telepayd_http_rejections_total", reason="missing_signature_headers") >= 1
    assert value(after, "telepayd_ipns_total", status="finished", outcome="granted") == 1
    assert value(after, "telepayd_ipns_total", status="confirming", outcome="applied") == 1
    assert value(after, "telepayd_ipn_handling_seconds_count") == 2
    assert value(after, "telepayd_ingest_batch_size_count") >= 1 and value(after, "telepayd_ingest_commit_seconds_count") >= 1
    assert value(after, "telepayd_last_ipn_timestamp_seconds") > time.time() - 60
    assert value(after, "telepayd_outbox_sent_total", kind="join_link") == 2
    assert value(after, "telepayd_invoices_created_last_day") == 1
    assert value(after, "telepayd_subscriptions_active", channel=str(key), tier="2") == 1  # the plan paid for
    assert value(after, "telepayd_subscriptions_active", channel=str(key), tier="0") == 1  # the operator's grant
    assert ("telepayd_subscriptions_active", (("channel", str(key)), ("tier", "1"))) not in after
    assert value(after, "telepayd_db_pool_connections", pool="main") >= 1
    sent_errors = [v for (name, labels), v in after.items() if name == "telepayd_telegram_errors_total"
                   and ("method", "sendMessage") in labels and ("code", "403") in labels]
    assert sent_errors == [1.0]
    # The notification names a channel not on sale here: undeliverable, failed for good (and an anomaly).
    assert value(after, "telepayd_outbox_failed_total", kind="notification") == 1
    assert value(after, "telepayd_anomalies_total", kind="unknown_channel") == 1
    assert value(after, "telepayd_http_requests_total", route="metrics", status="200") >= 1
    exported = {name for name, _ in after}
    assert metric_names_in_rules() - exported == set(), "the alert rules name metrics the daemon does not export"


def test_metrics_are_for_the_status_allowlist_only_and_can_be_switched_off(config_files, start_daemon):
    config_files.settings = {"server": {"status_allowed_ips": ["10.9.9.9/32"]}}
    config_files.write()
    daemon = start_daemon(config_files)
    assert refused(daemon) == (403, "forbidden")
    daemon.stop()

    config_files.settings = {"server": {"metrics": False}}
    config_files.write()
    daemon = start_daemon(config_files)
    assert refused(daemon) == (404, "metrics_off")


def test_a_database_that_is_down_leaves_its_figures_out_not_the_scrape(config_files, start_daemon):
    config_files.settings = {"database": {"dsn": "host=127.0.0.1 port=1 user=nobody dbname=none connect_timeout=1"}}
    config_files.write()
    daemon = start_daemon(config_files, wait=False)
    daemon.notify.wait_for("READY=1", timeout=30)
    samples = scrape(daemon)
    assert value(samples, "telepayd_up", dependency="database") == 0
    assert value(samples, "telepayd_database_figures_ok") == 0
    assert not any(name == "telepayd_outbox_pending" for name, _ in samples)


def scrape_until(daemon, done, timeout: float = 20.0) -> dict[tuple[str, tuple], float]:
    """Scrape every half second until ``done(samples)``; the last samples either way."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(daemon)
        if done(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.5)


def test_a_database_lost_after_start_is_down_in_the_scrape_with_nobody_probing_ready(config_files, start_daemon, admin_dsn):
    daemon = start_daemon(config_files)
    assert value(scrape(daemon), "telepayd_up", dependency="database") == 1
    name = psycopg.conninfo.conninfo_to_dict(config_files.dsn)["dbname"]
    with psycopg.connect(admin_dsn, autocommit=True) as conn:  # nothing can connect, and the pool's sessions end
        conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name])
    try:
        down = scrape_until(daemon, lambda s: value(s, "telepayd_up", dependency="database") == 0)
        assert value(down, "telepayd_up", dependency="database") == 0, "a scrape alone must see the database gone"
        assert value(down, "telepayd_database_figures_ok") == 0
        assert not any(metric == "telepayd_outbox_pending" for metric, _ in down)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
    # The pool reconnects with its own backoff (1 s, doubling): allow it a few rounds.
    back = scrape_until(daemon, lambda s: value(s, "telepayd_up", dependency="database") == 1
                        and value(s, "telepayd_database_figures_ok") == 1, timeout=45)
    assert value(back, "telepayd_up", dependency="database") == 1 and value(back, "telepayd_database_figures_ok") == 1
    assert "GET /ready" not in daemon.log() and value(back, "telepayd_http_requests_total", route="ready", status="200") == 0


def test_the_oldest_due_age_counts_from_queueing_so_retries_do_not_hide_a_message_telegram_keeps_refusing(
        config_files, start_daemon, emulator):
    add_channel(config_files, "9.99:30", open_id=int(NOTIFICATION["open_channel_id"]))
    daemon = start_daemon(config_files)
    emulator.fail("sendMessage", 502, description="Bad Gateway", seconds=60)  # Telegram down for a minute
    body = json.dumps(NOTIFICATION).encode()
    headers = {**sign(config_files.webhook_secrets[0], body).as_dict(), "content-type": "application/json"}
    assert http_post(daemon.base_url + "/webhooks/notification", body, headers)[0] == 202
    queued = time.monotonic()
    emulator.wait_calls("sendMessage", 3)  # tried, and tried again after each pause (1 s, 2 s, ...)
    time.sleep(max(0.0, queued + 20 - time.monotonic()))
    samples = scrape(daemon)  # the first scrape: figures read now
    assert value(samples, "telepayd_outbox_pending", kind="notification") == 1
    assert value(samples, "telepayd_outbox_oldest_due_seconds") >= 15, "each retry must not start the wait again"
    assert value(samples, "telepayd_telegram_errors_total", method="sendMessage", code="502") >= 3
    assert value(samples, "telepayd_outbox_sent_total", kind="notification") == 0


def test_telegram_lost_after_start_shows_as_down_and_back(config_files, start_daemon, emulator):
    daemon = start_daemon(config_files)
    assert value(scrape(daemon), "telepayd_up", dependency="telegram") == 1
    emulator.fail("*", 502, description="Bad Gateway", seconds=30)
    alice = TelegramUser(daemon, ALICE, "alice")
    assert alice.send("/help") == 200  # the answer is a Bot API call, refused with 502
    deadline = time.monotonic() + 15
    while value(samples := scrape(daemon), "telepayd_up", dependency="telegram") != 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert value(samples, "telepayd_up", dependency="telegram") == 0
    emulator.reset()  # Telegram answers again
    assert alice.send("/help") == 200
    deadline = time.monotonic() + 15
    while value(samples := scrape(daemon), "telepayd_up", dependency="telegram") != 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert value(samples, "telepayd_up", dependency="telegram") == 1
