"""Fixtures: a throwaway PostgreSQL cluster per session (or ``TELEPAYD_TEST_DSN``), a fresh database per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.harness import ConfigFiles, Daemon, Emulator
from tools.local_postgres import LocalPostgres


@pytest.fixture(scope="session")
def admin_dsn() -> Iterator[str]:
    """A superuser DSN: ``TELEPAYD_TEST_DSN`` when given, else a cluster started for this session."""
    given = os.environ.get("TELEPAYD_TEST_DSN")
    if given:
        yield given
        return
    cluster = LocalPostgres().start()
    try:
        yield cluster.dsn()
    finally:
        cluster.remove()


@pytest.fixture
def database_dsn(admin_dsn: str) -> Iterator[str]:
    """A new, empty database for one test, dropped afterwards."""
    name = f"telepayd_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = psycopg.conninfo.make_conninfo(admin_dsn, dbname=name)
    yield dsn
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def emulator_process() -> Iterator[Emulator]:
    emulator = Emulator()
    yield emulator
    emulator.stop()


@pytest.fixture
def emulator(emulator_process: Emulator) -> Emulator:
    """The Telegram Bot API and NowPayments emulators, with nothing recorded yet."""
    emulator_process.reset()
    return emulator_process


@pytest.fixture
def config_files(tmp_path: Path, database_dsn: str, emulator: Emulator) -> ConfigFiles:
    files = ConfigFiles(tmp_path, database_dsn, api_base=emulator.base_url)
    files.write()
    return files


@pytest.fixture
def start_daemon() -> Iterator:
    """Start daemons with ``start_daemon(config_files)``; each is stopped at the end of the test."""
    started: list[Daemon] = []

    def start(config: ConfigFiles, *, wait: bool = True, env: dict[str, str] | None = None) -> Daemon:
        daemon = Daemon(config, env=env)
        started.append(daemon)
        if wait:
            daemon.wait_ready()
        return daemon

    yield start
    for daemon in started:
        daemon.stop()
