#!/usr/bin/env bash
# Run every cargo-fuzz target in fuzz/ for a bounded time on the stable toolchain.
#
#   scripts/fuzz-smoke.sh [TOTAL_SECONDS] [TARGET...]
#
# TOTAL_SECONDS (default 60) is shared evenly by the targets run (all of them unless named), so
# the cost is known in advance: CI (.ci/run) passes 56, about 14 s a target. The long mode of the
# reliability suite (issue 15: the run that writes RELIABILITY.md) runs each target on its own
# for RELIABILITY_FUZZ_SECONDS / targets (1200 s in all by default: 5 minutes a target). Exit status is non-zero on the first crash; the crashing input is
# left under fuzz/artifacts/<target>/ by libFuzzer.
#
# cargo-fuzz wants nightly (it passes -Zsanitizer=address); RUSTC_BOOTSTRAP=1 lets stable accept
# those flags. Needs `cargo install cargo-fuzz` (installed from crates.io when missing).
set -euo pipefail
TOTAL="${1:-60}"
shift || true
cd "$(dirname "$0")/.."
if ! cargo fuzz --help >/dev/null 2>&1; then
  echo "cargo-fuzz is missing; installing it from crates.io" >&2
  cargo install --locked cargo-fuzz
fi
if [ "$#" -gt 0 ]; then
  TARGETS=("$@")
else
  mapfile -t TARGETS < <(cargo fuzz list)
fi
PER_TARGET=$(( TOTAL / ${#TARGETS[@]} ))
[ "$PER_TARGET" -ge 1 ] || PER_TARGET=1

# Seed corpora: real inputs of each parser, so the fuzzer starts from valid shapes.
seed() { # seed TARGET NAME CONTENT
  mkdir -p "fuzz/corpus/$1"
  [ -e "fuzz/corpus/$1/$2" ] || printf '%s' "$3" > "fuzz/corpus/$1/$2"
}
mkdir -p fuzz/corpus/metadata_parse
for f in tests/data/notary-fixtures/*/*.json tests/data/notary-fixtures/*/targets/*.json; do
  cp -n "$f" "fuzz/corpus/metadata_parse/$(echo "$f" | tr '/' '_')" 2>/dev/null || true
done
seed auth_parse basic 'Basic dXNlcjpwYXNzd29yZA=='
seed auth_parse htpasswd 'user:$2y$05$abcdefghijklmnopqrstuu5SSRWDe7PJv0Ynt8P0vYKMlkZb9vSlO'
seed route_parse manifest $'\x00/v2/library/alpine/manifests/latest'
seed route_parse blob $'\x80/v2/ghcr.io/org/app/blobs/sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
seed route_parse tags $'\x01/v2/registry.local:5000/a/b/tags/list?n=10&last=v1'
seed route_parse range $'\x07bytes=0-1023'
seed challenge_parse bearer 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"'
seed challenge_parse several $'Basic realm="x", Bearer realm="https://t/token",error="invalid_token"\x00Negotiate'

export RUSTC_BOOTSTRAP=1
for t in "${TARGETS[@]}"; do
  echo "fuzz-smoke: $t for ${PER_TARGET}s" >&2
  cargo fuzz run "$t" "fuzz/corpus/$t" -- -max_total_time="$PER_TARGET" -max_len=65536 -rss_limit_mb=2048
done
