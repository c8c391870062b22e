"""CI: the installed .deb's daemon, run as the ``telepayd`` user against a throwaway PostgreSQL and the
emulators, seen through an sd_notify listener: READY, reload (RELOADING, READY), stop (STOPPING), exit 0.
Exits 0 only if every step worked; prints one line per step."""

from __future__ import annotations

import grp
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from telepayd.security.webhook_signature import sign
from tests.harness import Emulator, NotifyListener, http_post
from tools.local_config import ConfigFiles
from tools.local_postgres import LocalPostgres


def step(text: str) -> None:
    print(f"  ok  {text}", flush=True)


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="telepayd-installed-"))
    group = grp.getgrnam("telepayd").gr_gid
    cluster = LocalPostgres().start()
    emulator = Emulator()
    try:
        files = ConfigFiles(workdir, cluster.dsn(), api_base=emulator.base_url)
        files.write()
        # As the package expects: the directory and secrets readable by group telepayd, by nobody else.
        os.chmod(workdir, 0o750)
        os.chown(workdir, 0, group)
        for path in workdir.iterdir():
            os.chown(path, 0, group)
            os.chmod(path, 0o640)
        check = subprocess.run(["runuser", "-u", "telepayd", "--", "/usr/bin/telepayd", "check-config", "-c", str(files.path)],
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        step("telepayd check-config as the telepayd user")
        notify = NotifyListener()
        os.chmod(notify.path.parent, 0o755)
        os.chmod(notify.path, 0o777)
        # Under the kernel's memory-deny-write-execute (what the unit's MemoryDenyWriteExecute=yes asks
        # for), inherited by the daemon: psycopg's ctypes libpq and the compiled modules must cope.
        command = ["runuser", "-u", "telepayd", "--", "env", f"NOTIFY_SOCKET={notify.path}", "/usr/bin/telepayd", "run", "-c", str(files.path)]
        mdwe = ("import ctypes, os, sys\n"
                "if ctypes.CDLL(None).prctl(65, 1, 0, 0, 0) != 0:\n"
                "    print('  note: this kernel has no PR_SET_MDWE; running without it', file=sys.stderr)\n"
                "os.execvp(sys.argv[1], sys.argv[1:])")
        daemon = subprocess.Popen(["/usr/bin/python3", "-c", mdwe, *command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            notify.wait_for("READY=1", 30)
            step("installed daemon READY=1 under memory-deny-write-execute (migrated, bot initialised)")
            body = json.dumps({"open_channel_id": "-100", "payment_type": "donation", "payment_data": {"amount": "5"}}).encode()
            headers = {**sign(files.webhook_secrets[0], body).as_dict(), "Content-Type": "application/json"}
            status, answer = http_post(f"http://127.0.0.1:{files.port}/webhooks/notification", body, headers)
            assert status == 202, answer
            step("signed notification accepted (202)")
            pid = int(subprocess.run(["pgrep", "-u", "telepayd", "-f", "/usr/lib/telepayd run"], capture_output=True, text=True).stdout.split()[0])
            mark = len(notify.messages)
            os.kill(pid, signal.SIGHUP)
            notify.wait_for("RELOADING=1", 15, start=mark)
            notify.wait_for("READY=1", 15, start=mark)
            step("SIGHUP: RELOADING=1 then READY=1")
            os.kill(pid, signal.SIGTERM)
            code = daemon.wait(30)
            notify.drain()
            assert any("STOPPING=1" in m for m in notify.messages[mark:]), notify.messages
            assert code == 0, code
            step("SIGTERM: STOPPING=1, exit 0")
        finally:
            if daemon.poll() is None:
                daemon.kill()
            output = daemon.stdout.read().decode(errors="replace") if daemon.stdout else ""
            notify.close()
        assert "Traceback" not in output, output
        assert "uvloop event loop" in output, output  # the bundled uvloop loads under memory-deny-write-execute
        step("ran on the bundled uvloop")
        return 0
    except (AssertionError, TimeoutError, KeyError, IndexError) as exc:
        print(f"FAILED: {exc!r}", file=sys.stderr)
        return 1
    finally:
        emulator.stop()
        cluster.remove()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
