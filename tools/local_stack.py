"""Everything telepayd talks to, on this machine: a throwaway PostgreSQL and the Bot API / NowPayments
emulators, in a scratch directory, all removed on exit (benchmarks and scripts)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.harness import Emulator
from tools.local_postgres import LocalPostgres


@dataclass(frozen=True)
class LocalStack:
    workdir: Path
    cluster: LocalPostgres
    emulator: Emulator


@contextmanager
def local_stack(prefix: str) -> Iterator[LocalStack]:
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    cluster = LocalPostgres().start()
    try:
        emulator = Emulator()
        try:
            yield LocalStack(workdir, cluster, emulator)
        finally:
            emulator.stop()
    finally:
        cluster.remove()
        shutil.rmtree(workdir, ignore_errors=True)
