#!/usr/bin/env bash
# Makes a headless Chromium available for the report's browser test (tests/test_report.py):
# Debian's chromium package, installed with apt when it is missing and this is root on Debian.
# Idempotent (returns at once when a browser is there). It never fails the caller: without a
# browser it says why, and the browser test is then skipped with that reason.
set -uo pipefail
for browser in chromium chromium-browser google-chrome; do
    command -v "$browser" >/dev/null 2>&1 && exit 0
done
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "unavailable: headless Chromium (not installed, and apt-get as root is not at hand)" >&2
    exit 0
fi
echo "installing Debian's chromium for the report's browser test (about 20 s)" >&2
log="$(mktemp)"
if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends chromium; } >"$log" 2>&1; then
    echo "unavailable: headless Chromium (apt-get failed: $(tail -n 1 "$log"))" >&2
fi
rm -f "$log"
exit 0
