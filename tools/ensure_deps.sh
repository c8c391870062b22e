#!/usr/bin/env bash
# Installs what `make run` and `make test` need when it is missing: Debian's PostgreSQL server binaries
# (as root, with apt-get) and telepayd with its test tools (pip, editable). Quick when all is there.
set -euo pipefail
PYTHON=${PYTHON:-python3}

. "$(dirname "$0")/apt_install.sh"

if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 && ! command -v pg_ctl >/dev/null 2>&1; then
    apt_install "PostgreSQL's server binaries are" postgresql
fi
if ! command -v msgfmt >/dev/null 2>&1; then  # the catalog test checks each .po with GNU msgfmt --check
    apt_install "GNU gettext's msgfmt is" gettext
fi

if ! "$PYTHON" - <<'PY' 2>/dev/null
import importlib.metadata as m, sys
import telepayd, aiohttp, telegram, psycopg, psycopg_pool, sdnotify, prometheus_client, uvloop, pytest, pytest_aiohttp, standardwebhooks, hypothesis, babel
sys.exit(0 if m.version("telepayd") == telepayd.__version__ else 1)
PY
then
    echo "==> installing telepayd and its test tools (pip)"
    "$PYTHON" -m pip install -q --disable-pip-version-check -e '.[test]'
fi
