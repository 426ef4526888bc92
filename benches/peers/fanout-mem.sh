#!/usr/bin/env bash
# Peak memory of trustgate during a cold fan-out (issue 16), measured alone: peers.sh workload 4
# without the rest of the bench. One docker-registry upstream on 127.0.0.1 holding one blob of
# random bytes; trustgate (trust = "off": the blob is fetched by digest, no trust data involved)
# with a fresh, empty store each round; CLIENTS curls GET the cold blob at once. Per round: the
# wall time until the last client has every byte, and trustgate's VmHWM (reset through
# /proc/PID/clear_refs just before the GETs). Prints one line per round and the medians.
#
# Usage: benches/peers/fanout-mem.sh BINARY [ROUNDS (3)] [BLOB_MIB (256)] [CLIENTS (16)]
# Needs docker-registry, curl, python3, openssl (scripts/install-test-deps.sh installs them).
set -euo pipefail
BIN=${1:?usage: fanout-mem.sh BINARY [ROUNDS] [BLOB_MIB] [CLIENTS]}
ROUNDS=${2:-3}
BLOB_MIB=${3:-256}
CLIENTS=${4:-16}
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY

WORK=$(mktemp -d "${TMPDIR:-/tmp}/trustgate-fanout.XXXXXX")
UP_PID="" TG_PID=""
cleanup() {
    local pid
    for pid in $TG_PID $UP_PID; do kill "$pid" 2>/dev/null || true; done
    for pid in $TG_PID $UP_PID; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
wait_200() {
    for _ in $(seq 1 200); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 200 ] && return 0
        sleep 0.1
    done
    echo "fanout-mem: $1 does not answer" >&2
    exit 1
}

UP=127.0.0.1:$(free_port)
mkdir -p "$WORK/upstream"
cat >"$WORK/upstream/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $WORK/upstream
http:
  addr: $UP
EOF
docker-registry serve "$WORK/upstream/config.yml" >"$WORK/upstream.log" 2>&1 &
UP_PID=$!
wait_200 "http://$UP/v2/"

head -c $((BLOB_MIB << 20)) /dev/urandom >"$WORK/blob"
DIGEST=sha256:$(sha256sum "$WORK/blob" | cut -d' ' -f1)
loc=$(curl -fsS -D - -o /dev/null -X POST "http://$UP/v2/bench/big/blobs/uploads/" |
    tr -d '\r' | awk 'tolower($1) == "location:" {print $2}')
case "$loc" in http*) ;; *) loc="http://$UP$loc" ;; esac
case "$loc" in *\?*) sep='&' ;; *) sep='?' ;; esac
curl -fsS -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' -T "$WORK/blob" "$loc${sep}digest=$DIGEST"
rm -f "$WORK/blob"

TG=127.0.0.1:$(free_port)
walls="" hwms=""
for round in $(seq 1 "$ROUNDS"); do
    rm -rf "$WORK/tg"
    mkdir -p "$WORK/tg/data"
    cat >"$WORK/tg/trustgate.toml" <<EOF
[server]
listen = "$TG"

[storage]
path = "$WORK/tg/data"
min_free = "0"

[[upstream]]
name = "$UP"
url = "http://$UP"
default = true

[[policy]]
repositories = ["*"]
trust = "off"
EOF
    RUST_LOG=info NO_COLOR=1 "$BIN" serve --config "$WORK/tg/trustgate.toml" >"$WORK/tg.log" 2>&1 &
    TG_PID=$!
    wait_200 "http://$TG/v2/"
    sync
    echo 5 >"/proc/$TG_PID/clear_refs"
    start=$(date +%s.%N)
    pids=()
    for i in $(seq 1 "$CLIENTS"); do
        curl -s -o /dev/null -w '%{http_code} %{size_download}\n' \
            "http://$TG/v2/bench/big/blobs/$DIGEST" >"$WORK/get-$i" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    wall=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {printf "%.3f", b - a}')
    hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$TG_PID/status")
    for i in $(seq 1 "$CLIENTS"); do
        [ "$(cat "$WORK/get-$i")" = "200 $((BLOB_MIB << 20))" ] || {
            echo "fanout-mem: GET $i got '$(cat "$WORK/get-$i")'" >&2
            tail -n 20 "$WORK/tg.log" >&2
            exit 1
        }
    done
    kill "$TG_PID"
    wait "$TG_PID" 2>/dev/null || true
    TG_PID=""
    echo "round $round: wall ${wall} s, VmHWM $hwm KiB"
    walls="$walls $wall" hwms="$hwms $hwm"
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
echo "median: wall $(echo "$walls" | median) s, VmHWM $(echo "$hwms" | median) KiB ($CLIENTS clients, $BLOB_MIB MiB blob, $ROUNDS rounds)"
