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
from telepayd.texts import ENGLISH
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
    assert list(unpacked.glob("aiohttp/_http_parser*.so")) and list(unpacked.glob("uvloop/loop*.so"))
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
        try:
            code = daemon.wait(40)  # past the daemon's own stop deadline (25 s), which logs what was stuck
        except subprocess.TimeoutExpired:
            daemon.kill()
            code = daemon.wait()
        log.close()
        notify.close()
    assert code == 0, (config_files.directory / "pyz.log").read_text()[-6000:]
    text = (config_files.directory / "pyz.log").read_text()
    assert "database migrated to version" in text and "uvloop event loop" in text and "Traceback" not in text


@pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason="needs Debian's /usr/bin/python3")
def test_pyz_without_a_writable_cache_runs_from_the_zip(pyz, config_files):
    result = run_pyz_to_end(pyz, "check-config", "-c", str(config_files.path), env={"TELEPAYD_NO_UNPACK": "1", "HOME": "/nonexistent"})
    assert result.returncode == 0 and "running the slower pure-Python way" in result.stderr


def test_pyz_reads_its_catalogs_from_the_zip(pyz):
    """gettext reads the .mo through importlib.resources, so a zipped package speaks Russian too."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from telepayd import languages; "
            "print(languages.texts_in('ru').START); print(languages.texts_in('es').day_count(2))")
    result = subprocess.run([sys.executable, "-c", code, str(pyz)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    start, days = result.stdout.splitlines()
    assert start != ENGLISH.START and any("а" <= ch <= "я" for ch in start.lower())
    assert days == "2 días"


def test_pyz_contents(pyz):
    import zipfile

    names = zipfile.ZipFile(pyz).namelist()
    assert "telepayd/store/migrations/0001_webhooks.sql" in names and "__main__.py" in names
    # The compiled catalogs ship (their .po sources stay in the repository).
    assert {"telepayd/locale/ru/LC_MESSAGES/telepayd.mo", "telepayd/locale/es/LC_MESSAGES/telepayd.mo"} <= set(names)
    assert not [n for n in names if n.endswith((".po", ".pot"))]
    # No copy of libpq or OpenSSL inside: psycopg runs over the system's libpq5.
    assert not [n for n in names if "psycopg_binary" in n or "libssl" in n or "libpq" in n]
    assert os.access(pyz, os.X_OK)


needs_system_python = pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason="needs Debian's /usr/bin/python3")
TAMPERED = "raise SystemExit('tampered code ran')\n"


def unpacked(pyz: Path, cache: Path) -> Path:
    """Run the pyz once, which unpacks it into ``cache``; return the unpacked tree."""
    result = run_pyz_to_end(pyz, "--version", env={"XDG_CACHE_HOME": str(cache)})
    assert result.returncode == 0 and result.stderr == "", result.stderr
    (tree,) = (cache / "telepayd").iterdir()
    return tree


def run_version(pyz: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    result = run_pyz_to_end(pyz, "--version", env={"XDG_CACHE_HOME": str(cache)})
    assert result.returncode == 0 and result.stdout.strip() == f"telepayd {__version__}", result.stderr
    return result


def fresh(tree: Path) -> bool:
    """The tree was unpacked again and the old one removed: this user's, writable by nobody else."""
    return [p.name for p in tree.parent.iterdir()] == [tree.name] and all(
        p.lstat().st_uid == os.getuid() and not p.lstat().st_mode & 0o022 and not p.is_symlink()
        for p in [tree, *tree.rglob("*")]
    )


@needs_system_python
def test_an_intact_cache_is_used_as_it_is(pyz, tmp_path):
    tree = unpacked(pyz, tmp_path / "cache")
    inode = tree.stat().st_ino
    assert run_version(pyz, tmp_path / "cache").stderr == ""
    assert tree.stat().st_ino == inode and fresh(tree)  # not unpacked again
    import zipfile

    with zipfile.ZipFile(pyz) as archive:  # and Python wrote nothing into it (no bytecode rewritten)
        changed = [name for name in archive.namelist()
                   if (tree / name).is_file() and (tree / name).read_bytes() != archive.read(name)]
    assert changed == []


@needs_system_python
@pytest.mark.parametrize("tamper", ["edited", "symlinked", "shadowed"])
def test_a_tampered_cache_is_not_used(pyz, tmp_path, tamper):
    tree = unpacked(pyz, tmp_path / "cache")
    cli = tree / "telepayd" / "cli.py"
    original = cli.read_bytes()
    if tamper == "shadowed":  # an extension module is imported before the source of the same name
        ask = "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))"
        suffix = subprocess.run([str(SYSTEM_PYTHON), "-c", ask], capture_output=True, text=True, check=True).stdout.strip()
        (cli.parent / f"cli{suffix}").write_bytes(b"not a shared object")
    else:
        (pyc,) = (cli.parent / "__pycache__").glob("cli.*.pyc")
        pyc.unlink()  # so that Python would compile the source
        if tamper == "edited":
            cli.write_text(TAMPERED)
        else:
            (tmp_path / "evil.py").write_text(TAMPERED)
            cli.unlink()
            cli.symlink_to(tmp_path / "evil.py")
    result = run_version(pyz, tmp_path / "cache")
    assert "tampered code ran" not in result.stderr and "afresh" in result.stderr
    assert cli.read_bytes() == original and fresh(tree)


@needs_system_python
@pytest.mark.parametrize("writable", ["tree", "file"])
def test_a_cache_writable_by_others_is_not_used(pyz, tmp_path, writable):
    cache = tmp_path / "cache"
    tree = unpacked(pyz, cache)
    path = tree if writable == "tree" else tree / "telepayd" / "cli.py"
    path.chmod(path.stat().st_mode | 0o022)
    result = run_version(pyz, cache)
    assert "afresh" in result.stderr and fresh(tree)
    # A cache directory others may write cannot be made safe by unpacking into it: the zip is used.
    (cache / "telepayd").chmod(0o777)
    result = run_version(pyz, cache)
    assert "is writable by others" in result.stderr and "running the slower pure-Python way" in result.stderr


@needs_system_python
@pytest.mark.skipif(os.getuid() != 0, reason="giving files to another user needs root")
def test_a_cache_owned_by_another_user_is_not_used(pyz, tmp_path):
    import pwd

    nobody = pwd.getpwnam("nobody").pw_uid
    cache = tmp_path / "cache"
    tree = unpacked(pyz, cache)
    for path in [tree, *tree.rglob("*")]:
        os.chown(path, nobody, -1, follow_symlinks=False)
    result = run_version(pyz, cache)
    assert f"belongs to uid {nobody}" in result.stderr and "afresh" in result.stderr and fresh(tree)
    os.chown(tree / "telepayd" / "cli.py", nobody, -1)  # one file is enough
    assert "afresh" in run_version(pyz, cache).stderr and fresh(tree)
    os.chown(cache / "telepayd", nobody, -1)
    result = run_version(pyz, cache)
    assert f"belongs to uid {nobody}" in result.stderr and "running the slower pure-Python way" in result.stderr
