#!/usr/bin/env bash
# Warm-blob throughput and CPU per GB of one trustgate binary with `[server] sendfile` on and off
# (issue 16): one 256 MiB blob placed in a fresh store, `wrk -c16` on loopback, GB/s (10^9 B/s)
# and CPU seconds (user + sys of the trustgate process, /proc/PID/stat) per GB served.
# Not a peer comparison (benches/peers.sh is); a quick before/after of the zero-copy path.
#
#   benches/sendfile.sh [BINARY] [SECONDS] [ROUNDS]     (default target/release/trustgate 5 3)
set -euo pipefail
BIN=${1:-target/release/trustgate}
SECS=${2:-5}
ROUNDS=${3:-3}
BYTES=$((256 << 20))
HZ=$(getconf CLK_TCK)
WORK=$(mktemp -d)
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

head -c "$BYTES" /dev/urandom >"$WORK/blob"
HEX=$(sha256sum "$WORK/blob" | cut -d' ' -f1)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run_mode() { # MODE (true|false)
    local mode=$1 p a store
    store=$WORK/store-$mode
    mkdir -p "$store/blobs/sha256/${HEX:0:2}"
    ln -f "$WORK/blob" "$store/blobs/sha256/${HEX:0:2}/$HEX" 2>/dev/null \
        || cp "$WORK/blob" "$store/blobs/sha256/${HEX:0:2}/$HEX"
    p=$(port) a=$(port)
    cat >"$WORK/tg-$mode.toml" <<EOF
[server]
listen = "127.0.0.1:$p"
sendfile = $mode
[admin]
listen = "127.0.0.1:$a"
[storage]
path = "$store"
min_free = "0"
[[upstream]]
name = "registry.local"
url = "http://127.0.0.1:9"
default = true
EOF
    "$BIN" serve --config "$WORK/tg-$mode.toml" 2>"$WORK/tg-$mode.log" &
    PID=$!
    local url="http://127.0.0.1:$p/v2/bench/big/blobs/sha256:$HEX"
    for _ in $(seq 50); do curl -fsS -o /dev/null "$url" 2>/dev/null && break; sleep 0.1; done
    curl -fsS "$url" | sha256sum | grep -q "$HEX" || { echo "wrong bytes (sendfile=$mode)"; cat "$WORK/tg-$mode.log"; exit 1; }
    for r in $(seq "$ROUNDS"); do
        local t0 t1 out bytes
        t0=$(sed 's/.*) //' "/proc/$PID/stat" | awk '{print $12 + $13}')
        out=$(wrk -t2 -c16 -d"${SECS}s" --timeout 60s "$url")
        t1=$(sed 's/.*) //' "/proc/$PID/stat" | awk '{print $12 + $13}')
        bytes=$(echo "$out" | awk '/requests in/ {print $5}')
        # wrk prints e.g. "1.23GB read": convert to bytes
        bytes=$(echo "$bytes" | awk '{v=$1; u=substr(v,length(v)-1); n=v+0; m=1; if(u=="KB")m=1024; if(u=="MB")m=1048576; if(u=="GB")m=1073741824; if(u=="TB")m=1099511627776; printf "%.0f", n*m}')
        awk -v m="$mode" -v r="$r" -v b="$bytes" -v s="$SECS" -v c=$((t1 - t0)) -v hz="$HZ" \
            'BEGIN { printf "sendfile=%-5s round %d: %.2f GB/s, %.3f CPU s per GB\n", m, r, b/s/1e9, (c/hz)/(b/1e9) }'
    done
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
}

run_mode false
run_mode true
