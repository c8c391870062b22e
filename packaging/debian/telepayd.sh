#!/bin/sh
# telepayd, as shipped: its tree in /usr/lib/telepayd, run by Debian's Python in isolated mode.
exec /usr/bin/python3 -I /usr/lib/telepayd "$@"
