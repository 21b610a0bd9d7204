#!/usr/bin/env bash
# Regenerates docs/screenshots/*.png: runs the browser tests (headless Chromium, see
# crates/sekisho/tests/e2e/browser_util.rs) with SEKISHO_SCREENSHOTS set, so each of their
# screenshot steps saves <name>.png there. Needs chromium and chromium-driver (scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p docs/screenshots
SEKISHO_SCREENSHOTS="$PWD/docs/screenshots" cargo test -p sekisho --test e2e browser_ -- --test-threads=1
ls -l docs/screenshots
