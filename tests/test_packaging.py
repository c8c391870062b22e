"""The zipapp: built by zipapp.py, it runs the real daemon with Debian's /usr/bin/python3 alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from telepayd import __version__
from telepayd.security.webhook_signature import sign
from tests.harness import NotifyListener, http_post

ROOT = Path(__file__).resolve().parent.parent
SYSTEM_PYTHON = Path("/usr/bin/python3")


@pytest.fixture(scope="module")
def pyz(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run([sys.executable, str(ROOT / "zipapp.py"), "--output-dir", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    built = out / f"telepayd-{__version__}.pyz"
    assert built.exists() and built.stat().st_size < 20 * 2**20
    return built


def run_pyz(pyz: Path, *args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
    # A clean environment and isolated mode: nothing from the development install can leak in.
    base = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"} | (env or {})
    return subprocess.Popen([str(SYSTEM_PYTHON), "-I", str(pyz), *args], env=base, **kwargs)


def run_pyz_to_end(pyz: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SYSTEM_PYTHON), "-I", str(pyz), *args], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"} | env)


@pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason="needs Debian's /usr/bin/python3")
def test_pyz_runs_the_daemon_with_system_python(pyz, config_files, tmp_path):
    cache = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    version = run_pyz_to_end(pyz, "--version", env=cache)
    assert version.stdout.strip() == f"telepayd {__version__}" and version.stderr == ""
    (unpacked,) = (tmp_path / "cache" / "telepayd").iterdir()  # unpacked once, into a versioned directory
    assert list(unpacked.glob("aiohttp/_http_parser*.so"))
    check = run_pyz_to_end(pyz, "check-config", "-c", str(config_files.path), env=cache)
    assert check.returncode == 0, check.stderr
    notify = NotifyListener()
    log = open(config_files.directory / "pyz.log", "wb")
    daemon = run_pyz(pyz, "run", "-c", str(config_files.path), env={"NOTIFY_SOCKET": str(notify.path), **cache},
                     stdout=log, stderr=subprocess.STDOUT)
    try:
        notify.wait_for("READY=1", 30)
        body = json.dumps({"open_channel_id": "-100", "payment_type": "donation", "payment_data": {"amount": "5"}}).encode()
        headers = {**sign(config_files.webhook_secrets[0], body).as_dict(), "Content-Type": "application/json"}
        status, answer = http_post(f"http://127.0.0.1:{config_files.port}/webhooks/notification", body, headers)
        assert status == 202, answer
    finally:
        daemon.terminate()
        assert daemon.wait(20) == 0
        log.close()
        notify.close()
    text = (config_files.directory / "pyz.log").read_text()
    assert "database migrated to version" in text and "Traceback" not in text


@pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason="needs Debian's /usr/bin/python3")
def test_pyz_without_a_writable_cache_runs_from_the_zip(pyz, config_files):
    result = run_pyz_to_end(pyz, "check-config", "-c", str(config_files.path), env={"TELEPAYD_NO_UNPACK": "1", "HOME": "/nonexistent"})
    assert result.returncode == 0 and "running the slower pure-Python way" in result.stderr


def test_pyz_contents(pyz):
    import zipfile

    names = zipfile.ZipFile(pyz).namelist()
    assert "telepayd/store/migrations/0001_webhooks.sql" in names and "__main__.py" in names
    # No copy of libpq or OpenSSL inside: psycopg runs over the system's libpq5.
    assert not [n for n in names if "psycopg_binary" in n or "libssl" in n or "libpq" in n]
    assert os.access(pyz, os.X_OK)
