"""What ships against the development install, on the signed notification path, in one run.

Variants: the development install (``python3 -m telepayd``: compiled extensions, psycopg's binary
implementation), the .deb's tree (``/usr/bin/python3 -I /usr/lib/telepayd``, or the same staged tree when
the package is not installed), the pyz unpacked to its cache (how it runs), and the pyz run from the zip
on pure-Python fallbacks (the alternative, measured for the choice). Reports ingest throughput as a ratio
to the development install, p99, and the time from exec to READY=1.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.http import run_wrk, wait_port, write_wrk_script
from tests.harness import Emulator
from tools.local_config import ConfigFiles
from tools.local_postgres import LocalPostgres
from tools.local_stack import local_stack

ROOT = Path(__file__).resolve().parent.parent
SECONDS = int(os.environ.get("BENCH_SECONDS", "8"))


def _ready_seconds(command: list[str], env: dict[str, str]) -> float:
    notify_dir = Path(tempfile.mkdtemp())
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_dir / "notify"))
    sock.settimeout(30)
    started = time.monotonic()
    process = subprocess.Popen(command, env={**env, "NOTIFY_SOCKET": str(notify_dir / "notify")},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while "READY=1" not in sock.recv(4096).decode():
            pass
        return time.monotonic() - started
    finally:
        process.terminate()
        process.wait(20)
        sock.close()
        shutil.rmtree(notify_dir, ignore_errors=True)


def main() -> None:
    with local_stack("telepayd-bench-packaged-") as stack:
        _compare(stack.workdir, stack.cluster, stack.emulator)


def _compare(workdir: Path, cluster: LocalPostgres, emulator: Emulator) -> None:
    subprocess.run([sys.executable, str(ROOT / "zipapp.py"), "--output-dir", str(workdir)], check=True, capture_output=True)
    (pyz,) = workdir.glob("telepayd-*.pyz")
    installed = Path("/usr/bin/telepayd")
    if not installed.exists():
        subprocess.run([sys.executable, str(ROOT / "zipapp.py"), "--stage-dir", str(workdir / "tree")], check=True, capture_output=True)
    files = ConfigFiles(workdir, cluster.dsn(), api_base=emulator.base_url, settings={
        "webhooks.rate_limit": {"per_minute": 1_000_000, "burst": 1_000_000, "max_clients": 1000},
        "logging": {"level": "warning"},
    })
    files.write()
    system_env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "XDG_CACHE_HOME": str(workdir / "cache")}
    deb_command = [str(installed)] if installed.exists() else ["/usr/bin/python3", "-I", str(workdir / "tree")]
    variants = {
        "development install": ([sys.executable, "-m", "telepayd"], {**os.environ, "PYTHONPATH": str(ROOT)}),
        "the .deb's tree" + (" (installed)" if installed.exists() else " (staged)"): (deb_command, system_env),
        "pyz, unpacked to its cache": (["/usr/bin/python3", "-I", str(pyz)], system_env),
        "pyz, pure-Python from the zip": (["/usr/bin/python3", "-I", str(pyz)], {**system_env, "TELEPAYD_NO_UNPACK": "1"}),
    }
    first_unpack = _ready_seconds(["/usr/bin/python3", "-I", str(pyz), "run", "-c", str(files.path)], system_env)
    results: dict[str, dict[str, list[float]]] = {name: {"rps": [], "p99": [], "ready": []} for name in variants}
    for _round in range(2):
        for name, (command, env) in variants.items():
            results[name]["ready"].append(_ready_seconds([*command, "run", "-c", str(files.path)], env))
            script = write_wrk_script(workdir, "/webhooks/notification", files.webhook_secrets[0], SECONDS * 12000)
            daemon = subprocess.Popen([*command, "run", "-c", str(files.path)], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_port(files.port)
                time.sleep(0.5)
                run = run_wrk(f"http://127.0.0.1:{files.port}", script)
            finally:
                daemon.terminate()
                daemon.wait(20)
            results[name]["rps"].append(run["rps"])
            results[name]["p99"].append(run["p99_ms"])
    base = sum(results["development install"]["rps"]) / 2
    print("signed notification ingest, what ships vs the development install (wrk -t1 -c64, 2 interleaved rounds):")
    for name, r in results.items():
        rps = sum(r["rps"]) / 2
        print(f"  {name:<36} {rps:7.0f} req/s  ratio {rps / base:.2f}  p99 {max(r['p99']):6.1f} ms"
              f"  exec to READY {min(r['ready']):.2f} s")
    print(f"  (the pyz's very first start, unpacking included: {first_unpack:.2f} s to READY)")


if __name__ == "__main__":
    main()
