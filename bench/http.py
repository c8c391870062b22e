"""HTTP benchmarks with wrk on loopback: the security chain's cost, signed ingest, startup and memory.

Each figure that depends on the machine is printed next to a ratio measured in the same run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from telepayd.security.webhook_signature import sign
from bench.targets import verdict
from tools.local_config import ConfigFiles
from tools.local_postgres import free_port
from tools.local_stack import local_stack

SECONDS = int(os.environ.get("BENCH_SECONDS", "8"))
CONNECTIONS = 64
BODY = json.dumps(
    {"open_channel_id": "-1003268562225", "payment_type": "subscription",
     "payment_data": {"user_id": 6271402111, "username": "alice", "amount": "9.99", "currency": "usd", "tier": 1, "duration_days": 30}}
).encode()


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_wrk_script(directory: Path, path: str, secret: str, count: int, tag: str = "") -> Path:
    """A wrk script that sends ``count`` requests, each with its own webhook-id, signed ahead of time (a run
    that needs ids no other run sent gets a script with another ``tag``)."""
    data = directory / f"signed-{path.strip('/').replace('/', '-')}{tag}.txt"
    with data.open("w") as out:
        for n in range(count):
            h = sign(secret, BODY, message_id=f"bench-{os.getpid()}-{time.monotonic_ns()}-{n}")
            out.write(f"{h.webhook_id} {h.webhook_timestamp} {h.webhook_signature}\n")
    script = directory / f"wrk-{path.strip('/').replace('/', '-')}{tag}.lua"
    script.write_text(f"""
local signed = {{}}
for line in io.lines({_lua_string(str(data))}) do
  local id, ts, sig = line:match("^(%S+) (%S+) (%S+)$")
  signed[#signed + 1] = {{id, ts, sig}}
end
local body = {_lua_string(BODY.decode())}
local path = {_lua_string(path)}
local i = 0
request = function()
  i = i + 1
  if i > #signed then i = 1 end
  local s = signed[i]
  return wrk.format("POST", path, {{["Content-Type"] = "application/json", ["webhook-id"] = s[1],
    ["webhook-timestamp"] = s[2], ["webhook-signature"] = s[3]}}, body)
end
done = function(summary, latency, requests)
  io.write(string.format("P99_US %d\\n", latency:percentile(99)))
  io.write(string.format("REQUESTS %d\\n", summary.requests))
  io.write(string.format("ERRORS %d\\n", summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
""")
    return script


def run_wrk(url: str, script: Path, seconds: int = SECONDS, connections: int = CONNECTIONS) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return {
        "rps": rps,
        "p99_ms": int(re.search(r"P99_US (\d+)", out).group(1)) / 1000,
        "requests": int(re.search(r"REQUESTS (\d+)", out).group(1)),
        "errors": int(re.search(r"ERRORS (\d+)", out).group(1)),
    }


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def chain_overhead(files: ConfigFiles, workdir: Path) -> float:
    """Throughput of a no-op route behind the security chain over the same route without it."""
    script = write_wrk_script(workdir, "/noop", files.webhook_secrets[0], 1000)
    modes = ("plain", "signature-only", "answers", "secured")
    results: dict[str, list[float]] = {mode: [] for mode in modes}
    for mode in modes * 2:  # interleaved, so drift on a shared machine hits each alike
        port = free_port()
        with serving([sys.executable, "-m", "bench.noop_server", mode, str(port), str(files.path)], port) as base:
            run = run_wrk(base, script, max(3, SECONDS // 2))
        assert run["errors"] == 0, f"{mode}: {run['errors']} non-2xx answers"
        results[mode].append(run["rps"])
    plain, signature_only, answers, secured = (sum(results[m]) / len(results[m]) for m in modes)
    ratio = secured / plain
    print("security chain on a no-op POST route, wrk -t1 -c64 (interleaved runs, averaged):")
    print(f"  plain aiohttp                        {plain:8.0f} req/s")
    alone = signature_only / plain
    print(f"  plain + Standard Webhooks check only {signature_only:8.0f} req/s  ratio {alone:.2f} (target >= 0.85: "
          f"{verdict(alone >= 0.85, 'Standard Webhooks check alone >= 0.85 of the bare route')})")
    print(f"  + request id, headers, JSON errors   {answers:8.0f} req/s  ratio {answers / plain:.2f} (every route)")
    print("  + address, allowlist, rate limit, body, type, Standard Webhooks signature (the Cloud Run chain)")
    print(f"                                       {secured:8.0f} req/s  ratio {ratio:.2f} (target >= 0.60: "
          f"{verdict(ratio >= 0.60, 'the whole Cloud Run chain >= 0.60 of the bare route')})")
    return ratio


@contextlib.contextmanager
def serving(command: list[str], port: int, *, settle: float = 0.0, stop_seconds: float = 10) -> Iterator[str]:
    """``command`` started (output discarded), listening on ``port`` and given ``settle`` seconds; yields its
    base URL and stops it on the way out."""
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        time.sleep(settle)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(stop_seconds)


@contextlib.contextmanager
def running_daemon(files: ConfigFiles, *, settle: float = 0.5, stop_seconds: float = 20) -> Iterator[str]:
    """``telepayd run`` on ``files``, as ``serving`` runs a command."""
    with serving([sys.executable, "-m", "telepayd", "run", "-c", str(files.path)], files.port,
                 settle=settle, stop_seconds=stop_seconds) as base:
        yield base


INGEST_TARGET = 6.0  # times the Flask design (bench/flask_design.py, measured in the same run), at 32 connections
# The Flask design's figure on this machine when the target was set (it writes nothing): printed beside the
# measured one, since this shared VM's speed moves from day to day (a plain aiohttp route: 29,409 req/s then).
FLASK_FIGURE = 1000
OWNER_CHAT_ID = 555000111


def _put_channel_on_sale(files: ConfigFiles) -> None:
    """The channel the notifications name, so each goes to its owner through the outbox, paced as Telegram
    wants (with no channel, the outbox would record an anomaly per notification at the ingest's pace)."""
    channel = json.loads(BODY)["open_channel_id"]
    subprocess.run([sys.executable, "-m", "telepayd", "channels", "add", "--open", channel, "--closed", "-1002222222222",
                    "--owner", str(OWNER_CHAT_ID), "--title", "Bench", "--tier", "9.99:30", "-c", str(files.path)],
                   check=True, stdout=subprocess.DEVNULL)


@contextlib.contextmanager
def flask_design(files: ConfigFiles) -> Iterator[str]:
    port = free_port()
    with serving([sys.executable, "-m", "bench.flask_design", str(port), str(files.secret_file("webhook-secrets"))], port) as base:
        yield base


def _each(runs: list[dict[str, float]]) -> str:
    return ", ".join(f"{run['rps']:.0f}" for run in runs)


def ingest(files: ConfigFiles, workdir: Path, noop_secured_rps: float | None = None) -> dict[str, float]:
    """Signed notifications through the real daemon (verify, dedupe, store with group commit, 202), beside
    the Flask design measured in turn with it: twice each at 32 connections (the target), then the daemon
    at 64."""
    expected = int(SECONDS * 12000)
    runs: dict[str, list[dict[str, float]]] = {"flask": [], "c32": [], "c64": []}
    with running_daemon(files) as base, flask_design(files) as reference:
        _put_channel_on_sale(files)
        for round_ in (1, 2):  # ids of their own: a duplicate is answered without a write
            # Signed just before each run, so that no timestamp is past the tolerance (long BENCH_SECONDS).
            flask_script = write_wrk_script(workdir, "/webhooks/notification", files.webhook_secrets[0], 20000, f"-flask-{round_}")
            runs["flask"].append(run_wrk(reference, flask_script, connections=32))
            script = write_wrk_script(workdir, "/webhooks/notification", files.webhook_secrets[0], expected, f"-c32-{round_}")
            runs["c32"].append(run_wrk(base, script, connections=32))
        script = write_wrk_script(workdir, "/webhooks/notification", files.webhook_secrets[0], expected, "-c64")
        runs["c64"].append(run_wrk(base, script, connections=64))
        with urllib.request.urlopen(base + "/status") as response:
            status = json.load(response)
    accepted = status["requests"].get("notification", {}).get("202", 0)
    batches = max(1, status["ingest"]["batches"])
    flask = sum(run["rps"] for run in runs["flask"]) / 2
    # A 503 is no throughput, nor is a duplicate (the script starts its ids again after `expected`).
    clean = all(run["errors"] == 0 and run["requests"] <= expected for run in runs["c32"] + runs["c64"])
    flask_clean = all(run["errors"] == 0 for run in runs["flask"])
    c32 = sum(run["rps"] for run in runs["c32"]) / 2
    c64 = runs["c64"][0]["rps"]
    ratio = c32 / flask
    met = ratio >= INGEST_TARGET and clean and flask_clean
    print("signed notification ingest (verify, dedupe, store durably, 202), wrk -t1, runs interleaved:")
    print("  the Flask design (bench/flask_design.py: Flask's threaded server, signature and JSON, no database)")
    print(f"        {flask:8.0f} req/s at -c32 ({_each(runs['flask'])})")
    print(f"  -c32  {c32:8.0f} req/s ({_each(runs['c32'])}), "
          f"p99 {max(run['p99_ms'] for run in runs['c32']):6.1f} ms: {ratio:4.1f}x the Flask design "
          f"(target {INGEST_TARGET:g}x, no errors: {verdict(met, f'signed ingest >= {INGEST_TARGET:g}x the Flask design at 32 connections')});"
          f" {c32 / FLASK_FIGURE:4.1f}x the {FLASK_FIGURE:,} req/s it did when the target was set")
    print(f"  -c64  {c64:8.0f} req/s, p99 {runs['c64'][0]['p99_ms']:6.1f} ms: {c64 / flask:4.1f}x the Flask design")
    if not clean or not flask_clean:
        print(f"  errors: {[run['errors'] for run in runs['c32'] + runs['c64']]} (daemon), "
              f"{[run['errors'] for run in runs['flask']]} (Flask)")
    print(f"  stored {accepted} in {batches} commits: {status['ingest']['messages'] / batches:.1f} messages a commit (group commit)")
    if noop_secured_rps:
        print(f"  vs no-op route    {c32 / noop_secured_rps:8.2f} of the secured no-op route's throughput")
    return {"rps": c32}


def startup_and_memory(files: ConfigFiles) -> None:
    """Time from exec to READY=1 (database up), and resident memory once idle."""
    notify_dir = Path(tempfile.mkdtemp())
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_dir / "notify"))
    sock.settimeout(20)
    env = {**os.environ, "NOTIFY_SOCKET": str(notify_dir / "notify")}
    times = []
    rss_mb = 0.0
    for _ in range(3):
        started = time.monotonic()
        daemon = subprocess.Popen([sys.executable, "-m", "telepayd", "run", "-c", str(files.path)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while "READY=1" not in sock.recv(4096).decode():
            pass
        times.append(time.monotonic() - started)
        time.sleep(2)
        rss_kb = int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{daemon.pid}/status").read_text()).group(1))
        rss_mb = max(rss_mb, rss_kb / 1024)
        daemon.terminate()
        daemon.wait(20)
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    bare = time.monotonic() - started
    best = min(times)
    print("startup and memory:")
    print(f"  exec to READY=1   {best:8.2f} s best of 3 (target < 1.5 s: {verdict(best < 1.5, 'READY=1 within 1.5 s')});"
          f" {best / bare:.1f}x a bare 'python3 -c pass' ({bare:.2f} s)")
    print(f"  idle RSS          {rss_mb:8.1f} MB (target < 90 MB: {verdict(rss_mb < 90, 'idle RSS under 90 MB')})")
    sock.close()
    shutil.rmtree(notify_dir, ignore_errors=True)


def bench_config(stack) -> ConfigFiles:
    """The benchmarks' config: limits far above what a load generator on this machine reaches (measure the
    work, not 429s), a small pool, quiet logs; the daemon talks to the emulators only."""
    files = ConfigFiles(stack.workdir, stack.cluster.dsn(), api_base=stack.emulator.base_url, settings={
        "webhooks.rate_limit": {"per_minute": 1_000_000, "burst": 1_000_000, "max_clients": 1000},
        "database": {"min_size": 2, "max_size": 4},
        "logging": {"level": "warning"},
    })
    files.write()
    return files


def main() -> None:
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install wrk")
    # The daemon talks to the Bot API emulator: nothing leaves the machine.
    with local_stack("telepayd-bench-") as stack:
        files = bench_config(stack)
        chain_overhead(files, stack.workdir)
        print()
        ingest(files, stack.workdir)
        print()
        startup_and_memory(files)


if __name__ == "__main__":
    main()
