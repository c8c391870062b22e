"""Build ``dist/telepayd-<version>.pyz``: one file that runs with Debian 12's ``/usr/bin/python3``.

Dependencies are bundled (Debian's own python3-aiohttp, -psycopg-pool and -python-telegram-bot are too
old). Compiled modules cannot be imported from inside a zip, so the archive carries none: aiohttp,
multidict, yarl, frozenlist and propcache run their pure-Python implementations, and psycopg its ctypes
one over the system's libpq (Debian's ``libpq5``). The alternative, extracting the compiled modules to a
cache directory at start, was measured against this (see ``bench/packaged.py`` and the README): it is the
choice when the last bit of throughput matters more than a read-only, self-contained file.

    python3 zipapp.py            # dist/telepayd-<version>.pyz
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
# The runtime dependencies, pinned to what this build was tested with (the development install's).
PACKAGES = ["aiohttp", "python-telegram-bot", "psycopg", "psycopg-pool", "sdnotify"]
MAIN = '''"""telepayd as a zipapp: pure-Python dependencies only (nothing compiled can load from a zip)."""
import os
import sys

for name in ("AIOHTTP", "MULTIDICT", "YARL", "FROZENLIST", "PROPCACHE"):
    os.environ.setdefault(f"{name}_NO_EXTENSIONS", "1")
os.environ.setdefault("PSYCOPG_IMPL", "python")

from telepayd.cli import main

sys.exit(main())
'''


def _stdlib_zipapp():
    """The standard library's zipapp module, which this file's required name shadows."""
    saved = sys.path[:]
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != str(ROOT)]
    shadow = sys.modules.pop("zipapp", None)
    try:
        return importlib.import_module("zipapp")
    finally:
        sys.path[:] = saved
        if shadow is not None:
            sys.modules["zipapp"] = shadow


def version() -> str:
    namespace: dict[str, str] = {}
    exec((ROOT / "telepayd" / "__init__.py").read_text(), namespace)
    return namespace["__version__"]


def build(output_dir: Path) -> Path:
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in PACKAGES]
    with tempfile.TemporaryDirectory(prefix="telepayd-pyz-") as staging_text:
        staging = Path(staging_text)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--quiet", "--disable-pip-version-check", "--no-compile",
             "--target", str(staging), *pins],
            check=True,
        )
        for pattern in ("*.so", "*.pyx", "*.pxd", "*.c", "*.h"):
            for path in staging.rglob(pattern):
                path.unlink()
        for path in list(staging.glob("*.dist-info")) + list(staging.glob("bin")) + list(staging.rglob("__pycache__")):
            shutil.rmtree(path, ignore_errors=True)
        shutil.copytree(ROOT / "telepayd", staging / "telepayd", ignore=shutil.ignore_patterns("__pycache__"))
        (staging / "__main__.py").write_text(MAIN)
        output_dir.mkdir(parents=True, exist_ok=True)
        target = output_dir / f"telepayd-{version()}.pyz"
        _stdlib_zipapp().create_archive(staging, target, interpreter="/usr/bin/python3", compressed=True)
    return target


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=ROOT / "dist")
    print(build(parser.parse_args().output_dir))
