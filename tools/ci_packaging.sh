#!/usr/bin/env bash
# CI for what ships: build the pyz and the .deb, lintian, install, run the installed daemon as the
# telepayd user (READY, reload, stop), check the unit with systemd-analyze, upgrade, remove, purge.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
export DEBIAN_FRONTEND=noninteractive

deb=$(tools/build_deb.sh)
echo "== built $deb"
# Warnings left on purpose: the config is 0640 (it sits beside secrets), no man page (telepayd --help),
# and the bundled libraries' own "#!/usr/bin/env python" lines.
lintian --fail-on error --suppress-tags non-standard-file-perm,no-manual-page,unusual-interpreter "$deb"
echo "== lintian: no errors"

apt-get install -y -qq "./$deb" >/dev/null
/usr/bin/telepayd --version
test "$(stat -c '%U:%G %a' /etc/telepayd)" = "root:telepayd 750"
test "$(stat -c '%U:%G %a' /etc/telepayd/telepayd.toml)" = "root:telepayd 640"
test "$(stat -c '%U:%G %a' /var/lib/telepayd)" = "telepayd:telepayd 750"
test -f /usr/share/doc/telepayd/OPERATIONS.md && test -f /usr/share/doc/telepayd/DESIGN.md  # the guides ship
test -f /usr/share/telepayd/prometheus/telepayd-alerts.yml  # and the alert rules
echo "== installed: user, directories and modes as expected"

unit=/lib/systemd/system/telepayd.service
systemd-analyze verify "$unit"
systemd-analyze security --offline=true --threshold=15 "$unit" | tail -1
echo "== systemd-analyze: unit verified, exposure within 1.5"

PYTHONPATH=. "$PYTHON" -m tools.check_installed
echo "== installed daemon: READY, reload, stop"

apt-get install -y -qq --reinstall "./$deb" >/dev/null
echo "== upgrade (reinstall) clean"
apt-get remove -y -qq telepayd >/dev/null
test ! -e /usr/bin/telepayd && test -e /etc/telepayd/telepayd.toml && test ! -e /usr/lib/telepayd
apt-get purge -y -qq telepayd >/dev/null
test ! -e /etc/telepayd && test ! -e /var/lib/telepayd
echo "== remove keeps the config, purge removes it"
