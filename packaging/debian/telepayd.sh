#!/bin/sh
# telepayd, as shipped: the zipapp, run by Debian's Python in isolated mode.
exec /usr/bin/python3 -I /usr/lib/telepayd/telepayd.pyz "$@"
