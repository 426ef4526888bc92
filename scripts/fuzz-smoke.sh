#!/usr/bin/env bash
# Run the cargo-fuzz target `metadata_parse` for a bounded time (default 60 s) on the stable
# toolchain. cargo-fuzz wants nightly (it passes -Zsanitizer=address); RUSTC_BOOTSTRAP=1 lets stable
# accept those flags. Needs `cargo install cargo-fuzz`. Exit status is non-zero on a crash.
set -euo pipefail
SECONDS_TO_RUN="${1:-60}"
cd "$(dirname "$0")/.."
if ! cargo fuzz --help >/dev/null 2>&1; then
  echo "cargo-fuzz is missing; installing it from crates.io" >&2
  cargo install --locked cargo-fuzz
fi
mkdir -p fuzz/corpus/metadata_parse
# Seed the corpus with the real Notary fixtures.
for f in tests/data/notary-fixtures/*/*.json tests/data/notary-fixtures/*/targets/*.json; do
  cp -n "$f" "fuzz/corpus/metadata_parse/$(echo "$f" | tr '/' '_')" 2>/dev/null || true
done
export RUSTC_BOOTSTRAP=1
exec cargo fuzz run metadata_parse fuzz/corpus/metadata_parse -- -max_total_time="$SECONDS_TO_RUN" -max_len=65536 -rss_limit_mb=2048
