"""Build ``dist/telepayd-<version>.pyz``: one file that runs with Debian 12's ``/usr/bin/python3``.

Dependencies are bundled (Debian's own python3-aiohttp, -psycopg-pool and -python-telegram-bot are too
old), with aiohttp's, multidict's, yarl's, frozenlist's and propcache's compiled modules. Those cannot be
imported from inside a zip, so at start the pyz unpacks itself once into a versioned cache directory
(``$XDG_CACHE_HOME/telepayd/<digest>``, else ``~/.cache/telepayd/<digest>``) and runs from there. It
checks that tree at every start before trusting it (owners, modes, no symlinks, and every file's size
and SHA-256 against the manifest inside the pyz: about 40 ms for its ~1,250 files and 27 MB); a tree that
fails is unpacked afresh. Where no cache can be written, or the cache directory itself cannot be trusted,
it runs from the zip on the libraries' pure-Python fallbacks (and says so).
psycopg uses its ctypes implementation over the system's libpq (Debian's ``libpq5``), so no copy of libpq
or OpenSSL travels inside. Measured (``bench/packaged.py``): unpacked, 1.0-1.2x the development install's
ingest throughput and ~0.7 s to READY; pure-Python from the zip (no uvloop either), ~0.45x and ~2.8 s.

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
PACKAGES = ["aiohttp", "python-telegram-bot", "psycopg", "psycopg-pool", "sdnotify", "prometheus-client", "uvloop"]

TREE_MAIN = '''"""telepayd from an unpacked tree (``python3 -I /usr/lib/telepayd``)."""
import os
import sys

os.environ.setdefault("PSYCOPG_IMPL", "python")  # over the system libpq (libpq5)

from telepayd.cli import main

sys.exit(main())
'''

# In the pyz, not unpacked: "<sha256> <size> <path>" for every file the cache holds (ZIP_MAIN checks them).
MANIFEST = "telepayd.manifest"

ZIP_MAIN = '''"""telepayd as a zipapp: unpack once to a versioned cache, run from there (compiled modules work there).

The cache is trusted only as far as it is checked, at every start: the cache directory and those above it
belong to this user (or root, above) and nobody else may write them; the unpacked tree holds exactly the
archive's files, none a symlink, each this user's and writable by nobody else, with the size and SHA-256
the archive's manifest gives. A tree that fails is unpacked afresh and swapped in; where the cache
directory itself cannot be trusted, telepayd runs from the zip.
"""
import hashlib
import os
import shutil
import stat
import sys
import tempfile
import zipfile

DIGEST = "@DIGEST@"
MANIFEST = "@MANIFEST@"
archive = os.path.dirname(os.path.abspath(__file__))


class Untrusted(OSError):
    """The cache cannot be used as it is; the text says why."""


def check_dir(path, *, above=False):
    """A real directory (no symlink) of this user that nobody else may write; ``above`` the cache, it may
    also be root's, and writable by all when sticky (like /tmp)."""
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise Untrusted(f"{path} is not a directory")
    if info.st_uid != os.getuid() and not (above and info.st_uid == 0):
        raise Untrusted(f"{path} belongs to uid {info.st_uid}")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not (above and info.st_mode & stat.S_ISVTX):
        raise Untrusted(f"{path} is writable by others ({stat.filemode(info.st_mode)})")


def check_file(path, size, sha256):
    with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK), "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
            raise Untrusted(f"{path} is not a file of this user that only it may write")
        if info.st_size != size or hashlib.sha256(file.read()).hexdigest() != sha256:
            raise Untrusted(f"{path} differs from the archive")


def check_tree(top, manifest):
    """Every entry under ``top`` (symlinks not followed) against the manifest, and nothing else there."""
    expected_dirs = {""}
    for path in manifest:
        while path:
            path = os.path.dirname(path)
            expected_dirs.add(path)
    seen = 0
    for directory, dirs, files in os.walk(top):  # does not follow symlinks to directories
        check_dir(directory)
        relative = os.path.relpath(directory, top) if directory != top else ""
        for name in dirs:  # a symlink to a directory is listed here, but not walked into
            if os.path.join(relative, name) not in expected_dirs or os.path.islink(os.path.join(directory, name)):
                raise Untrusted(f"{os.path.join(directory, name)} is not a directory of the archive")
        for name in files:  # other symlinks are listed here, and fail O_NOFOLLOW
            entry = manifest.get(os.path.join(relative, name))
            if entry is None:
                raise Untrusted(f"{os.path.join(directory, name)} is not in the archive")
            check_file(os.path.join(directory, name), *entry)
            seen += 1
    if seen != len(manifest):
        raise Untrusted(f"{top} lacks files of the archive")


def checked_cache():
    """The path of a checked tree of this archive in the cache, unpacked (afresh) when needed."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    os.makedirs(os.path.join(base, "telepayd"), mode=0o700, exist_ok=True)
    cache_root = os.path.join(os.path.realpath(base), "telepayd")
    above = os.path.dirname(cache_root)
    while True:
        check_dir(above, above=True)
        if above == os.path.dirname(above):
            break
        above = os.path.dirname(above)
    check_dir(cache_root)
    target = os.path.join(cache_root, DIGEST)
    with zipfile.ZipFile(archive) as pyz:
        manifest = {}
        for line in pyz.read(MANIFEST).decode().splitlines():
            sha256, size, path = line.split(" ", 2)
            manifest[path] = (int(size), sha256)
        if os.path.lexists(target):  # else: not unpacked yet
            try:
                check_tree(target, manifest)
                return target
            except OSError as exc:
                print(f"telepayd: {exc}; unpacking {target} afresh", file=sys.stderr)
                os.rename(target, f"{target}.untrusted-{os.urandom(4).hex()}")  # works whoever owns it
        staging = tempfile.mkdtemp(dir=cache_root)
        pyz.extractall(staging, members=list(manifest))
    try:
        os.rename(staging, target)
    except OSError:  # another telepayd unpacked it meanwhile: theirs is checked below
        shutil.rmtree(staging, ignore_errors=True)
    for name in os.listdir(cache_root):
        if name.startswith(f"{DIGEST}.untrusted-"):
            shutil.rmtree(os.path.join(cache_root, name), ignore_errors=True)
    check_tree(target, manifest)
    return target


try:
    if os.environ.get("TELEPAYD_NO_UNPACK"):  # run from the zip (benchmarks, read-only machines)
        raise OSError(0, "TELEPAYD_NO_UNPACK is set")
    umask = os.umask(0o077)  # the cache directories and the tree are for this user alone
    try:
        target = checked_cache()
    finally:
        os.umask(umask)
    sys.dont_write_bytecode = True  # the tree stays the archive's (its bytecode comes with it)
    sys.path[:] = [target] + [p for p in sys.path if os.path.abspath(p) != archive]
except OSError as exc:
    print(f"telepayd: cannot run from the cache ({exc.strerror or exc}); running the slower pure-Python way",
          file=sys.stderr)
    for name in ("AIOHTTP", "MULTIDICT", "YARL", "FROZENLIST", "PROPCACHE"):
        os.environ.setdefault(f"{name}_NO_EXTENSIONS", "1")
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
    shutil.copytree(ROOT / "telepayd", target / "telepayd", ignore=shutil.ignore_patterns("__pycache__", "*.po", "*.pot"))
    (target / "__main__.py").write_text(TREE_MAIN)
    # Bytecode for the interpreter that will run it (Debian's, when present): a faster start. Unchecked
    # hash-based: unpacking does not keep file times, so timestamped bytecode would look stale and be
    # rewritten, and the pyz's cache must stay exactly the archive's (the .deb drops it and compiles its own).
    runtime = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    subprocess.run([runtime, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(target)],
                   check=True)
    return target


def build(output_dir: Path) -> Path:
    with tempfile.TemporaryDirectory(prefix="telepayd-pyz-") as staging_text:
        staging = stage(Path(staging_text) / "tree")
        # The pyz runs its own __main__ from the zip: the tree's (and its bytecode) stay out of the cache.
        (staging / "__main__.py").unlink()
        for path in (staging / "__pycache__").glob("__main__.*"):
            path.unlink()
        manifest = "".join(
            f"{hashlib.sha256(path.read_bytes()).hexdigest()} {path.stat().st_size} {path.relative_to(staging)}\n"
            for path in sorted(staging.rglob("*")) if path.is_file()
        )
        digest = hashlib.sha256(manifest.encode()).hexdigest()[:16]
        (staging / MANIFEST).write_text(manifest)
        (staging / "__main__.py").write_text(ZIP_MAIN.replace("@DIGEST@", digest).replace("@MANIFEST@", MANIFEST))
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
