#!/usr/bin/env bash
# Regenerates docs/screenshots/*.png: runs the browser tests (headless Chromium, see
# crates/sekisho/tests/e2e/browser_util.rs) with SEKISHO_SCREENSHOTS set, so each of their
# screenshot steps saves <name>.png there. Needs chromium and chromium-driver (scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# Japanese pages need a Japanese font (the tests themselves do not).
if ! fc-list :lang=ja 2>/dev/null | grep -q .; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq fonts-ipafont-gothic
fi
mkdir -p docs/screenshots
SEKISHO_SCREENSHOTS="$PWD/docs/screenshots" cargo test -p sekisho --test e2e browser_console -- --test-threads=1
ls -l docs/screenshots
