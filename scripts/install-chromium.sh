#!/usr/bin/env bash
# Install Debian's headless-capable Chromium for the browser tests.
# Idempotent and quiet: does nothing when /usr/bin/chromium already exists.
set -euo pipefail

[ -x /usr/bin/chromium ] && exit 0
bash "$(dirname "$0")/apt-install.sh" install-chromium chromium fonts-dejavu-core
if [ ! -x /usr/bin/chromium ]; then
    echo "install-chromium: apt-get finished but /usr/bin/chromium is missing" >&2
    exit 1
fi
