#!/usr/bin/env bash
# Time to first byte on a replica that is NOT the lease holder, while the holder fills a big
# blob from a slow upstream (issue 14): streamed from the holder through the fleet peer endpoint
# ([fleet] set) against waiting for the object to appear in the shared bucket (no [fleet]).
#
#   benches/fleet_ttfb.sh [BIN] [RUNS]     (BIN: a trustgate binary, default target/release or debug)
#
# Needs moto_server, curl, python3. Prints one line per run and the medians. Loopback only.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:-}
RUNS=${2:-3}
if [ -z "$BIN" ]; then
    for b in "${CARGO_TARGET_DIR:-$ROOT/target}/release/trustgate" "${CARGO_TARGET_DIR:-$ROOT/target}/debug/trustgate"; do
        [ -x "$b" ] && BIN=$b && break
    done
fi
[ -x "$BIN" ] || { echo "no trustgate binary: cargo build --release" >&2; exit 1; }
command -v moto_server >/dev/null || { echo "moto_server not found (scripts/install-test-deps.sh)" >&2; exit 1; }
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
WORK=$(mktemp -d /tmp/fleet-ttfb.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 300); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "timeout: $1" >&2; exit 1; }

MIB=${MIB:-48}
RATE_MIB=${RATE_MIB:-16}   # the upstream's speed: the fill takes MIB / RATE_MIB seconds
# A registry upstream serving one blob per seed at RATE_MIB MiB/s (its /v2/ needs no token).
UP=127.0.0.1:$(free_port)
cat >"$WORK/upstream.py" <<'PY'
import hashlib, http.server, sys, time
port, mib, rate = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
BASE = bytes(range(256)) * (mib * 4096)  # mib MiB
def make(seed):
    return bytes([seed]) + BASE
blobs = {}  # digest -> seed; bytes are made again per request (memory stays at one blob)
for seed in range(1, int(sys.argv[5]) * 2 + 1):
    blobs["sha256:" + hashlib.sha256(make(seed)).hexdigest()] = seed
with open(sys.argv[4], "w") as f:
    f.write("\n".join(blobs))
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        if self.path == "/v2/":
            self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"{}"); return
        d = self.path.rsplit("/", 1)[-1]
        seed = blobs.get(d)
        if seed is None:
            self.send_response(404); self.send_header("Content-Length", "0"); self.end_headers(); return
        b = make(seed)
        self.send_response(200)
        self.send_header("Content-Length", str(len(b)))
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Docker-Content-Digest", d)
        self.end_headers()
        if self.command == "HEAD":
            return
        step = 256 * 1024
        for i in range(0, len(b), step):
            self.wfile.write(b[i:i + step])
            time.sleep(step / (rate * 1024 * 1024))
    do_HEAD = do_GET
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
python3 "$WORK/upstream.py" "${UP#*:}" "$MIB" "$RATE_MIB" "$WORK/digests" "$RUNS" & PIDS+=($!)
wait_http "http://$UP/v2/"
for _ in $(seq 1 100); do [ -s "$WORK/digests" ] && break; sleep 0.1; done
mapfile -t DIGESTS <"$WORK/digests"

S3=127.0.0.1:$(free_port)
moto_server -H 127.0.0.1 -p "${S3#*:}" >"$WORK/moto.log" 2>&1 & PIDS+=($!)
wait_http "http://$S3/moto-api/"
curl -sf -X PUT "http://$S3/ttfb" >/dev/null
export AWS_ACCESS_KEY_ID=ttfb AWS_SECRET_ACCESS_KEY=ttfb-secret AWS_REGION=us-east-1
printf 'a-fleet-secret-of-some-length\n' >"$WORK/secret"

declare -A URL=()
start_replica() { # NAME PREFIX PEERING(yes/no)
    local name=$1 port admin peer
    port=127.0.0.1:$(free_port); admin=127.0.0.1:$(free_port); peer=127.0.0.1:$(free_port)
    mkdir -p "$WORK/$name/data"
    {
        printf '[server]\nlisten = "%s"\n\n[admin]\nlisten = "%s"\n\n[storage]\npath = "%s"\nmin_free = "0"\n\n' "$port" "$admin" "$WORK/$name/data"
        printf '[storage.shared]\nurl = "s3://ttfb/%s"\nendpoint = "http://%s"\nallow_http = true\n\n' "$2" "$S3"
        [ "$3" = yes ] && printf '[fleet]\nlisten = "%s"\nadvertise = "http://%s"\nsecret_file = "%s"\n\n' "$peer" "$peer" "$WORK/secret"
        printf '[[upstream]]\nname = "%s"\nurl = "http://%s"\ndefault = true\n' "$UP" "$UP"
    } >"$WORK/$name/trustgate.toml"
    RUST_LOG=warn "$BIN" serve --config "$WORK/$name/trustgate.toml" >"$WORK/$name/log" 2>&1 & PIDS+=($!)
    wait_http "http://$port/v2/"
    URL[$name]=http://$port
}
start_replica pa peer yes; start_replica pb peer yes
start_replica wa wait no; start_replica wb wait no

measure() { # HOLDER OTHER DIGEST: the other replica's "ttfb total" in seconds
    local holder=$1 other=$2 d=$3
    curl -sf -o /dev/null "${URL[$holder]}/v2/bench/big/blobs/$d" & local h=$!
    sleep 0.5 # the holder has taken the lease and started its fill
    curl -sf -o "$WORK/body" -w '%{time_starttransfer} %{time_total}\n' "${URL[$other]}/v2/bench/big/blobs/$d"
    wait "$h"
    [ "$(sha256sum <"$WORK/body" | cut -d' ' -f1)" = "${d#sha256:}" ] || { echo "wrong bytes" >&2; exit 1; }
}
echo "blob ${MIB} MiB, upstream ${RATE_MIB} MiB/s (fill ~$((MIB / RATE_MIB)) s), other replica asks 0.5 s after the holder; binary $BIN"
i=0
: >"$WORK/peer.txt"; : >"$WORK/wait.txt"
for r in $(seq 1 "$RUNS"); do
    m=$(measure pa pb "${DIGESTS[$i]}"); i=$((i + 1)); echo "$m" >>"$WORK/peer.txt"; echo "run $r peer-stream: ttfb/total $m"
    m=$(measure wa wb "${DIGESTS[$i]}"); i=$((i + 1)); echo "$m" >>"$WORK/wait.txt"; echo "run $r wait-for-object: ttfb/total $m"
done
med() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for mode in peer wait; do
    echo "median $mode: ttfb $(cut -d' ' -f1 "$WORK/$mode.txt" | med) s, total $(cut -d' ' -f2 "$WORK/$mode.txt" | med) s"
done
