#!/usr/bin/env bash
# Install Debian's headless-capable Chromium for the browser tests.
# Idempotent and quiet: does nothing when a Chromium-family browser is already on PATH (the names
# the tests look for: chromium, chromium-browser, google-chrome, chrome).
set -euo pipefail

for browser in chromium chromium-browser google-chrome chrome; do
    command -v "$browser" >/dev/null 2>&1 && exit 0
done
bash "$(dirname "$0")/apt-install.sh" install-chromium chromium fonts-dejavu-core
if [ ! -x /usr/bin/chromium ]; then
    echo "install-chromium: apt-get finished but /usr/bin/chromium is missing" >&2
    exit 1
fi
