#!/usr/bin/env bash
# Peak RSS of trustgate while 32 clients pull one 1 GiB blob through it, cold (one upstream fill
# streamed to all 32) and warm (served from the disk store).
#
# Builds the release binary, starts a local docker-registry (distribution) holding one 1 GiB random
# blob (uploaded with the blob upload API), starts trustgate in front of it (no notary: trust off),
# runs 32 concurrent `curl -s -o /dev/null` GETs of the blob, and reports trustgate's VmHWM from
# /proc/<pid>/status (reset between phases with `echo 5 > /proc/<pid>/clear_refs`) and the highest
# VmRSS sampled every 50 ms. Everything listens on 127.0.0.1; every process is stopped by its PID;
# the temp folder is removed on exit.
#
# Usage: scripts/bench-rss.sh [SIZE_MIB] [CLIENTS]     (defaults 1024 and 32)
# Needs: cargo, docker-registry, curl, sha256sum, python3 (free ports). Target: peak RSS < 64 MiB.
set -euo pipefail

SIZE_MIB=${1:-1024}
CLIENTS=${2:-32}
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}

for tool in cargo docker-registry curl sha256sum python3; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done

cargo build --release --quiet --bin trustgate
BIN=$CARGO_TARGET_DIR/release/trustgate

WORK=$(mktemp -d /tmp/tg-bench-rss-XXXXXX)
REG_PID=""
TG_PID=""
SAMPLER_PID=""
cleanup() {
    for pid in $SAMPLER_PID $TG_PID $REG_PID; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_ready() {
    for _ in $(seq 1 200); do
        curl -s -o /dev/null -w '%{http_code}' "$1" 2>/dev/null | grep -q 200 && return 0
        sleep 0.1
    done
    echo "not ready: $1" >&2
    exit 1
}

# --- upstream: docker-registry with one big blob --------------------------------------------------
REG_PORT=$(free_port)
mkdir -p "$WORK/registry/storage"
cat >"$WORK/registry/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/registry/storage
http:
  addr: 127.0.0.1:$REG_PORT
  secret: trustgate-bench-secret
EOF
docker-registry serve "$WORK/registry/config.yml" >"$WORK/registry/log" 2>&1 &
REG_PID=$!
wait_ready "http://127.0.0.1:$REG_PORT/v2/"

echo "writing a ${SIZE_MIB} MiB random blob" >&2
head -c "$((SIZE_MIB << 20))" /dev/urandom >"$WORK/blob"
DIGEST="sha256:$(sha256sum "$WORK/blob" | cut -d' ' -f1)"
LOCATION=$(curl -s -D - -o /dev/null -X POST "http://127.0.0.1:$REG_PORT/v2/bench/big/blobs/uploads/" |
    tr -d '\r' | awk 'tolower($1)=="location:" {print $2}')
case "$LOCATION" in http*) ;; *) LOCATION="http://127.0.0.1:$REG_PORT$LOCATION" ;; esac
SEP='?'
case "$LOCATION" in *\?*) SEP='&' ;; esac
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/octet-stream' \
    -T "$WORK/blob" "$LOCATION${SEP}digest=$DIGEST")
[ "$code" = 201 ] || { echo "blob upload failed: $code" >&2; exit 1; }
rm -f "$WORK/blob"

# --- trustgate ------------------------------------------------------------------------------------
TG_PORT=$(free_port)
mkdir -p "$WORK/tg/data"
cat >"$WORK/tg/trustgate.toml" <<EOF
[server]
listen = "127.0.0.1:$TG_PORT"
[storage]
path = "$WORK/tg/data"
min_free = "0"
[admin]
listen = "127.0.0.1:$(free_port)"
[[upstream]]
name = "127.0.0.1:$REG_PORT"
url = "http://127.0.0.1:$REG_PORT"
default = true
EOF
RUST_LOG=warn NO_COLOR=1 "$BIN" serve --config "$WORK/tg/trustgate.toml" >"$WORK/tg/log" 2>&1 &
TG_PID=$!
wait_ready "http://127.0.0.1:$TG_PORT/v2/"
URL="http://127.0.0.1:$TG_PORT/v2/bench/big/blobs/$DIGEST"

kib() { awk -v k="$1" '/^'"$1"':/ {print $2}' "/proc/$TG_PID/status"; }

phase() { # name
    echo 5 >"/proc/$TG_PID/clear_refs" # reset VmHWM to the current RSS
    : >"$WORK/rss-samples"
    (while kill -0 "$TG_PID" 2>/dev/null; do kib VmRSS >>"$WORK/rss-samples"; sleep 0.05; done) &
    SAMPLER_PID=$!
    local start end pids=() failed=0
    start=$(date +%s.%N)
    for _ in $(seq 1 "$CLIENTS"); do
        curl -s -f -o /dev/null "$URL" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
    end=$(date +%s.%N)
    kill "$SAMPLER_PID" 2>/dev/null || true
    wait "$SAMPLER_PID" 2>/dev/null || true
    SAMPLER_PID=""
    [ "$failed" = 0 ] || { echo "$1: $failed curl(s) failed" >&2; tail -20 "$WORK/tg/log" >&2; exit 1; }
    local hwm max
    hwm=$(kib VmHWM)
    max=$(sort -n "$WORK/rss-samples" | tail -1)
    printf '%-5s %2d clients x %5d MiB: %6.1f s, VmHWM %6.1f MiB, max sampled VmRSS %6.1f MiB\n' \
        "$1" "$CLIENTS" "$SIZE_MIB" "$(echo "$end - $start" | bc)" \
        "$(echo "$hwm / 1024" | bc -l)" "$(echo "${max:-0} / 1024" | bc -l)"
}

echo "idle: VmRSS $(kib VmRSS) KiB" >&2
phase cold
phase warm
echo "target: peak RSS under 64 MiB"
