#!/usr/bin/env bash
# The long fuzz runs (README, "Fuzzing"): every target of crates/sekisho-fuzz, coverage-guided with
# cargo-fuzz (libFuzzer) on the nightly toolchain, for SECONDS each (default 1800), one after
# another, growing the kept corpora in fuzz/corpus/<target>/. Findings land in fuzz/artifacts/.
# The test command replays the corpora (crates/sekisho-fuzz/tests/corpora.rs).
#   scripts/fuzz.sh [SECONDS] [TARGET…]
# FUZZ_BUILD=-O builds without debug assertions (the default keeps them, and overflow checks, on).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-1800}"
shift || true
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
type -P cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^sekisho-fuzz-targets$')
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  echo "== $t for ${seconds}s"
  # -max_len: the largest message a parser takes whole (a 64 KiB frame or record, and more).
  cargo +nightly fuzz run ${FUZZ_BUILD:-} "$t" "fuzz/corpus/$t" -- -max_total_time="$seconds" -max_len=70000 -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 2>&1 | tee "fuzz/$t.log" | grep -E '^(#[0-9]+.*DONE|stat::|==[0-9]+==|SUMMARY|artifact)' || true
  # Keep the corpus small: only inputs that add coverage.
  cargo +nightly fuzz cmin ${FUZZ_BUILD:-} "$t" "fuzz/corpus/$t" >/dev/null 2>&1 || true
done
