#!/usr/bin/env bash
# Install Debian's headless-capable Chromium for the report render test.
# Idempotent and quiet: does nothing when a Chromium-family browser is already on PATH (the names
# the test looks for: chromium, chromium-browser, google-chrome, chrome).
# Needs root (or passwordless sudo) and the Debian package mirrors.
set -euo pipefail

for browser in chromium chromium-browser google-chrome chrome; do
    if command -v "$browser" >/dev/null 2>&1; then
        exit 0
    fi
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "install-chromium: not root and no passwordless sudo; cannot install chromium" >&2
        exit 1
    fi
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-chromium: apt-get not found; install chromium by hand" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! { $SUDO apt-get update -qq && \
       $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core; } >"$log" 2>&1; then
    echo "install-chromium: apt-get failed:" >&2
    tail -n 20 "$log" >&2
    exit 1
fi

if ! command -v chromium >/dev/null 2>&1; then
    echo "install-chromium: apt-get finished but chromium is not on PATH" >&2
    exit 1
fi
