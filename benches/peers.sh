#!/usr/bin/env bash
# trustgate against its peers, side by side, in one run (issue #7).
#
# Starts on 127.0.0.1, on free ports, in one temp folder:
#   - upstream:  the CNCF registry (Debian docker-registry 2.8) holding two images, both signed
#                with the real `notary` CLI against a real notary-server (TLS, throwaway CA):
#                bench/app:v1 (5 layers, 200 MiB) and bench/big:v1 (one 256 MiB blob);
#   - reg proxy: the same registry in proxy mode (`proxy: remoteurl:`), the pull-through cache
#                most sites run today, in front of the upstream;
#   - trustgate: enforcing (`[[policy]] repositories = ["*"] trust = "enforce"`), in front of it;
#                bench/cosign:v1 (the bench/app image, signed with a keyed cosign signature made
#                with openssl: a `sha256-<hex>.sig` tag, as cosign 2 stores it) is enforced by a
#                cosign `[[verifier]]` instead of Notary v1;
#   - nginx:     serving a copy of the manifest bytes and of the 256 MiB blob with sendfile
#                (the practical upper bound for a static answer), own -c config and -p prefix;
#                a second nginx without sendfile (user-space copies) for workload 2 only: on
#                some kernels that is the faster of the two over loopback.
# Then measures, one server at a time:
#   1. warm manifest GET by tag (wrk, 1 and 64 connections): requests/s, p50, p99; and the same
#      against trustgate for the cosign-enforced bench/cosign:v1 (issue 12: within 0.9× of the
#      Notary v1 path);
#   2. warm GET of the 256 MiB blob (wrk, 1 and 16 connections): GB/s (10^9 bytes/s);
#      for 1 and 2 the servers take turns (3 rounds of 5 s each, by default), and each figure is
#      the median of its rounds, so that noise from other jobs on the machine falls on all alike;
#   3. cold pull of bench/app:v1 with skopeo (cache emptied and proxy restarted before each
#      round), against a direct pull from the upstream: median wall time;
#   4. 16 concurrent cold GETs of the 256 MiB blob: upstream fetches (upstream access log) and
#      wall time;
#   5. peak RSS (VmHWM, reset with clear_refs) of each server during 2 and during 4;
#   6. CPU time (user + sys from /proc/PID/stat) per GB served during 2;
#   7. fleet (issue 14): three trustgate replicas on one shared S3 bucket (moto_server) against
#      the one replica on disk above: the cold fleet pull's upstream fetch count (16 concurrent
#      GETs of the big blob spread over the three), a local miss served from the shared store (a
#      fourth, fresh replica: wall time, no upstream fetch), and warm hits from the local tier
#      (wrk, 16 connections, interleaved with the single replica: >= 0.95x its GB/s);
#   8. TLS (issue 16): a second trustgate with `tls_cert`/`tls_key` against an nginx serving the
#      same files over HTTPS with the same certificate (P-256, from the throwaway CA above),
#      `ssl_session_cache shared:SSL:10m` and `ssl_session_tickets on` (nginx does not sendfile
#      over TLS: no kernel TLS here). Both over HTTPS, interleaved rounds (medians):
#      warm manifest by tag at 1 and 64 keep-alive connections (req/s, p99); new-connection
#      handshakes per second: wrk with `-H 'Connection: close'` (16 connections), so every
#      request is a new TCP connection and a new TLS handshake. wrk (OpenSSL) keeps its session
#      across its reconnects (SSL_clear), so these are *resumed* handshakes wherever the server
#      resumes: nginx's access log ($ssl_session_reused) gives the share wrk resumed there, and
#      benches/peers/resumes.py checks that each server resumes a session at all (a Python ssl
#      client offering the session of its previous connection); both go into the row's title.
#      And warm blob GB/s with 16 clients.
# Prints a markdown table with the absolute numbers and the ratios trustgate / registry proxy,
# trustgate / nginx and trustgate / direct, and checks the targets of issue #7. A full run
# appends the table to BENCHMARKS.md with the date, the commit and the machine.
#
# Usage: benches/peers.sh [--smoke] [--no-append]
#   --smoke      tiny sizes, one 1 s wrk run per server and workload, one cold pull (every
#                workload, every check and the table; nothing appended);
#                builds trustgate in the dev profile (CI shares that build with the tests) unless
#                PEERS_PROFILE=release. CI runs this so that the benchmark cannot rot.
#   --no-append  a full run that only prints.
# Environment: PEERS_WRK_SECONDS (5), PEERS_WRK_ROUNDS (3), PEERS_ROUNDS (7 cold pulls per
# server), PEERS_PROFILE (release; dev for --smoke), KEEP_LOGS=1 keeps the temp folder (logs);
# PEERS_PERF=DIR records `perf record -g` of trustgate during its multi-client wrk runs in DIR.
# Exits non-zero when a workload fails functionally (a pull fails, a server does not serve, a
# digest does not match, enforcement is off), never because of a timing number.
#
# Needs (Debian): docker-registry, notary (notary-server + notary CLI), skopeo, nginx-light, wrk,
# openssl, curl, python3, plus cargo; moto_server (PyPI moto[server]) for 7.
# scripts/install-test-deps.sh installs them.
set -euo pipefail

MODE=full
APPEND=1
for arg in "$@"; do
    case "$arg" in
        --smoke) MODE=smoke ;;
        --no-append) APPEND=0 ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "peers.sh: unknown argument $arg (see --help)" >&2
            exit 2
            ;;
    esac
done
[ "$MODE" = full ] || APPEND=0

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE=$ROOT/benches/peers
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

if [ "$MODE" = smoke ]; then
    LAYER_BYTES=$((256 << 10)) # 5 x 256 KiB image
    BIG_BYTES=$((8 << 20))     # 8 MiB "big" blob
    WRK_SECONDS=1              # per wrk run
    WRK_ROUNDS=1               # wrk runs per server and workload
    ROUNDS=1                   # cold pulls per server
    PROFILE=${PEERS_PROFILE:-dev}
else
    LAYER_BYTES=$((40 << 20))   # 5 x 40 MiB = 200 MiB image
    BIG_BYTES=$((256 << 20))    # 256 MiB blob
    WRK_SECONDS=${PEERS_WRK_SECONDS:-5}
    WRK_ROUNDS=${PEERS_WRK_ROUNDS:-3}
    ROUNDS=${PEERS_ROUNDS:-7}
    PROFILE=${PEERS_PROFILE:-release}
fi
LAYERS=5
CLIENTS_W4=16
ACCEPT='Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json'
SCHEMA2=application/vnd.docker.distribution.manifest.v2+json

log() { printf '[peers] %s\n' "$*" >&2; }
die() {
    printf '[peers] FAILED: %s\n' "$*" >&2
    exit 1
}

for tool in cargo docker-registry notary notary-server skopeo nginx wrk openssl curl python3 sha256sum awk; do
    command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] ||
        die "$tool not found (sh scripts/install-test-deps.sh installs the benchmark's tools)"
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
# Loopback only: a proxy variable in the environment must not reroute anything.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY

T0=$(date +%s)
log "building trustgate ($PROFILE profile)"
if [ "$PROFILE" = release ]; then
    (cd "$ROOT" && cargo build --release --locked --quiet --bin trustgate)
    BIN=$CARGO_TARGET_DIR/release/trustgate
else
    (cd "$ROOT" && cargo build --locked --quiet --bin trustgate)
    BIN=$CARGO_TARGET_DIR/debug/trustgate
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/trustgate-peers.XXXXXX")
# name -> pid of every server this script started; stopped by PID on exit.
declare -A PIDS=()
cleanup() {
    local rc=$? pid
    for name in "${!PIDS[@]}"; do
        pid=${PIDS[$name]}
        kill "$pid" 2>/dev/null || true
    done
    # Background clients (curl, skopeo) this shell started, if a failure left any.
    for pid in $(jobs -p); do kill "$pid" 2>/dev/null || true; done
    for name in "${!PIDS[@]}"; do wait "${PIDS[$name]}" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -n "${KEEP_LOGS:-}" ]; then
        log "temp folder and logs kept in $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log "work dir $WORK"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# alive PID: running and not a zombie (exited processes linger as Z for a moment)
alive() {
    local st
    st=$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "$st" != Z ]
}

# wait_http NAME URL [CURL_ARGS...]: until URL answers 200, or die with NAME's log
wait_http() {
    local name=$1 url=$2
    shift 2
    for _ in $(seq 1 200); do
        if [ "$(curl -s -o /dev/null -w '%{http_code}' "$@" "$url" 2>/dev/null)" = 200 ]; then
            return 0
        fi
        alive "${PIDS[$name]}" || break
        sleep 0.1
    done
    tail -n 20 "$WORK/$name.err" >&2 2>/dev/null || true
    die "$name does not answer $url"
}

# start NAME CMD...: run CMD in the background, stdout/stderr in $WORK/NAME.{out,err}
start() {
    local name=$1
    shift
    "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    PIDS[$name]=$!
}

stop() {
    local pid=${PIDS[$1]:-}
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    unset "PIDS[$1]"
}

# ---------------------------------------------------------------------------------------------
# measurement helpers
# ---------------------------------------------------------------------------------------------
CLK_TCK=$(getconf CLK_TCK)

# the PIDs that make up a server: nginx = master + workers (children), others = one process
group() {
    local pid=${PIDS[$1]}
    if [ "${1#nginx}" != "$1" ]; then
        # shellcheck disable=SC2046 # one PID per word
        echo "$pid" $(pgrep -P "$pid" || true)
    else
        echo "$pid"
    fi
}

# cpu_ticks NAME: user + sys clock ticks of the server's processes (all threads)
cpu_ticks() {
    local total=0 p t
    for p in $(group "$1"); do
        # fields after the ")" that ends the command name: utime is the 12th, stime the 13th
        t=$(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')
        total=$((total + t))
    done
    echo "$total"
}

reset_hwm() {
    local p
    for p in $(group "$1"); do echo 5 >"/proc/$p/clear_refs"; done
}

# rss_kib NAME: current RSS (summed over the server's processes)
rss_kib() {
    local total=0 p k
    for p in $(group "$1"); do
        k=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status")
        total=$((total + k))
    done
    echo "$total"
}

# hwm_kib NAME: peak RSS since the last reset (summed over the server's processes)
hwm_kib() {
    local total=0 p k
    for p in $(group "$1"); do
        k=$(awk '/^VmHWM:/ {print $2}' "/proc/$p/status")
        total=$((total + k))
    done
    echo "$total"
}

# extra wrk arguments (workload 8's handshakes: a Connection: close header)
WRK_ARGS=()

# results: R[key] = number; L[key] = space-separated values of the rounds, reduced to medians
declare -A R=() L=()

# wrk_run KEY NAME THREADS CONNS URL: one wrk run; appends its numbers to L[KEY.*] and adds its
# bytes to R[KEY.bytes]. Fails on any non-2xx answer or connection error (functional), never on
# a timing.
wrk_run() {
    local key=$1 name=$2 threads=$3 conns=$4 url=$5 out line perf_pid=""
    out=$WORK/wrk-$key.out
    if [ -n "${PEERS_PERF:-}" ] && [ "$name" = trustgate ] && [ "$conns" -gt 1 ]; then
        # profile trustgate during its multi-client runs: perf report -i DIR/perf-KEY-N.data
        mkdir -p "$PEERS_PERF"
        perf record -g -p "${PIDS[trustgate]}" -o "$PEERS_PERF/perf-${key%%.*}-$(date +%s).data" \
            -- sleep "$WRK_SECONDS" >>"$WORK/perf.log" 2>&1 &
        perf_pid=$!
    fi
    wrk -t "$threads" -c "$conns" -d "${WRK_SECONDS}s" --timeout 120s --latency \
        -s "$HERE/report.lua" -H "$ACCEPT" "${WRK_ARGS[@]}" "$url" >"$out" 2>&1 || {
        cat "$out" >&2
        die "wrk failed against $name ($url)"
    }
    if [ -n "$perf_pid" ]; then wait "$perf_pid" || log "perf record failed: $(tail -n 3 "$WORK/perf.log")"; fi
    line=$(grep '^RESULT ' "$out") || die "wrk printed no result against $name: $(cat "$out")"
    local requests bytes duration p50 p99 e_connect e_read e_write e_status e_timeout
    eval "$(echo "${line#RESULT }" | tr ' ' '\n' | sed 's/^err_/e_/; s/_us=/=/')"
    # shellcheck disable=SC2154 # set by the eval above
    {
        [ "$e_status" = 0 ] || die "$name answered $e_status non-2xx responses to wrk ($url)"
        [ "$e_connect" = 0 ] || die "$name refused $e_connect wrk connections ($url)"
        [ "$requests" -gt 0 ] || [ "$bytes" -gt 0 ] || die "$name served nothing to wrk ($url)"
        if [ "$e_read" != 0 ] || [ "$e_write" != 0 ] || [ "$e_timeout" != 0 ]; then
            log "note: $key: wrk read/write/timeout errors $e_read/$e_write/$e_timeout"
        fi
        local rps gbps
        rps=$(awk -v r="$requests" -v d="$duration" 'BEGIN {printf "%.1f", r / (d / 1e6)}')
        gbps=$(awk -v b="$bytes" -v d="$duration" 'BEGIN {printf "%.3f", b / 1e9 / (d / 1e6)}')
        L[$key.rps]="${L[$key.rps]:-} $rps"
        L[$key.gbps]="${L[$key.gbps]:-} $gbps"
        L[$key.p50]="${L[$key.p50]:-} $(awk -v v="$p50" 'BEGIN {printf "%.3f", v / 1000}')"
        L[$key.p99]="${L[$key.p99]:-} $(awk -v v="$p99" 'BEGIN {printf "%.3f", v / 1000}')"
        R[$key.bytes]=$((${R[$key.bytes]:-0} + bytes))
        log "$key: $rps req/s, $gbps GB/s, p50 $((p50 / 1000)).$(printf '%03d' $((p50 % 1000))) ms, p99 $((p99 / 1000)).$(printf '%03d' $((p99 % 1000))) ms"
    }
}

# medians KEY: R[KEY.x] = median of L[KEY.x] for every measure of a wrk workload
medians() {
    local m
    for m in rps gbps p50 p99; do R[$1.$m]=$(echo "${L[$1.$m]}" | median); done
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.3f", b - a}'; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# ---------------------------------------------------------------------------------------------
# TLS for notary-server: a throwaway CA and a server certificate for 127.0.0.1
# ---------------------------------------------------------------------------------------------
mkdir -p "$WORK/tls"
(
    cd "$WORK/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt \
        -days 2 -subj "/CN=trustgate peers bench CA" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr \
        -subj /CN=127.0.0.1 2>/dev/null
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt \
        -days 2 -extfile server.ext 2>/dev/null
)
CA=$WORK/tls/ca.crt

# ---------------------------------------------------------------------------------------------
# notary-server (trust_service local, memory storage)
# ---------------------------------------------------------------------------------------------
NOTARY_PORT=$(free_port)
NOTARY_URL=https://127.0.0.1:$NOTARY_PORT
cat >"$WORK/notary-server.json" <<EOF
{
  "server": { "http_addr": "127.0.0.1:$NOTARY_PORT", "tls_key_file": "$WORK/tls/server.key", "tls_cert_file": "$WORK/tls/server.crt" },
  "trust_service": { "type": "local" },
  "storage": { "backend": "memory" },
  "logging": { "level": "warn" }
}
EOF
start notary notary-server -config "$WORK/notary-server.json"
wait_http notary "$NOTARY_URL/_notary_server/health" --cacert "$CA"
log "notary-server on $NOTARY_URL"

# ---------------------------------------------------------------------------------------------
# registries: upstream and proxy (distribution 2.8 with the Debian package's blob descriptor cache)
# ---------------------------------------------------------------------------------------------
# registry_config NAME PORT [REMOTE]
registry_config() {
    mkdir -p "$WORK/$1/storage"
    cat >"$WORK/$1/config.yml" <<EOF
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $WORK/$1/storage
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:$2
  secret: trustgate-peers-bench-$1
EOF
    if [ -n "${3:-}" ]; then
        printf 'proxy:\n  remoteurl: %s\n' "$3" >>"$WORK/$1/config.yml"
    fi
}

UP_PORT=$(free_port)
UP=127.0.0.1:$UP_PORT
registry_config upstream "$UP_PORT"
# distribution writes its access log to stdout: upstream.out is what workload 4 counts
start upstream docker-registry serve "$WORK/upstream/config.yml"
wait_http upstream "http://$UP/v2/"
log "upstream registry on $UP"

# ---------------------------------------------------------------------------------------------
# images: generate, upload with the Registry v2 API, sign with the notary CLI
# ---------------------------------------------------------------------------------------------
log "generating images ($LAYERS x $((LAYER_BYTES >> 10)) KiB layers, $((BIG_BYTES >> 10)) KiB blob)"
mkdir -p "$WORK/images"
python3 "$HERE/mkimages.py" "$WORK/images" "$LAYERS" "$LAYER_BYTES" "$BIG_BYTES" >"$WORK/images/list"

upload_blob() { # REPO DIGEST FILE
    local loc sep code
    loc=$(curl -fsS -D - -o /dev/null -X POST "http://$UP/v2/$1/blobs/uploads/" |
        tr -d '\r' | awk 'tolower($1) == "location:" {print $2}')
    case "$loc" in http*) ;; *) loc="http://$UP$loc" ;; esac
    sep='?'
    case "$loc" in *\?*) sep='&' ;; esac
    code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/octet-stream' \
        -T "$3" "$loc${sep}digest=$2")
    [ "$code" = 201 ] || die "upload of $2 to $1 answered $code"
}

put_manifest() { # REPO TAG DIGEST FILE
    local got
    got=$(curl -fsS -D - -o /dev/null -X PUT -H "Content-Type: $SCHEMA2" --data-binary "@$4" \
        "http://$UP/v2/$1/manifests/$2" | tr -d '\r' |
        awk 'tolower($1) == "docker-content-digest:" {print $2}')
    [ "$got" = "$3" ] || die "manifest $1:$2 stored as '$got', expected $3"
}

export NOTARY_ROOT_PASSPHRASE=peers-bench NOTARY_TARGETS_PASSPHRASE=peers-bench
export NOTARY_SNAPSHOT_PASSPHRASE=peers-bench NOTARY_DELEGATION_PASSPHRASE=peers-bench
mkdir -p "$WORK/notary-trust"
nt() {
    notary -s "$NOTARY_URL" -d "$WORK/notary-trust" --tlscacert "$CA" "$@" >>"$WORK/notary-cli.log" 2>&1 ||
        die "notary $* failed: $(tail -n 5 "$WORK/notary-cli.log")"
}

# sign REPO TAG DIGEST LENGTH: as DOCKER_CONTENT_TRUST=1 docker push does (the pushed digest and length, signed as a target)
sign() {
    local gun=$UP/$1
    nt init "$gun" -p
    nt key rotate "$gun" snapshot -r
    nt addhash "$gun" "$2" "$4" --sha256 "${3#sha256:}" -p
}

while read -r kind repo a b c d; do
    case "$kind" in
        blob) upload_blob "$repo" "$a" "$b" ;;
        manifest)
            # a = tag, b = digest, c = length, d = file
            put_manifest "$repo" "$a" "$b" "$d"
            sign "$repo" "$a" "$b" "$c"
            case "$repo" in
                bench/app) APP_DIGEST=$b APP_MANIFEST=$d ;;
                bench/big) BIG_DIGEST_MANIFEST=$b BIG_MANIFEST=$d ;;
            esac
            ;;
    esac
done <"$WORK/images/list"
BIG_DIGEST=$(awk '$1 == "blob" && $2 == "bench/big" {print $3; exit}' "$WORK/images/list")
BIG_FILE=$WORK/images/big/blob
if [ -z "${APP_DIGEST:-}" ] || [ -z "${BIG_DIGEST_MANIFEST:-}" ] || [ -z "$BIG_DIGEST" ]; then
    die "image list incomplete"
fi
# An unsigned tag on the same manifest: the registry proxy serves it, trustgate must refuse it.
put_manifest bench/app unsigned "$APP_DIGEST" "$APP_MANIFEST"

# bench/cosign:v1: the same image in another repository (blobs mounted, not uploaded again),
# signed the way `cosign sign --key` (cosign 2) does: ECDSA P-256 over the simple-signing
# payload, base64 in the layer annotation of the `sha256-<hex>.sig` manifest.
OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json
mount_blob() { # REPO DIGEST FROM
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://$UP/v2/$1/blobs/uploads/?mount=$2&from=$3")
    [ "$code" = 201 ] || die "mounting $2 from $3 into $1 answered $code"
}
python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["config"]["digest"]); [print(l["digest"]) for l in m["layers"]]' \
    "$APP_MANIFEST" | while read -r d; do mount_blob bench/cosign "$d" bench/app; done
put_manifest bench/cosign v1 "$APP_DIGEST" "$APP_MANIFEST"
# and an image nobody signed, for the enforcement check
python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["config"]["digest"]); [print(l["digest"]) for l in m["layers"]]' \
    "$BIG_MANIFEST" | while read -r d; do mount_blob bench/cosign "$d" bench/big; done
put_manifest bench/cosign unsigned "$BIG_DIGEST_MANIFEST" "$BIG_MANIFEST"
mkdir -p "$WORK/cosign"
openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/cosign/cosign.key" 2>/dev/null
openssl ec -in "$WORK/cosign/cosign.key" -pubout -out "$WORK/cosign/cosign.pub" 2>/dev/null
printf '{"critical":{"identity":{"docker-reference":"%s/bench/cosign"},"image":{"docker-manifest-digest":"%s"},"type":"cosign container image signature"},"optional":null}' \
    "$UP" "$APP_DIGEST" >"$WORK/cosign/payload"
COSIGN_SIG=$(openssl dgst -sha256 -sign "$WORK/cosign/cosign.key" "$WORK/cosign/payload" | base64 -w0)
PAYLOAD_DIGEST=sha256:$(sha256sum "$WORK/cosign/payload" | cut -d' ' -f1)
printf '{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":["%s"]}}' \
    "$PAYLOAD_DIGEST" >"$WORK/cosign/config"
SIG_CONFIG_DIGEST=sha256:$(sha256sum "$WORK/cosign/config" | cut -d' ' -f1)
upload_blob bench/cosign "$PAYLOAD_DIGEST" "$WORK/cosign/payload"
upload_blob bench/cosign "$SIG_CONFIG_DIGEST" "$WORK/cosign/config"
printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","digest":"%s","size":%d,"annotations":{"dev.cosignproject.cosign/signature":"%s"}}]}' \
    "$OCI_MANIFEST" "$SIG_CONFIG_DIGEST" "$(stat -c %s "$WORK/cosign/config")" "$PAYLOAD_DIGEST" \
    "$(stat -c %s "$WORK/cosign/payload")" "$COSIGN_SIG" >"$WORK/cosign/sig-manifest"
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H "Content-Type: $OCI_MANIFEST" \
    --data-binary "@$WORK/cosign/sig-manifest" "http://$UP/v2/bench/cosign/manifests/sha256-${APP_DIGEST#sha256:}.sig")
[ "$code" = 201 ] || die "pushing the cosign signature answered $code"
log "cosign-signed $UP/bench/cosign:v1 ($APP_DIGEST)"
rm -f "$WORK"/images/app/layer*.tar.gz # uploaded: the disk space goes to the stores
log "signed $UP/bench/app:v1 ($APP_DIGEST) and $UP/bench/big:v1 ($BIG_DIGEST_MANIFEST)"

# ---------------------------------------------------------------------------------------------
# the servers under test
# ---------------------------------------------------------------------------------------------
REG_PORT=$(free_port)
REG=127.0.0.1:$REG_PORT
start_regproxy() { # fresh, empty storage
    rm -rf "$WORK/regproxy"
    registry_config regproxy "$REG_PORT" "http://$UP"
    start regproxy docker-registry serve "$WORK/regproxy/config.yml"
    wait_http regproxy "http://$REG/v2/"
}

TG_PORT=$(free_port)
TG=127.0.0.1:$TG_PORT
TG_ADMIN=127.0.0.1:$(free_port)
# trustgate_config NAME LISTEN ADMIN [SERVER_LINES]: a fresh, empty $WORK/NAME (store, no pinned
# trust: first contact again) and its $WORK/NAME/trustgate.toml
trustgate_config() {
    rm -rf "${WORK:?}/$1"
    mkdir -p "$WORK/$1/data"
    cat >"$WORK/$1/trustgate.toml" <<EOF
[server]
listen = "$2"
${4:-}

[admin]
listen = "$3"

[storage]
path = "$WORK/$1/data"
# No free-space floor: a machine with little free disk would otherwise serve the warm
# workloads unstored and the figures would not be the cache's.
min_free = "0"

[[upstream]]
name = "$UP"
url = "http://$UP"
default = true
notary = "$NOTARY_URL"
notary_ca_file = "$CA"

[[policy]]
repositories = ["*"]
trust = "enforce"

[[verifier]]
name = "bench"
kind = "cosign"
keys = ["$WORK/cosign/cosign.pub"]

[[policy]]
repositories = ["$UP/bench/cosign"]
trust = "enforce"
verifiers = ["bench"]
EOF
}
start_trustgate() { # fresh, empty store (and no pinned trust: first contact again)
    trustgate_config trustgate "$TG" "$TG_ADMIN"
    # the log level trustgate ships with: a line per request and an audit line per trust decision
    # (nginx and distribution write their access logs too)
    start trustgate env RUST_LOG=info NO_COLOR=1 "$BIN" serve --config "$WORK/trustgate/trustgate.toml"
    wait_http trustgate "http://$TG/v2/"
}

NG=127.0.0.1:$(free_port)
NG_RW=127.0.0.1:$(free_port)
mkdir -p "$WORK/www"
cp "$APP_MANIFEST" "$WORK/www/manifest"
ln "$BIG_FILE" "$WORK/www/blob" 2>/dev/null || cp "$BIG_FILE" "$WORK/www/blob"
# start_nginx NAME ADDRESS DIRECTIVES [LISTEN_OPTIONS]: nginx with its own prefix and config
# under $WORK/NAME, serving $WORK/www (over HTTPS with LISTEN_OPTIONS "ssl")
start_nginx() {
    local p=$WORK/$1 scheme=http
    [ "${4:-}" = ssl ] && scheme=https
    mkdir -p "$p/tmp" "$p/logs"
    cat >"$p/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes auto;
user root;
pid $p/nginx.pid;
error_log $p/logs/error.log warn;
events { worker_connections 1024; }
http {
    $(if [ "$scheme" = https ]; then
        echo "log_format tls '\$remote_addr [\$time_local] \"\$request\" \$status \$body_bytes_sent \$ssl_session_reused \$ssl_protocol \$ssl_cipher';"
        echo "    access_log $p/logs/access.log tls;"
    else
        echo "access_log $p/logs/access.log;"
    fi)
    $3
    keepalive_requests 100000000;
    default_type application/octet-stream;
    client_body_temp_path $p/tmp/body;
    proxy_temp_path $p/tmp/proxy;
    fastcgi_temp_path $p/tmp/fastcgi;
    uwsgi_temp_path $p/tmp/uwsgi;
    scgi_temp_path $p/tmp/scgi;
    server {
        listen $2 ${4:-};
        root $WORK/www;
    }
}
EOF
    start "$1" "$NGINX" -p "$p" -c "$p/nginx.conf" -e "$p/logs/error.log"
    wait_http "$1" "$scheme://$2/manifest" --cacert "$CA"
}

start_regproxy
start_trustgate
# nginx as Debian configures it (sendfile, tcp_nopush): the upper bound the issue names; and,
# for workload 2 only, nginx copying through user space (on some kernels faster over loopback)
start_nginx nginx "$NG" "sendfile on; tcp_nopush on;"
start_nginx nginx_rw "$NG_RW" "sendfile off; output_buffers 2 256k;"
log "registry proxy on $REG, trustgate on $TG, nginx on $NG (sendfile) and $NG_RW (no sendfile)"

# ---------------------------------------------------------------------------------------------
# functional checks: each server serves the signed manifest's exact bytes; enforcement is on
# ---------------------------------------------------------------------------------------------
# get_digest URL: sha256 of the body of a 200 answer (die otherwise)
get_digest() {
    local code
    code=$(curl -s -H "$ACCEPT" -o "$WORK/body" -w '%{http_code}' "$1")
    [ "$code" = 200 ] || die "GET $1 answered $code: $(head -c 300 "$WORK/body")"
    echo "sha256:$(sha256sum "$WORK/body" | cut -d' ' -f1)"
}
for url in "http://$REG/v2/bench/app/manifests/v1" "http://$TG/v2/bench/app/manifests/v1" \
    "http://$NG/manifest"; do
    [ "$(get_digest "$url")" = "$APP_DIGEST" ] || die "$url did not serve the signed manifest"
done
[ "$(get_digest "http://$REG/v2/bench/app/manifests/unsigned")" = "$APP_DIGEST" ] ||
    die "the registry proxy did not serve the unsigned tag"
code=$(curl -s -H "$ACCEPT" -o "$WORK/body" -w '%{http_code}' "http://$TG/v2/bench/app/manifests/unsigned")
[ "$code" != 200 ] || die "trustgate served an unsigned tag: enforcement is off"
log "trustgate refuses the unsigned tag ($code: $(head -c 160 "$WORK/body"))"

# ---------------------------------------------------------------------------------------------
# 1. warm manifest GET by tag
# ---------------------------------------------------------------------------------------------
# idle RSS, before any load (what the peak RSS figures grow from)
for s in regproxy trustgate nginx; do R[idle.$s.rss]=$(rss_kib "$s"); done

log "1. warm manifest GET by tag ($WRK_ROUNDS rounds of ${WRK_SECONDS}s per server, interleaved)"
url_of() { # SERVER WORKLOAD: the URL each server answers for workload 1 or 2
    case "$1/$2" in
        regproxy/manifest) echo "http://$REG/v2/bench/app/manifests/v1" ;;
        trustgate/manifest) echo "http://$TG/v2/bench/app/manifests/v1" ;;
        nginx/manifest) echo "http://$NG/manifest" ;;
        regproxy/blob) echo "http://$REG/v2/bench/big/blobs/$BIG_DIGEST" ;;
        trustgate/blob) echo "http://$TG/v2/bench/big/blobs/$BIG_DIGEST" ;;
        nginx/blob) echo "http://$NG/blob" ;;
        nginx_rw/blob) echo "http://$NG_RW/blob" ;;
    esac
}
# Servers take turns, round after round, so that noise from the machine (other jobs on a shared
# VM) falls on all of them alike; each figure is the median of its rounds.
for conns in 1 64; do
    for round in $(seq 1 "$WRK_ROUNDS"); do
        for s in regproxy trustgate nginx; do
            wrk_run "w1c$conns.$s" "$s" "$((conns > 1 ? 2 : 1))" "$conns" "$(url_of "$s" manifest)"
        done
    done
    for s in regproxy trustgate nginx; do medians "w1c$conns.$s"; done
done
# The same workload against trustgate for the cosign-enforced repository (issue 12), and its
# unsigned tag must be refused (enforcement is on).
code=$(curl -s -H "$ACCEPT" -o "$WORK/body" -w '%{http_code}' "http://$TG/v2/bench/cosign/manifests/unsigned")
[ "$code" != 200 ] || die "trustgate served an unsigned tag of the cosign-enforced repository"
log "trustgate refuses the cosign-unsigned tag ($code: $(head -c 160 "$WORK/body"))"
[ "$(get_digest "http://$TG/v2/bench/cosign/manifests/v1")" = "$APP_DIGEST" ] ||
    die "trustgate did not serve the cosign-signed bench/cosign:v1"
for conns in 1 64; do
    for round in $(seq 1 "$WRK_ROUNDS"); do
        wrk_run "w1c$conns.cosign" trustgate "$((conns > 1 ? 2 : 1))" "$conns" "http://$TG/v2/bench/cosign/manifests/v1"
    done
    medians "w1c$conns.cosign"
done

# ---------------------------------------------------------------------------------------------
# 4. concurrent cold GETs of one blob (before 2: this is also what warms the blob)
# ---------------------------------------------------------------------------------------------
# upstream_gets AGENT: GETs of the big blob in the upstream's access log (combined format, the
# user agent last) sent by AGENT: "trustgate/" for trustgate, "Go-http-client/" for distribution.
# Counting by agent keeps a late request of one proxy out of the other's count.
upstream_gets() {
    grep -F "\"GET /v2/bench/big/blobs/$BIG_DIGEST " "$WORK/upstream.out" | grep -cF "\"$1" || true
}

# concurrent_gets NAME URL: CLIENTS_W4 curls at once; sets WALL; dies unless all got every byte
concurrent_gets() {
    local name=$1 url=$2 start i pids=() failed=0
    start=$(now)
    for i in $(seq 1 "$CLIENTS_W4"); do
        curl -s -o /dev/null -w '%{http_code} %{size_download}\n' "$url" >"$WORK/w4-$name-$i" &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i" || failed=$((failed + 1)); done
    WALL=$(elapsed "$start")
    [ "$failed" = 0 ] || die "$name: $failed of $CLIENTS_W4 concurrent blob GETs failed"
    for i in $(seq 1 "$CLIENTS_W4"); do
        [ "$(cat "$WORK/w4-$name-$i")" = "200 $BIG_BYTES" ] ||
            die "$name: a concurrent blob GET got '$(cat "$WORK/w4-$name-$i")', expected 200 $BIG_BYTES"
    done
}

log "4. $CLIENTS_W4 concurrent cold GETs of the $((BIG_BYTES >> 20)) MiB blob"
concurrent_gets direct "http://$UP/v2/bench/big/blobs/$BIG_DIGEST"
R[w4.direct.wall]=$WALL
for s in regproxy trustgate; do
    case $s in
        regproxy) host=$REG agent=Go-http-client/ ;;
        trustgate) host=$TG agent=trustgate/ ;;
    esac
    # only the blob is cold: each proxy has resolved the tag (and trustgate the trust data)
    [ "$(get_digest "http://$host/v2/bench/big/manifests/v1")" = "$BIG_DIGEST_MANIFEST" ] ||
        die "$s did not serve bench/big:v1"
    before=$(upstream_gets "$agent")
    reset_hwm "$s"
    concurrent_gets "$s" "http://$host/v2/bench/big/blobs/$BIG_DIGEST"
    R[w4.$s.wall]=$WALL
    # distribution stores the blob in a background fetch of its own that may still run: wait
    # until the upstream's count stays put for a second (the upstream logs a request when its
    # handler returns), and keep the peak RSS of that phase too
    count=$(upstream_gets "$agent")
    for _ in $(seq 1 120); do
        sleep 1
        next=$(upstream_gets "$agent")
        [ "$next" != "$count" ] || break
        count=$next
    done
    R[w4.$s.rss]=$(hwm_kib "$s")
    R[w4.$s.fetches]=$((count - before))
    log "$s: ${R[w4.$s.fetches]} upstream fetch(es), ${WALL}s, peak RSS ${R[w4.$s.rss]} KiB"
done

# ---------------------------------------------------------------------------------------------
# 2. warm blob GET, with 5. peak RSS and 6. CPU per GB
# ---------------------------------------------------------------------------------------------
log "2. warm GET of the $((BIG_BYTES >> 20)) MiB blob ($WRK_ROUNDS rounds of ${WRK_SECONDS}s per server, interleaved)"
# warm: every server has served the blob at least once (4 did it for the proxies)
for url in "http://$NG/blob" "http://$NG_RW/blob"; do
    [ "$(get_digest "$url")" = "$BIG_DIGEST" ] || die "nginx served another blob ($url)"
done
for s in regproxy trustgate nginx nginx_rw; do
    reset_hwm "$s"
    R[w2.$s.ticks]=0
done
for conns in 1 16; do
    for round in $(seq 1 "$WRK_ROUNDS"); do
        for s in regproxy trustgate nginx nginx_rw; do
            t0=$(cpu_ticks "$s")
            wrk_run "w2c$conns.$s" "$s" "$((conns > 1 ? 2 : 1))" "$conns" "$(url_of "$s" blob)"
            t1=$(cpu_ticks "$s")
            R[w2.$s.ticks]=$((${R[w2.$s.ticks]} + t1 - t0))
        done
    done
    for s in regproxy trustgate nginx nginx_rw; do medians "w2c$conns.$s"; done
done
for s in regproxy trustgate nginx nginx_rw; do
    R[w2.$s.rss]=$(hwm_kib "$s")
    served=$((${R[w2c1.$s.bytes]} + ${R[w2c16.$s.bytes]}))
    R[w2.$s.cpu_per_gb]=$(awk -v t="${R[w2.$s.ticks]}" -v hz="$CLK_TCK" -v b="$served" \
        'BEGIN {printf "%.3f", (t / hz) / (b / 1e9)}')
    log "$s: peak RSS ${R[w2.$s.rss]} KiB, ${R[w2.$s.cpu_per_gb]} CPU s/GB"
done

# ---------------------------------------------------------------------------------------------
# 3. cold pull with skopeo, cache emptied (and the proxy restarted) before each round
# ---------------------------------------------------------------------------------------------
mkdir -p "$WORK/skopeo"
echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$WORK/skopeo/policy.json"
echo '{"auths":{}}' >"$WORK/skopeo/auth.json"
echo 'unqualified-search-registries = []' >"$WORK/skopeo/registries.conf"
pull() { # NAME HOST: skopeo copy to a dir: layout; sets WALL; checks the manifest bytes
    local dest=$WORK/pull-$1 start
    rm -rf "$dest"
    start=$(now)
    REGISTRY_AUTH_FILE=$WORK/skopeo/auth.json CONTAINERS_REGISTRIES_CONF=$WORK/skopeo/registries.conf \
        skopeo --policy "$WORK/skopeo/policy.json" copy --src-tls-verify=false \
        "docker://$2/bench/app:v1" "dir:$dest" >"$WORK/skopeo/$1.log" 2>&1 ||
        die "skopeo pull through $1 failed: $(tail -n 5 "$WORK/skopeo/$1.log")"
    WALL=$(elapsed "$start")
    [ "sha256:$(sha256sum "$dest/manifest.json" | cut -d' ' -f1)" = "$APP_DIGEST" ] ||
        die "skopeo pull through $1 did not get the signed manifest"
    [ "$(find "$dest" -type f | wc -l)" -ge $((LAYERS + 3)) ] || die "skopeo pull through $1 is incomplete"
    rm -rf "$dest"
}

log "3. cold pull of bench/app:v1 with skopeo ($ROUNDS round(s))"
declare -A PULLS=([direct]="" [regproxy]="" [trustgate]="")
ORDER=(direct regproxy trustgate)
for round in $(seq 1 "$ROUNDS"); do
    # who goes first rotates from round to round
    for i in 0 1 2; do
        s=${ORDER[$(((round + i) % 3))]}
        case $s in
            direct) host=$UP ;;
            regproxy) stop regproxy && start_regproxy && host=$REG ;;
            trustgate) stop trustgate && start_trustgate && host=$TG ;;
        esac
        sync # writeback of the previous round does not land in this one
        pull "$s" "$host"
        PULLS[$s]="${PULLS[$s]} $WALL"
        log "round $round, $s: ${WALL}s"
    done
done
for s in direct regproxy trustgate; do
    R[w3.$s]=$(echo "${PULLS[$s]}" | median)
done

# ---------------------------------------------------------------------------------------------
# 7. fleet: three replicas on one shared bucket (moto_server) against the one replica on disk
# ---------------------------------------------------------------------------------------------
command -v moto_server >/dev/null 2>&1 || die "moto_server not found: pip install 'moto[server]' (scripts/install-test-deps.sh)"
S3=127.0.0.1:$(free_port)
start moto moto_server -H 127.0.0.1 -p "${S3#*:}"
wait_http moto "http://$S3/moto-api/"
curl -sf -X PUT "http://$S3/peers-fleet" >/dev/null || die "moto: cannot create the bucket"
export AWS_ACCESS_KEY_ID=peers AWS_SECRET_ACCESS_KEY=peers-secret AWS_REGION=us-east-1
declare -A FLEET=()
start_replica() { # NAME: a fresh replica (empty local cache) on the shared bucket
    local name=$1 port admin
    port=127.0.0.1:$(free_port)
    admin=127.0.0.1:$(free_port)
    rm -rf "${WORK:?}/$name"
    mkdir -p "$WORK/$name/data"
    cat >"$WORK/$name/trustgate.toml" <<EOF
[server]
listen = "$port"

[admin]
listen = "$admin"

[storage]
path = "$WORK/$name/data"
min_free = "0"

[storage.shared]
url = "s3://peers-fleet/run"
endpoint = "http://$S3"
allow_http = true

[[upstream]]
name = "$UP"
url = "http://$UP"
default = true
notary = "$NOTARY_URL"
notary_ca_file = "$CA"

[[policy]]
repositories = ["*"]
trust = "enforce"
EOF
    start "$name" env RUST_LOG=info NO_COLOR=1 "$BIN" serve --config "$WORK/$name/trustgate.toml"
    wait_http "$name" "http://$port/v2/"
    FLEET[$name]=$port
}
log "7. fleet: three replicas on one shared bucket ($S3)"
for f in fleet1 fleet2 fleet3; do
    start_replica "$f"
    # trust first contact (pinned fleet-wide by the first), so only the blob is cold below
    [ "$(get_digest "http://${FLEET[$f]}/v2/bench/big/manifests/v1")" = "$BIG_DIGEST_MANIFEST" ] ||
        die "$f did not serve bench/big:v1"
done
# the cold fleet pull: CLIENTS_W4 GETs at once, spread round-robin over the three replicas
before=$(upstream_gets trustgate/)
start_t=$(now)
pids=()
for i in $(seq 1 "$CLIENTS_W4"); do
    f=fleet$(((i - 1) % 3 + 1))
    curl -s -o /dev/null -w '%{http_code} %{size_download}\n' \
        "http://${FLEET[$f]}/v2/bench/big/blobs/$BIG_DIGEST" >"$WORK/w7-$i" &
    pids+=($!)
done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
R[w7.cold.wall]=$(elapsed "$start_t")
[ "$failed" = 0 ] || die "fleet: $failed of $CLIENTS_W4 concurrent blob GETs failed"
for i in $(seq 1 "$CLIENTS_W4"); do
    [ "$(cat "$WORK/w7-$i")" = "200 $BIG_BYTES" ] ||
        die "fleet: a concurrent blob GET got '$(cat "$WORK/w7-$i")', expected 200 $BIG_BYTES"
done
R[w7.cold.fetches]=$(($(upstream_gets trustgate/) - before))
log "fleet: ${R[w7.cold.fetches]} upstream fetch(es) for $CLIENTS_W4 GETs over 3 replicas, ${R[w7.cold.wall]}s"
# a local miss served from the shared store: a fourth replica with an empty local cache
start_replica fleet4
[ "$(get_digest "http://${FLEET[fleet4]}/v2/bench/big/manifests/v1")" = "$BIG_DIGEST_MANIFEST" ] ||
    die "fleet4 did not serve bench/big:v1"
before=$(upstream_gets trustgate/)
start_t=$(now)
[ "$(get_digest "http://${FLEET[fleet4]}/v2/bench/big/blobs/$BIG_DIGEST")" = "$BIG_DIGEST" ] ||
    die "fleet4 served another blob"
R[w7.miss.wall]=$(elapsed "$start_t")
R[w7.miss.fetches]=$(($(upstream_gets trustgate/) - before))
R[w7.miss.gbps]=$(awk -v b="$BIG_BYTES" -v t="${R[w7.miss.wall]}" 'BEGIN {printf "%.3f", b / 1e9 / t}')
log "fleet: local miss from the shared store in ${R[w7.miss.wall]}s, ${R[w7.miss.fetches]} upstream fetch(es)"
# warm hits from the local tier: replica fleet1 against the single replica, interleaved (3 left
# the single replica with a fresh cache: warm it with the blob first)
[ "$(get_digest "http://$TG/v2/bench/big/manifests/v1")" = "$BIG_DIGEST_MANIFEST" ] ||
    die "trustgate did not serve bench/big:v1"
[ "$(get_digest "http://$TG/v2/bench/big/blobs/$BIG_DIGEST")" = "$BIG_DIGEST" ] ||
    die "trustgate served another blob"
for round in $(seq 1 "$WRK_ROUNDS"); do
    wrk_run "w7c16.trustgate" trustgate 2 16 "http://$TG/v2/bench/big/blobs/$BIG_DIGEST"
    wrk_run "w7c16.fleet" fleet1 2 16 "http://${FLEET[fleet1]}/v2/bench/big/blobs/$BIG_DIGEST"
done
medians w7c16.trustgate
medians w7c16.fleet
for f in fleet1 fleet2 fleet3 fleet4 moto; do stop "$f"; done
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION

# ---------------------------------------------------------------------------------------------
# 8. TLS: trustgate with tls_cert/tls_key against nginx over HTTPS, same certificate
# ---------------------------------------------------------------------------------------------
log "8. TLS: trustgate and nginx over HTTPS ($WRK_ROUNDS rounds of ${WRK_SECONDS}s per server, interleaved)"
TGS=127.0.0.1:$(free_port)
NGS=127.0.0.1:$(free_port)
trustgate_config trustgate_tls "$TGS" "127.0.0.1:$(free_port)" \
    "tls_cert = \"$WORK/tls/server.crt\"
tls_key = \"$WORK/tls/server.key\""
start trustgate_tls env RUST_LOG=info NO_COLOR=1 "$BIN" serve --config "$WORK/trustgate_tls/trustgate.toml"
wait_http trustgate_tls "https://$TGS/v2/" --cacert "$CA"
# nginx as a TLS gateway is commonly set up: a shared session cache and session tickets, and
# TLS 1.3 offered as trustgate offers it (nginx 1.22's built-in default stops at TLS 1.2).
start_nginx nginx_tls "$NGS" "sendfile on; tcp_nopush on;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate $WORK/tls/server.crt;
    ssl_certificate_key $WORK/tls/server.key;
    ssl_session_cache shared:SSL:10m;
    ssl_session_tickets on;" ssl
tls_url() { # SERVER WORKLOAD
    case "$1/$2" in
        trustgate_tls/manifest) echo "https://$TGS/v2/bench/app/manifests/v1" ;;
        trustgate_tls/blob) echo "https://$TGS/v2/bench/big/blobs/$BIG_DIGEST" ;;
        nginx_tls/manifest) echo "https://$NGS/manifest" ;;
        nginx_tls/blob) echo "https://$NGS/blob" ;;
    esac
}
# both serve the exact bytes (and trustgate has the trust data and the blob: warm)
for s in trustgate_tls nginx_tls; do
    for w in manifest blob; do
        code=$(curl -s --cacert "$CA" -H "$ACCEPT" -o "$WORK/body" -w '%{http_code}' "$(tls_url "$s" "$w")")
        [ "$code" = 200 ] || die "$s answered $code over HTTPS: $(head -c 300 "$WORK/body")"
        want=$APP_DIGEST
        [ "$w" = blob ] && want=$BIG_DIGEST
        [ "sha256:$(sha256sum "$WORK/body" | cut -d' ' -f1)" = "$want" ] || die "$s served other bytes for the $w over HTTPS"
    done
    # what a client negotiates with each (the same for both keeps the comparison fair)
    hostport=$(tls_url "$s" manifest | sed 's|https://||; s|/.*||')
    R[w8.$s.tls]=$(openssl s_client -connect "$hostport" -CAfile "$CA" </dev/null 2>/dev/null |
        awk '/^New, / {sub(/^New, /, ""); print; exit}')
    R[w8.$s.resumed]=$(python3 "$HERE/resumes.py" "$(tls_url "$s" manifest)" "$CA" 4) ||
        die "resumes.py failed against $s"
    log "$s: ${R[w8.$s.tls]:-?}; sessions resumed by a client offering one: ${R[w8.$s.resumed]} of 4"
done
for round in $(seq 1 "$WRK_ROUNDS"); do
    for s in trustgate_tls nginx_tls; do
        wrk_run "w8c1.$s" "$s" 1 1 "$(tls_url "$s" manifest)"
        wrk_run "w8c64.$s" "$s" 2 64 "$(tls_url "$s" manifest)"
        WRK_ARGS=(-H 'Connection: close')
        n0=$(wc -l <"$WORK/nginx_tls/logs/access.log")
        wrk_run "w8hs.$s" "$s" 2 16 "$(tls_url "$s" manifest)"
        [ "$s" = nginx_tls ] && HS_LINES="${HS_LINES:-} $((n0 + 1)),$(wc -l <"$WORK/nginx_tls/logs/access.log")"
        WRK_ARGS=()
        wrk_run "w8b.$s" "$s" 2 16 "$(tls_url "$s" blob)"
    done
done
for k in w8c1 w8c64 w8hs w8b; do
    for s in trustgate_tls nginx_tls; do medians "$k.$s"; done
done
# the share of wrk's new connections that nginx resumed during the handshake runs (the lines
# those runs added to its access log; the third field from the end: r = reused, . = full)
R[w8.nginx.reused]=$(for range in $HS_LINES; do sed -n "${range}p" "$WORK/nginx_tls/logs/access.log"; done |
    awk '{n++; if ($(NF - 2) == "r") r++} END {if (n) printf "%.0f", 100 * r / n; else print "?"}')
log "nginx resumed ${R[w8.nginx.reused]} % of the TLS connections wrk made to it"
for s in trustgate_tls nginx_tls; do stop "$s"; done

# ---------------------------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------------------------
# fmt VALUE DECIMALS / ratio A B (A / B, 2 significant decimals) / mib KIB
fmt() { awk -v v="$1" -v d="$2" 'BEGIN {printf "%.*f", d, v}'; }
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (b == 0) { print "—"; exit }
        r = a / b
        if (r >= 100) printf "%.0f×", r; else if (r >= 10) printf "%.1f×", r; else printf "%.2f×", r }'
}
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN {exit !(a >= b)}'; }

MIB_BIG=$((BIG_BYTES >> 20))
[ "$MIB_BIG" -gt 0 ] || MIB_BIG=0
IMG_MIB=$(((LAYERS * LAYER_BYTES) >> 20))
SIZE_NOTE=""
[ "$MODE" = smoke ] && SIZE_NOTE=" (smoke sizes: $((LAYER_BYTES >> 10)) KiB layers, $((BIG_BYTES >> 20)) MiB blob, ${WRK_SECONDS}s runs; timings not meaningful)"

# row MEASURE REG TG NGINX DIRECT TG÷REG TG÷NGINX TG÷DIRECT; $NGRW (then cleared) fills the
# "nginx, no sendfile" column
row() {
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4" "${NGRW:-—}" "$5" "$6" "$7" "$8"
    NGRW=""
}
TABLE=$WORK/table.md
{
    echo "| measure | registry proxy | trustgate | nginx | nginx, no sendfile | upstream direct | trustgate ÷ registry proxy | trustgate ÷ nginx | trustgate ÷ direct |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for c in 1 64; do
        k=w1c$c
        row "1. manifest by tag, $c conn., req/s" "$(fmt "${R[$k.regproxy.rps]}" 0)" "$(fmt "${R[$k.trustgate.rps]}" 0)" \
            "$(fmt "${R[$k.nginx.rps]}" 0)" "—" "$(ratio "${R[$k.trustgate.rps]}" "${R[$k.regproxy.rps]}")" \
            "$(ratio "${R[$k.trustgate.rps]}" "${R[$k.nginx.rps]}")" "—"
        for p in p50 p99; do
            row "1. manifest by tag, $c conn., $p ms" "$(fmt "${R[$k.regproxy.$p]}" 3)" "$(fmt "${R[$k.trustgate.$p]}" 3)" \
                "$(fmt "${R[$k.nginx.$p]}" 3)" "—" "$(ratio "${R[$k.trustgate.$p]}" "${R[$k.regproxy.$p]}")" \
                "$(ratio "${R[$k.trustgate.$p]}" "${R[$k.nginx.$p]}")" "—"
        done
    done
    for c in 1 64; do
        k=w1c$c
        row "1c. manifest by tag under cosign, $c conn., req/s (÷ column: trustgate's Notary v1 path)" "—" \
            "$(fmt "${R[$k.cosign.rps]}" 0)" "—" "—" "$(ratio "${R[$k.cosign.rps]}" "${R[$k.trustgate.rps]}")" "—" "—"
    done
    for c in 1 16; do
        k=w2c$c
        NGRW=$(fmt "${R[$k.nginx_rw.gbps]}" 2)
        row "2. warm blob ${MIB_BIG} MiB, $c client(s), GB/s" "$(fmt "${R[$k.regproxy.gbps]}" 2)" \
            "$(fmt "${R[$k.trustgate.gbps]}" 2)" "$(fmt "${R[$k.nginx.gbps]}" 2)" "—" \
            "$(ratio "${R[$k.trustgate.gbps]}" "${R[$k.regproxy.gbps]}")" \
            "$(ratio "${R[$k.trustgate.gbps]}" "${R[$k.nginx.gbps]}")" "—"
    done
    row "3. cold pull, $LAYERS layers ${IMG_MIB} MiB, skopeo, median of $ROUNDS, s" "$(fmt "${R[w3.regproxy]}" 2)" \
        "$(fmt "${R[w3.trustgate]}" 2)" "—" "$(fmt "${R[w3.direct]}" 2)" \
        "$(ratio "${R[w3.trustgate]}" "${R[w3.regproxy]}")" "—" "$(ratio "${R[w3.trustgate]}" "${R[w3.direct]}")"
    row "4. $CLIENTS_W4 concurrent cold GETs of one ${MIB_BIG} MiB blob: upstream fetches" "${R[w4.regproxy.fetches]}" \
        "${R[w4.trustgate.fetches]}" "—" "$CLIENTS_W4" "$(ratio "${R[w4.trustgate.fetches]}" "${R[w4.regproxy.fetches]}")" "—" "—"
    row "4. same: wall time, s" "$(fmt "${R[w4.regproxy.wall]}" 2)" "$(fmt "${R[w4.trustgate.wall]}" 2)" "—" \
        "$(fmt "${R[w4.direct.wall]}" 2)" "$(ratio "${R[w4.trustgate.wall]}" "${R[w4.regproxy.wall]}")" "—" \
        "$(ratio "${R[w4.trustgate.wall]}" "${R[w4.direct.wall]}")"
    row "5. idle RSS after start-up, MiB" "$(mib "${R[idle.regproxy.rss]}")" "$(mib "${R[idle.trustgate.rss]}")" \
        "$(mib "${R[idle.nginx.rss]}")" "—" "$(ratio "${R[idle.trustgate.rss]}" "${R[idle.regproxy.rss]}")" \
        "$(ratio "${R[idle.trustgate.rss]}" "${R[idle.nginx.rss]}")" "—"
    NGRW=$(mib "${R[w2.nginx_rw.rss]}")
    row "5. peak RSS during 2, MiB" "$(mib "${R[w2.regproxy.rss]}")" "$(mib "${R[w2.trustgate.rss]}")" \
        "$(mib "${R[w2.nginx.rss]}")" "—" "$(ratio "${R[w2.trustgate.rss]}" "${R[w2.regproxy.rss]}")" \
        "$(ratio "${R[w2.trustgate.rss]}" "${R[w2.nginx.rss]}")" "—"
    row "5. peak RSS during 4, MiB" "$(mib "${R[w4.regproxy.rss]}")" "$(mib "${R[w4.trustgate.rss]}")" "—" "—" \
        "$(ratio "${R[w4.trustgate.rss]}" "${R[w4.regproxy.rss]}")" "—" "—"
    NGRW=$(fmt "${R[w2.nginx_rw.cpu_per_gb]}" 3)
    row "6. CPU (user + sys) per GB served in 2, s" "$(fmt "${R[w2.regproxy.cpu_per_gb]}" 3)" \
        "$(fmt "${R[w2.trustgate.cpu_per_gb]}" 3)" "$(fmt "${R[w2.nginx.cpu_per_gb]}" 3)" "—" \
        "$(ratio "${R[w2.trustgate.cpu_per_gb]}" "${R[w2.regproxy.cpu_per_gb]}")" \
        "$(ratio "${R[w2.trustgate.cpu_per_gb]}" "${R[w2.nginx.cpu_per_gb]}")" "—"
    row "7. fleet of 3 on one bucket: $CLIENTS_W4 concurrent cold GETs over the 3, upstream fetches" "—" \
        "${R[w7.cold.fetches]}" "—" "$CLIENTS_W4" "—" "—" "—"
    row "7. fleet: local miss served from the shared store, ${MIB_BIG} MiB, GB/s (upstream fetches: ${R[w7.miss.fetches]})" "—" \
        "$(fmt "${R[w7.miss.gbps]}" 2)" "—" "—" "—" "—" "—"
    row "7. fleet: warm blob from the local tier, 16 clients, GB/s (single replica: $(fmt "${R[w7c16.trustgate.gbps]}" 2))" "—" \
        "$(fmt "${R[w7c16.fleet.gbps]}" 2)" "$(fmt "${R[w2c16.nginx.gbps]}" 2)" "—" "—" \
        "$(ratio "${R[w7c16.fleet.gbps]}" "${R[w2c16.nginx.gbps]}")" "—"
    for c in 1 64; do
        k=w8c$c
        row "8. TLS: manifest by tag, $c keep-alive conn., req/s" "—" "$(fmt "${R[$k.trustgate_tls.rps]}" 0)" \
            "$(fmt "${R[$k.nginx_tls.rps]}" 0)" "—" "—" "$(ratio "${R[$k.trustgate_tls.rps]}" "${R[$k.nginx_tls.rps]}")" "—"
        row "8. TLS: manifest by tag, $c keep-alive conn., p99 ms" "—" "$(fmt "${R[$k.trustgate_tls.p99]}" 3)" \
            "$(fmt "${R[$k.nginx_tls.p99]}" 3)" "—" "—" "$(ratio "${R[$k.trustgate_tls.p99]}" "${R[$k.nginx_tls.p99]}")" "—"
    done
    row "8. TLS: new connections/s (wrk, Connection: close, 16 conn.: a TLS handshake per request; nginx resumed ${R[w8.nginx.reused]} % of them; resumes.py: trustgate ${R[w8.trustgate_tls.resumed]}/4, nginx ${R[w8.nginx_tls.resumed]}/4)" \
        "—" "$(fmt "${R[w8hs.trustgate_tls.rps]}" 0)" "$(fmt "${R[w8hs.nginx_tls.rps]}" 0)" "—" "—" \
        "$(ratio "${R[w8hs.trustgate_tls.rps]}" "${R[w8hs.nginx_tls.rps]}")" "—"
    row "8. TLS: new connections, p99 ms" "—" "$(fmt "${R[w8hs.trustgate_tls.p99]}" 3)" \
        "$(fmt "${R[w8hs.nginx_tls.p99]}" 3)" "—" "—" "$(ratio "${R[w8hs.trustgate_tls.p99]}" "${R[w8hs.nginx_tls.p99]}")" "—"
    row "8. TLS: warm blob ${MIB_BIG} MiB, 16 clients, GB/s" "—" "$(fmt "${R[w8b.trustgate_tls.gbps]}" 2)" \
        "$(fmt "${R[w8b.nginx_tls.gbps]}" 2)" "—" "—" "$(ratio "${R[w8b.trustgate_tls.gbps]}" "${R[w8b.nginx_tls.gbps]}")" "—"
} >"$TABLE"

TARGETS=$WORK/targets.md
verdict() { # OK_CONDITION_EXIT_STATUS TEXT
    if [ "$1" = 0 ]; then echo "- met: $2"; else echo "- MISSED: $2"; fi
}
check() { "$@" && echo 0 || echo 1; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN {exit !(a < b)}'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN {exit !(a <= b)}'; }
x() { awk -v a="$1" -v b="$2" 'BEGIN {if (b == 0) print "inf"; else printf "%.2f", a / b}'; }
{
    tg=${R[w1c64.trustgate.rps]}
    verdict "$(check ge "$tg" "$(awk -v r="${R[w1c64.regproxy.rps]}" 'BEGIN {print 100 * r}')")" \
        "warm manifest by tag, 64 conn.: ≥ 100× the registry proxy's req/s — $(x "$tg" "${R[w1c64.regproxy.rps]}")×"
    verdict "$(check ge "$tg" "$(awk -v r="${R[w1c64.nginx.rps]}" 'BEGIN {print 0.5 * r}')")" \
        "warm manifest by tag, 64 conn.: ≥ 0.5× nginx's req/s (small static file) — $(x "$tg" "${R[w1c64.nginx.rps]}")×"
    verdict "$(check ge "${R[w1c64.cosign.rps]}" "$(awk -v r="$tg" 'BEGIN {print 0.9 * r}')")" \
        "warm manifest by tag under cosign, 64 conn.: ≥ 0.9× the Notary v1 path's req/s (issue 12) — $(x "${R[w1c64.cosign.rps]}" "$tg")×"
    verdict "$(check lt "${R[w1c64.trustgate.p99]}" 5)" \
        "warm manifest by tag, 64 conn.: p99 < 5 ms — $(fmt "${R[w1c64.trustgate.p99]}" 2) ms"
    tg=${R[w2c16.trustgate.gbps]}
    verdict "$(check ge "$tg" "$(awk -v r="${R[w2c16.nginx.gbps]}" 'BEGIN {print 0.9 * r}')")" \
        "warm blob, 16 clients: ≥ 0.9× nginx's GB/s — $(x "$tg" "${R[w2c16.nginx.gbps]}")× (and $(x "$tg" "${R[w2c16.nginx_rw.gbps]}")× nginx without sendfile)"
    verdict "$(check ge "$tg" "$(awk -v r="${R[w2c16.regproxy.gbps]}" 'BEGIN {print 1.7 * r}')")" \
        "warm blob, 16 clients: ≥ 1.7× the registry proxy's GB/s — $(x "$tg" "${R[w2c16.regproxy.gbps]}")×"
    verdict "$(check le "${R[w3.trustgate]}" "$(awk -v r="${R[w3.direct]}" 'BEGIN {print 1.05 * r}')")" \
        "cold pull: ≤ 1.05× the direct pull — $(x "${R[w3.trustgate]}" "${R[w3.direct]}")×"
    verdict "$(check [ "${R[w4.trustgate.fetches]}" = 1 ])" \
        "$CLIENTS_W4 concurrent cold GETs of one blob: 1 upstream fetch — ${R[w4.trustgate.fetches]}"
    verdict "$(check [ "${R[w7.cold.fetches]}" = 1 ])" \
        "fleet of 3 on one bucket, $CLIENTS_W4 concurrent cold GETs: 1 upstream fetch — ${R[w7.cold.fetches]}"
    verdict "$(check [ "${R[w7.miss.fetches]}" = 0 ])" \
        "fleet: a local miss is served from the shared store, not the upstream — ${R[w7.miss.fetches]} fetch(es)"
    verdict "$(check ge "${R[w7c16.fleet.gbps]}" "$(awk -v r="${R[w7c16.trustgate.gbps]}" 'BEGIN {print 0.95 * r}')")" \
        "fleet: warm hits from the local tier ≥ 0.95× the single replica's GB/s — $(x "${R[w7c16.fleet.gbps]}" "${R[w7c16.trustgate.gbps]}")×"
    # Issue 16's targets, beside issue 7's above.
    verdict "$(check ge "${R[w1c64.trustgate.rps]}" "${R[w1c64.nginx.rps]}")" \
        "warm manifest by tag, 64 conn.: ≥ 1.0× nginx's req/s (issue 16) — $(x "${R[w1c64.trustgate.rps]}" "${R[w1c64.nginx.rps]}")×"
    verdict "$(check le "${R[w1c64.trustgate.p99]}" "${R[w1c64.nginx.p99]}")" \
        "warm manifest by tag, 64 conn.: p99 ≤ nginx's p99 (issue 16) — $(fmt "${R[w1c64.trustgate.p99]}" 2) vs $(fmt "${R[w1c64.nginx.p99]}" 2) ms"
    verdict "$(check ge "${R[w2c16.trustgate.gbps]}" "${R[w2c16.nginx.gbps]}")" \
        "warm blob, 16 clients: ≥ 1.0× nginx with sendfile (issue 16) — $(x "${R[w2c16.trustgate.gbps]}" "${R[w2c16.nginx.gbps]}")×"
    verdict "$(check le "${R[w2.trustgate.cpu_per_gb]}" "$(awk -v r="${R[w2.nginx.cpu_per_gb]}" 'BEGIN {print 2 * r}')")" \
        "warm blob: CPU per GB ≤ 2× nginx with sendfile (issue 16) — $(x "${R[w2.trustgate.cpu_per_gb]}" "${R[w2.nginx.cpu_per_gb]}")×"
    verdict "$(check le "${R[w3.trustgate]}" "$(awk -v r="${R[w3.direct]}" 'BEGIN {print 1.02 * r}')")" \
        "cold pull: ≤ 1.02× the direct pull (issue 16) — $(x "${R[w3.trustgate]}" "${R[w3.direct]}")×"
    for k in w8c1 w8c64 w8hs; do
        case $k in
            w8c1) what="manifest by tag, 1 keep-alive conn., req/s" ;;
            w8c64) what="manifest by tag, 64 keep-alive conn., req/s" ;;
            w8hs) what="new connections (handshakes)/s" ;;
        esac
        verdict "$(check ge "${R[$k.trustgate_tls.rps]}" "${R[$k.nginx_tls.rps]}")" \
            "TLS, $what: ≥ 1.0× nginx (issue 16) — $(x "${R[$k.trustgate_tls.rps]}" "${R[$k.nginx_tls.rps]}")×"
    done
    verdict "$(check ge "${R[w8b.trustgate_tls.gbps]}" "${R[w8b.nginx_tls.gbps]}")" \
        "TLS, warm blob, 16 clients, GB/s: ≥ 1.0× nginx (issue 16) — $(x "${R[w8b.trustgate_tls.gbps]}" "${R[w8b.nginx_tls.gbps]}")×"
    for w in w2 w4; do
        verdict "$(check le "${R[$w.trustgate.rss]}" "$(awk -v r="${R[$w.regproxy.rss]}" 'BEGIN {print r / 4}')")" \
            "peak RSS during ${w#w}: ≤ 1/4 of the registry proxy's — $(x "${R[$w.trustgate.rss]}" "${R[$w.regproxy.rss]}")×"
    done
} >"$TARGETS"

COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]; then COMMIT="$COMMIT (dirty)"; fi
CPU=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
MEM=$(awk '/^MemTotal:/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
STAMP=$(date -u +%Y-%m-%d)
VERSIONS="docker-registry $(dpkg-query -W -f='${Version}' docker-registry 2>/dev/null || echo ?), nginx $(dpkg-query -W -f='${Version}' nginx-light 2>/dev/null || "$NGINX" -v 2>&1 | sed 's/.*\///'), wrk $(dpkg-query -W -f='${Version}' wrk 2>/dev/null || echo ?), skopeo $(dpkg-query -W -f='${Version}' skopeo 2>/dev/null || echo ?)"
RUNTIME=$(($(date +%s) - T0))

{
    echo "### \`benches/peers.sh\`, $STAMP, commit \`$COMMIT\`$SIZE_NOTE"
    echo
    echo "\`nproc\` = $(nproc), CPU \`$CPU\`, $MEM RAM, kernel $(uname -r); $VERSIONS; trustgate $PROFILE profile;"
    echo "wrk: $WRK_ROUNDS interleaved rounds of ${WRK_SECONDS} s per server and workload (medians); skopeo: $ROUNDS rounds (median); $RUNTIME s for the whole run including the build."
    echo "TLS (8): same certificate (P-256); trustgate negotiates \`${R[w8.trustgate_tls.tls]:-?}\`, nginx \`${R[w8.nginx_tls.tls]:-?}\` (openssl s_client); nginx with \`ssl_session_cache shared:SSL:10m; ssl_session_tickets on\`, no sendfile over TLS."
    echo
    cat "$TABLE"
    echo
    echo "Targets of issues #7, #12, #14 and #16:"
    echo
    cat "$TARGETS"
} >"$WORK/report.md"

echo
cat "$WORK/report.md"
if [ "$APPEND" = 1 ]; then
    { echo; cat "$WORK/report.md"; } >>"$ROOT/BENCHMARKS.md"
    log "appended to $ROOT/BENCHMARKS.md"
fi
log "done in $(($(date +%s) - T0)) s"
