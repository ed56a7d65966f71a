#!/usr/bin/env bash
# apt-install.sh WHO PACKAGE...: install Debian packages quietly, as root or with passwordless sudo.
# The one place the project's install scripts go through apt: a failure prints the last lines of
# apt's log under WHO's name and exits 1.
set -euo pipefail

who="$1"
shift

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "$who: not root and no passwordless sudo; install $* by hand" >&2
        exit 1
    fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "$who: apt-get not found; install $* by hand" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
echo "$who: apt-get install $*"
if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "$@"; } >"$log" 2>&1; then
    echo "$who: apt-get failed:" >&2
    tail -n 20 "$log" >&2
    exit 1
fi
