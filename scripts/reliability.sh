#!/usr/bin/env bash
# The reliability suite (issue 15): load, request floods, faults, store trouble, hostile input
# and trust attacks, against the real binary and the real upstream pieces on loopback.
#
#   scripts/reliability.sh          short mode (what CI runs through `cargo test` anyway)
#   scripts/reliability.sh --long   long mode (TRUSTGATE_RELIABILITY=long), then every cargo-fuzz
#                                   target (RELIABILITY_FUZZ_SECONDS, 1200 in all), writes
#                                   RELIABILITY.md
#   scripts/reliability.sh --write  short mode, but write RELIABILITY.md too (labelled as short)
#   scripts/reliability.sh --debug  debug profile instead of release (quicker to build on a busy
#                                   machine; the load figures then mean little, and say so)
#
# Runs every tests/reliability_*.rs binary in release mode (so the load figures mean something),
# one test at a time, and collects the `reliability-case` lines the passed cases print
# (tests/support/reliability.rs). The cases expected are read from the sources: every
# `report("group", "case", ...)` call. A case expected but absent is shown as FAILED.
# Exits non-zero on any failure. Extra arguments go to `cargo test` (e.g. a test name filter).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

MODE=short
WRITE=0
PROFILE=release
ARGS=()
for a in "$@"; do
    case "$a" in
        --long) MODE=long; WRITE=1 ;;
        --write) WRITE=1 ;;
        --debug) PROFILE=debug ;;
        *) ARGS+=("$a") ;;
    esac
done

OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
T0=$(date +%s)

export TRUSTGATE_RELIABILITY=$MODE
shopt -s nullglob
TESTS=()
for f in tests/reliability_*.rs; do
    n=$(basename "$f" .rs)
    TESTS+=(--test "$n")
done
if [ ${#TESTS[@]} -eq 0 ]; then
    echo "no tests/reliability_*.rs found" >&2
    exit 1
fi

echo "reliability suite, $MODE mode: ${TESTS[*]}" >&2
PROFILE_FLAG=()
[ "$PROFILE" = release ] && PROFILE_FLAG=(--release)
cargo test "${PROFILE_FLAG[@]}" --locked --no-fail-fast "${TESTS[@]}" -- --nocapture --test-threads=1 "${ARGS[@]}" \
    2>&1 | tee "$OUT/log"
STATUS=${PIPESTATUS[0]}

# Long mode: the cargo-fuzz targets run longer than CI's smoke (RELIABILITY_FUZZ_SECONDS in all,
# shared by the targets; 1200 = 5 minutes a target with the four of today). Each target is a
# case of the "fuzz" group: a crash leaves the input under fuzz/artifacts/ and shows as FAILED.
if [ "$MODE" = long ]; then
    FUZZ_TOTAL=${RELIABILITY_FUZZ_SECONDS:-1200}
    mapfile -t FUZZ_TARGETS < <(ls fuzz/fuzz_targets/ | sed -n 's/\.rs$//p')
    FUZZ_EACH=$((FUZZ_TOTAL / ${#FUZZ_TARGETS[@]}))
    for t in "${FUZZ_TARGETS[@]}"; do
        printf 'fuzz\t%s\n' "$t" >>"$OUT/fuzz-expected"
        if bash scripts/fuzz-smoke.sh "$FUZZ_EACH" "$t" >"$OUT/fuzz-$t.log" 2>&1; then
            runs=$(grep -a -o 'Done [0-9]* runs in [0-9]* second(s)' "$OUT/fuzz-$t.log" | tail -n1)
            cov=$(grep -a -o 'cov: [0-9]*' "$OUT/fuzz-$t.log" | tail -n1)
            printf 'reliability-case\tfuzz\t%s\tlibFuzzer (ASan), %s s: %s, no crash, no leak; %s edges\n' \
                "$t" "$FUZZ_EACH" "${runs:-?}" "${cov#cov: }" | tee -a "$OUT/log"
        else
            echo "fuzz target $t FAILED (see fuzz/artifacts/$t/):" >&2
            tail -n 30 "$OUT/fuzz-$t.log" >&2
            STATUS=1
        fi
    done
fi
RUNTIME=$(($(date +%s) - T0))

# Passed cases: group<TAB>case<TAB>figures (the last line of a case wins).
# `test name ... ` from cargo may come first on the line of a case that prints nothing before.
grep -a -o "reliability-case	.*" "$OUT/log" | cut -f2- >"$OUT/passed" || true
# Expected cases: every literal report("group", "case", ...) in the reliability sources.
perl -0777 -ne 'while (/\breport\(\s*"([^"]+)",\s*"([^"]+)"/g) { print "$1\t$2\n" }' \
    tests/reliability_*.rs >"$OUT/expected"
[ -f "$OUT/fuzz-expected" ] && cat "$OUT/fuzz-expected" >>"$OUT/expected"
sort -u -o "$OUT/expected" "$OUT/expected"
# Test functions that failed, as cargo names them.
grep -a -E '^test .* \.\.\. FAILED$' "$OUT/log" | sed -E 's/^test (.*) \.\.\. FAILED$/\1/' >"$OUT/failed" || true

TABLE="$OUT/table"
missing=0
{
    echo "| group | case | result | figures |"
    echo "|---|---|---|---|"
    cut -f1,2 "$OUT/passed" | sort -u >"$OUT/passed-keys"
    sort -u "$OUT/expected" "$OUT/passed-keys" | while IFS=$'\t' read -r group case; do
        line=$(awk -F'\t' -v g="$group" -v c="$case" '$1 == g && $2 == c' "$OUT/passed" | tail -n1)
        if [ -n "$line" ]; then
            figures=$(printf '%s' "$line" | cut -f3- | sed 's/|/\\|/g')
            echo "| $group | $case | passed | $figures |"
        else
            echo "| $group | $case | **FAILED** | no result line: the case failed or did not run |"
        fi
    done
} >"$TABLE"
missing=$(grep -c '\*\*FAILED\*\*' "$TABLE" || true)

echo >&2
cat "$TABLE" >&2
if [ -s "$OUT/failed" ]; then
    echo "failed tests:" >&2
    sed 's/^/  /' "$OUT/failed" >&2
fi

if [ "$WRITE" = 1 ]; then
    COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then COMMIT="$COMMIT (dirty)"; fi
    CPU=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
    MEM=$(awk '/^MemTotal:/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
    LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
    VERSIONS="docker-registry $(dpkg-query -W -f='${Version}' docker-registry 2>/dev/null || echo ?), notary $(dpkg-query -W -f='${Version}' notary 2>/dev/null || echo ?), skopeo $(dpkg-query -W -f='${Version}' skopeo 2>/dev/null || echo ?), wrk $(dpkg-query -W -f='${Version}' wrk 2>/dev/null || echo ?), faketime $(dpkg-query -W -f='${Version}' faketime 2>/dev/null || echo ?), postgresql $(dpkg-query -W -f='${Version}' postgresql 2>/dev/null || echo ?)"
    # What the suite does not show (yet); keep in step with the cases.
    NOTES=$(cat <<'NOTCOVERED'
## Not covered

- The Notary case kills notary-server only: its PostgreSQL database and its notary-signer stay
  up. An outage of either of those reaches trustgate as the same unanswered or failing Notary
  server, but their own restarts are not run here.
- Load over TLS and HTTP/2, and loads with more distinct images than the memory caches hold.
- Memory after a flood comes back most of the way, not all of it. Every 10 s the in-memory
  caches drop what expired and the heap is trimmed (`malloc_trim`), so
  `trustgate_memory_entries` returns to its idle handful and RSS falls from the flood's peak
  (42 MiB after 40,000 names) to about 11 MiB over idle (15 -> 26 MiB). The rest is glibc
  fragmentation: after a flood the heap holds ~13 MiB free in ~3,000 chunks of ~4 KiB between
  small allocations that outlive it, and those pages cannot be handed back. It does not grow:
  a second flood of new names peaks and settles at the same level. Preloading jemalloc or
  mimalloc instead (a manual check, same flood) kept more (29 and 35 MiB).
NOTCOVERED
)
    {
        echo "# RELIABILITY"
        echo
        echo "What trustgate does under load, request floods, faults and hostile input (issue 15),"
        echo "written by \`scripts/reliability.sh --long\` (rerun it to refresh this file; the short"
        echo "mode runs in CI through \`cargo test\`). Each case is a plain \`#[test]\` in"
        echo "\`tests/reliability_*.rs\` against the real binary, docker-registry, notary-server and"
        echo "skopeo on loopback; a case whose assertions failed prints no result line and shows"
        echo "as FAILED. Store, protocol and trust-attack cases come from their own test files when"
        echo "present (tests/reliability_store.rs, _protocol.rs, _trust.rs)."
        echo
        echo "## Run"
        echo
        echo "$MODE mode, $(date -u +%Y-%m-%d\ %H:%M) UTC, commit \`$COMMIT\`, $RUNTIME s including the build."
        echo "\`nproc\` = $(nproc), CPU \`$CPU\`, $MEM RAM, kernel $(uname -r), load average at the end $LOAD; $VERSIONS; trustgate $PROFILE profile."
        if awk -v l="${LOAD%% *}" -v n="$(nproc)" 'BEGIN { exit !(l > n) }'; then
            echo
            echo "The machine was busy during this run (load average above its $(nproc) cores, other builds"
            echo "running): latencies and rates are pessimistic; the functional results are not affected."
        fi
        if [ "$MODE" = short ]; then
            echo
            echo "**This is a short-mode run** (loads of ~10 s, a few thousand flood requests), not"
            echo "the long run the figures are meant to come from; rerun with \`--long\`."
        fi
        echo
        echo "## Cases"
        echo
        cat "$TABLE"
        if [ -n "$NOTES" ]; then
            echo
            echo "$NOTES"
        fi
    } >RELIABILITY.md
    echo "wrote RELIABILITY.md" >&2
fi

if [ "$STATUS" != 0 ] || [ "$missing" != 0 ]; then
    echo "reliability suite: FAILED (cargo status $STATUS, $missing case(s) without a result)" >&2
    exit 1
fi
echo "reliability suite: all cases passed ($RUNTIME s)" >&2
