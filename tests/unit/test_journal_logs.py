"""Log lines under systemd: a syslog priority prefix per line (``journalctl -p err`` works), no time of
our own; elsewhere a time; JSON for log shippers without a prefix."""

from __future__ import annotations

import io
import json
import logging
import os

import pytest

from telepayd import logs
from telepayd.config import LoggingConfig


def emit(monkeypatch, journal: bool, fmt: str = "plain") -> list[str]:
    if journal:  # systemd names the stream it connected stderr to: "<device>:<inode>"
        stderr = os.fstat(2)
        monkeypatch.setenv("JOURNAL_STREAM", f"{stderr.st_dev}:{stderr.st_ino}")
    else:
        monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    logs.configure(LoggingConfig(level="debug", format=fmt))
    handler = logging.getLogger().handlers[0]
    stream = io.StringIO()
    handler.setStream(stream)
    log = logging.getLogger("telepayd.test")
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    log.critical("c")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    return stream.getvalue().splitlines()


@pytest.fixture(autouse=True)
def restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_under_systemd_each_line_carries_its_priority_and_no_time(monkeypatch):
    lines = emit(monkeypatch, journal=True)
    assert lines[:5] == ["<7>DEBUG telepayd.test [-] d", "<6>INFO telepayd.test [-] i", "<4>WARNING telepayd.test [-] w",
                         "<3>ERROR telepayd.test [-] e", "<2>CRITICAL telepayd.test [-] c"]
    traceback = lines[5:]
    assert traceback[0] == "<3>ERROR telepayd.test [-] failed" and len(traceback) > 2
    assert all(line.startswith("<3>") for line in traceback)  # journald keeps each line at err
    assert traceback[-1] == "<3>ValueError: boom"


def test_elsewhere_lines_have_a_time_and_no_prefix(monkeypatch):
    lines = emit(monkeypatch, journal=False)
    assert lines[1].endswith(" INFO telepayd.test [-] i") and lines[1][:4].isdigit()
    assert not any(line.startswith("<") for line in lines)


def test_json_stays_json_under_systemd(monkeypatch):
    lines = emit(monkeypatch, journal=True, fmt="json")
    entries = [json.loads(line) for line in lines]
    assert [e["level"] for e in entries[:5]] == ["debug", "info", "warning", "error", "critical"]
    assert "ValueError: boom" in entries[5]["exception"]


def test_a_journal_stream_that_is_not_our_stderr_is_not_the_journal(monkeypatch):
    # Inherited from a parent whose own output went to the journal (a desktop's terminal started by
    # systemd --user): our stderr is elsewhere, a terminal or a file, which would show "<6>" and no time.
    stderr = os.fstat(2)
    monkeypatch.setenv("JOURNAL_STREAM", f"{stderr.st_dev}:{stderr.st_ino + 1}")
    logs.configure(LoggingConfig(level="info", format="plain"))
    handler = logging.getLogger().handlers[0]
    stream = io.StringIO()
    handler.setStream(stream)
    logging.getLogger("telepayd.test").info("i")
    (line,) = stream.getvalue().splitlines()
    assert line[:4].isdigit() and line.endswith(" INFO telepayd.test [-] i")
    monkeypatch.setenv("JOURNAL_STREAM", "not a stream")
    logs.configure(LoggingConfig(level="info", format="plain"))
    assert not isinstance(logging.getLogger().handlers[0].formatter, logs.JournalFormatter)


def test_a_config_that_stops_the_start_is_told_at_error_priority_in_the_journal(tmp_path):
    import os
    import subprocess
    import sys

    config = tmp_path / "telepayd.toml"
    config.write_text("[server]\nport = 70000\n")
    stderr_path = tmp_path / "stderr"
    with open(stderr_path, "wb") as stderr:
        stat = os.fstat(stderr.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino}"}  # stderr is "the journal"
        code = subprocess.run([sys.executable, "-m", "telepayd", "run", "-c", str(config)], stderr=stderr, env=env).returncode
    lines = stderr_path.read_text().splitlines()
    assert code == 78 and lines
    assert all(line.startswith("<3>") for line in lines), lines
    assert any("[server] port" in line for line in lines) and "not started" in lines[-1]
