#!/usr/bin/env bash
# make deb: stage telepayd and its dependencies (zipapp.py --stage-dir), then build
# dist/telepayd_<version>_<arch>.deb with debhelper.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
. tools/apt_install.sh  # (the working directory is the repository, see above)
if ! command -v dh >/dev/null 2>&1 || ! command -v dpkg-buildpackage >/dev/null 2>&1; then
    apt_install "Debian's packaging tools (for make deb) are" debhelper dpkg-dev
fi
version=$("$PYTHON" -c 'import telepayd; print(telepayd.__version__)')
changelog_version=$(sed -n '1s/^telepayd (\([^)]*\)).*/\1/p' packaging/debian/changelog)
if [ "$version" != "$changelog_version" ]; then
    echo "packaging/debian/changelog is at $changelog_version, telepayd at $version: add a changelog entry" >&2
    exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
src="$work/telepayd-$version"
mkdir -p "$src"
"$PYTHON" zipapp.py --stage-dir "$src/tree" >/dev/null
find "$src/tree" -name __pycache__ -type d -prune -exec rm -rf {} +
cp -r packaging/debian "$src/debian"
mv "$src/debian/telepayd.sh" "$src/telepayd.sh"
cp packaging/systemd/telepayd.service "$src/debian/telepayd.service"
cp packaging/telepayd.toml "$src/telepayd.toml"
cp packaging/prometheus/telepayd-alerts.yml "$src/telepayd-alerts.yml"
cp README.md "$src/README.md"
cp -r docs "$src/docs"
(cd "$src" && dpkg-buildpackage -us -uc -b >"$work/build.log" 2>&1) || { cat "$work/build.log" >&2; exit 1; }
arch=$(dpkg --print-architecture)
mkdir -p dist
mv "$work/telepayd_${version}_${arch}.deb" dist/
echo "dist/telepayd_${version}_${arch}.deb"
