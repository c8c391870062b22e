#!/usr/bin/env bash
# make deb: build dist/telepayd-<version>.pyz, then dist/telepayd_<version>_all.deb with debhelper.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
version=$("$PYTHON" -c 'import telepayd; print(telepayd.__version__)')
changelog_version=$(sed -n '1s/^telepayd (\([^)]*\)).*/\1/p' packaging/debian/changelog)
if [ "$version" != "$changelog_version" ]; then
    echo "packaging/debian/changelog is at $changelog_version, telepayd at $version: add a changelog entry" >&2
    exit 1
fi
"$PYTHON" zipapp.py >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
src="$work/telepayd-$version"
mkdir -p "$src"
cp -r packaging/debian "$src/debian"
mv "$src/debian/telepayd.sh" "$src/telepayd.sh"
cp packaging/systemd/telepayd.service "$src/debian/telepayd.service"
cp "dist/telepayd-$version.pyz" "$src/telepayd.pyz"
cp packaging/telepayd.toml "$src/telepayd.toml"
cp README.md "$src/README.md"
(cd "$src" && dpkg-buildpackage -us -uc -b >"$work/build.log" 2>&1) || { cat "$work/build.log" >&2; exit 1; }
mv "$work/telepayd_${version}_all.deb" dist/
echo "dist/telepayd_${version}_all.deb"
