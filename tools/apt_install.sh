# Sourced by the make targets' scripts: apt_install WHAT PACKAGE... installs Debian packages when run as
# root, else stops with the one line to run.
apt_install() {
    local what=$1
    shift
    if [ "$(id -u)" -ne 0 ]; then
        echo "$what missing: run 'sudo apt-get install $*' first" >&2
        exit 1
    fi
    echo "==> installing $what (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
