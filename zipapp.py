"""Build ``dist/telepayd-<version>.pyz``: one file that runs with Debian 12's ``/usr/bin/python3``.

Dependencies are bundled (Debian's own python3-aiohttp, -psycopg-pool and -python-telegram-bot are too
old), with aiohttp's, multidict's, yarl's, frozenlist's and propcache's compiled modules. Those cannot be
imported from inside a zip, so at start the pyz unpacks itself once into a versioned cache directory
(``$XDG_CACHE_HOME/telepayd/<digest>``, else ``~/.cache/telepayd/<digest>``) and runs from there. Where
no cache can be written it runs from the zip on the libraries' pure-Python fallbacks (and says so).
psycopg uses its ctypes implementation over the system's libpq (Debian's ``libpq5``), so no copy of libpq
or OpenSSL travels inside. Measured (``bench/packaged.py``): unpacked, ~1.1x the development install's
ingest throughput and ~0.35 s to READY; pure-Python from the zip, ~0.6x and ~1.2 s.

The .deb ships the same tree already unpacked in ``/usr/lib/telepayd`` (``--stage-dir``): read-only, no
cache, nothing to unpack at start.

    python3 zipapp.py                              # dist/telepayd-<version>.pyz
    python3 zipapp.py --stage-dir build/telepayd   # the unpacked tree (what the .deb installs)
"""

from __future__ import annotations

import argparse
import hashlib
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

TREE_MAIN = '''"""telepayd from an unpacked tree (``python3 -I /usr/lib/telepayd``)."""
import os
import sys

os.environ.setdefault("PSYCOPG_IMPL", "python")  # over the system libpq (libpq5)

from telepayd.cli import main

sys.exit(main())
'''

ZIP_MAIN = '''"""telepayd as a zipapp: unpack once to a versioned cache, run from there (compiled modules work there)."""
import os
import shutil
import sys
import tempfile
import zipfile

DIGEST = "{digest}"
archive = os.path.dirname(os.path.abspath(__file__))
cache_root = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "telepayd")
target = os.path.join(cache_root, DIGEST)
try:
    if os.environ.get("TELEPAYD_NO_UNPACK"):  # run from the zip (benchmarks, read-only machines)
        raise OSError(0, "TELEPAYD_NO_UNPACK is set")
    if not os.path.isdir(target):
        os.makedirs(cache_root, mode=0o700, exist_ok=True)
        staging = tempfile.mkdtemp(dir=cache_root)
        zipfile.ZipFile(archive).extractall(staging)
        try:
            os.rename(staging, target)
        except OSError:  # another process unpacked it first
            shutil.rmtree(staging, ignore_errors=True)
    sys.path[:] = [target] + [p for p in sys.path if os.path.abspath(p) != archive]
except OSError as exc:
    print(f"telepayd: cannot unpack to {{cache_root}} ({{exc.strerror}}); running the slower pure-Python way",
          file=sys.stderr)
    for name in ("AIOHTTP", "MULTIDICT", "YARL", "FROZENLIST", "PROPCACHE"):
        os.environ.setdefault(f"{{name}}_NO_EXTENSIONS", "1")
os.environ.setdefault("PSYCOPG_IMPL", "python")  # over the system libpq (libpq5)

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


def stage(target: Path) -> Path:
    """Install telepayd and its dependencies into ``target``, precompiled, with a ``__main__.py``."""
    if target.exists():
        shutil.rmtree(target)
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in PACKAGES]
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--quiet", "--disable-pip-version-check", "--no-compile",
         "--target", str(target), *pins],
        check=True,
    )
    for pattern in ("*.pyx", "*.pxd", "*.c", "*.h", "*.pyi"):
        for path in target.rglob(pattern):
            path.unlink()
    for path in target.rglob("_testcapi*.so"):  # multidict's test helper
        path.unlink()
    junk = [*target.glob("*.dist-info"), *target.glob("bin"), *target.rglob("__pycache__"), *target.glob("*/tests")]
    for path in junk:
        shutil.rmtree(path, ignore_errors=True)
    shutil.copytree(ROOT / "telepayd", target / "telepayd", ignore=shutil.ignore_patterns("__pycache__"))
    (target / "__main__.py").write_text(TREE_MAIN)
    # Bytecode for the interpreter that will run it (Debian's, when present): a faster start.
    runtime = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    subprocess.run([runtime, "-m", "compileall", "-q", "-j", "0", str(target)], check=True)
    return target


def build(output_dir: Path) -> Path:
    with tempfile.TemporaryDirectory(prefix="telepayd-pyz-") as staging_text:
        staging = stage(Path(staging_text) / "tree")
        digest = hashlib.sha256()
        for path in sorted(staging.rglob("*")):
            if path.is_file() and path.name != "__main__.py":
                digest.update(str(path.relative_to(staging)).encode() + b"\0" + path.read_bytes())
        (staging / "__main__.py").write_text(ZIP_MAIN.replace("{digest}", digest.hexdigest()[:16]).replace("{{", "{").replace("}}", "}"))
        output_dir.mkdir(parents=True, exist_ok=True)
        target = output_dir / f"telepayd-{version()}.pyz"
        _stdlib_zipapp().create_archive(staging, target, interpreter="/usr/bin/python3", compressed=True)
    return target


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=ROOT / "dist")
    parser.add_argument("--stage-dir", type=Path, help="write the unpacked tree here instead of a pyz")
    arguments = parser.parse_args()
    print(stage(arguments.stage_dir) if arguments.stage_dir else build(arguments.output_dir))
