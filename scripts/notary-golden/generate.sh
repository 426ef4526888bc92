#!/usr/bin/env bash
# Regenerates tests/data/golden/ : Notary v1 (Docker Content Trust) metadata produced by the real
# `notary` CLI against a real, throwaway notary-server (trust_service: local, memory storage).
# Every file under tests/data/golden/ is rewritten; nothing outside the repo is touched except a
# mktemp directory (removed on exit) and a notary-server on 127.0.0.1:<free port> (killed by PID).
#
# Needs: notary, notary-server (Debian package `notary`), openssl, curl, jq, python3.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$REPO/scripts/notary-golden"
OUT="$REPO/tests/data/golden"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/notary-golden.XXXXXX")
GOLD="$WORK/golden"          # built here, copied over $OUT only when everything succeeded
SERVER_PID=""

cleanup() {
    local rc=$?
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ "$rc" -ne 0 ] && [ -f "$WORK/server.log" ]; then
        echo "---- notary-server log (tail) ----" >&2
        tail -n 5 "$WORK/server.log" >&2 || true
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT

log() { printf '[golden] %s\n' "$*" >&2; }
die() { printf '[golden] ERROR: %s\n' "$*" >&2; exit 1; }

for tool in notary notary-server openssl curl jq python3; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install notary openssl curl jq python3)"
done

NOTARY_PKG_VERSION=$(dpkg-query -W -f='${Version}' notary 2>/dev/null || echo unknown)
NOTARY_VERSION_OUT=$(notary version 2>&1 | tr -s ' \n' ' ' | sed 's/ *$//')

# ---------------------------------------------------------------------------------------------
# TLS: throwaway CA + server certificate for 127.0.0.1
# ---------------------------------------------------------------------------------------------
log "work dir $WORK"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$WORK/ca.key" -out "$WORK/ca.crt" -days 2 -subj "/CN=trustgate golden throwaway CA" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$WORK/server.key" -out "$WORK/server.csr" -subj "/CN=127.0.0.1" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' \
    >"$WORK/server.ext"
openssl x509 -req -in "$WORK/server.csr" -CA "$WORK/ca.crt" -CAkey "$WORK/ca.key" -CAcreateserial \
    -out "$WORK/server.crt" -days 2 -extfile "$WORK/server.ext" 2>/dev/null

# ---------------------------------------------------------------------------------------------
# notary-server on a free loopback port
# ---------------------------------------------------------------------------------------------
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
URL="https://127.0.0.1:$PORT"
cat >"$WORK/server.json" <<JSON
{
  "server": { "http_addr": "127.0.0.1:$PORT", "tls_key_file": "$WORK/server.key", "tls_cert_file": "$WORK/server.crt" },
  "trust_service": { "type": "local" },
  "storage": { "backend": "memory" },
  "logging": { "level": "info" }
}
JSON
notary-server -config "$WORK/server.json" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
log "notary-server pid $SERVER_PID on $URL"
for _ in $(seq 1 100); do
    if curl -fsS --cacert "$WORK/ca.crt" "$URL/_notary_server/health" >/dev/null 2>&1; then break; fi
    kill -0 "$SERVER_PID" 2>/dev/null || die "notary-server exited"
    sleep 0.1
done
curl -fsS --cacert "$WORK/ca.crt" "$URL/_notary_server/health" >/dev/null || die "notary-server not healthy"

# Passphrases for the throwaway keys (never saved anywhere).
export NOTARY_ROOT_PASSPHRASE=golden-root-passphrase
export NOTARY_TARGETS_PASSPHRASE=golden-targets-passphrase
export NOTARY_SNAPSHOT_PASSPHRASE=golden-snapshot-passphrase
export NOTARY_DELEGATION_PASSPHRASE=golden-delegation-passphrase

# nt TRUSTDIR ARGS... : run the notary CLI against our server with its own trust dir
nt() {
    local dir=$1; shift
    notary -s "$URL" -d "$dir" --tlscacert "$WORK/ca.crt" "$@"
}

fetch() { # fetch URLPATH DEST : save exact bytes the server serves
    curl -fsS --cacert "$WORK/ca.crt" -o "$2" "$URL/v2/$1"
}

b64hex() { base64 -d | od -An -v -tx1 | tr -d ' \n'; }

# save_state GUN DEST : everything a reader fetches for the current version of GUN
save_state() {
    local gun=$1 dest=$2 base="$1/_trust/tuf" f role v n
    mkdir -p "$dest"
    for f in root timestamp snapshot targets; do
        fetch "$base/$f.json" "$dest/$f.json"
    done
    for role in $(jq -r '.signed.meta | keys[] | select(startswith("targets/"))' "$dest/snapshot.json"); do
        mkdir -p "$dest/$(dirname "$role")"
        fetch "$base/$role.json" "$dest/$role.json"
    done
    v=$(jq -r '.signed.version' "$dest/root.json")
    for n in $(seq 1 "$v"); do
        fetch "$base/$n.root.json" "$dest/$n.root.json"
    done
    cmp -s "$dest/$v.root.json" "$dest/root.json" || die "$gun: $v.root.json differs from root.json"
    # Consistency: the by-checksum files a reader asks for must be these exact bytes.
    local hex
    hex=$(jq -r '.signed.meta.snapshot.hashes.sha256' "$dest/timestamp.json" | b64hex)
    [ "$hex" = "$(sha256sum <"$dest/snapshot.json" | cut -d' ' -f1)" ] || die "$gun: timestamp does not describe snapshot.json"
    fetch "$base/snapshot.$hex.json" "$WORK/bychecksum"
    cmp -s "$WORK/bychecksum" "$dest/snapshot.json" || die "$gun: snapshot.$hex.json differs"
    for role in $(jq -r '.signed.meta | keys[]' "$dest/snapshot.json"); do
        hex=$(jq -r --arg r "$role" '.signed.meta[$r].hashes.sha256' "$dest/snapshot.json" | b64hex)
        [ "$hex" = "$(sha256sum <"$dest/$role.json" | cut -d' ' -f1)" ] || die "$gun: snapshot does not describe $role.json"
        fetch "$base/$role.$hex.json" "$WORK/bychecksum"
        cmp -s "$WORK/bychecksum" "$dest/$role.json" || die "$gun: $role.$hex.json differs"
    done
    log "$gun -> $(basename "$dest"): root v$v, targets v$(jq .signed.version "$dest/targets.json"), snapshot v$(jq .signed.version "$dest/snapshot.json"), timestamp v$(jq .signed.version "$dest/timestamp.json")"
}

# Per-scenario bookkeeping ---------------------------------------------------------------------
# begin_scenario sets SCEN, SDIR, GUN, TRUST, CUR_STATE, GENERATED_AT and empties the TSV files:
#   $EXP_TSV      state  tag  sha256  length  role  media-type   (what a Docker-style reader must answer)
#   $UNSIGNED_TSV state  tag                                      (tags with a manifest but no trust data)
begin_scenario() {
    SCEN=$1
    SDIR="$GOLD/$SCEN"
    GUN="127.0.0.1:5000/golden/$SCEN"
    TRUST="$WORK/trust-$SCEN"
    EXP_TSV="$WORK/$SCEN.expected.tsv"
    UNSIGNED_TSV="$WORK/$SCEN.unsigned.tsv"
    CUR_STATE=state1
    STATES=()
    NOTES=""
    mkdir -p "$SDIR" "$TRUST"
    : >"$EXP_TSV"
    : >"$UNSIGNED_TSV"
    GENERATED_AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    log "=== $SCEN ($GUN)"
}

# next_state [fresh] : expectations for the next state start as a copy of the current ones
# (or empty with "fresh")
next_state() {
    local prev=$CUR_STATE
    CUR_STATE="state$(( ${prev#state} + 1 ))"
    if [ "${1:-}" != fresh ]; then
        awk -F'\t' -v OFS='\t' -v p="$prev" -v n="$CUR_STATE" '$1==p {$1=n; print}' "$EXP_TSV" >>"$EXP_TSV"
        awk -F'\t' -v OFS='\t' -v p="$prev" -v n="$CUR_STATE" '$1==p {$1=n; print}' "$UNSIGNED_TSV" >>"$UNSIGNED_TSV"
    fi
}

# image KIND TAG [STEM] : build the manifest (manifests/STEM.json), set M_SHA / M_LEN / M_TYPE
image() {
    read -r M_SHA M_LEN M_TYPE < <(python3 "$HERE/mkmanifests.py" "$1" "$SDIR" "$SCEN" "$2" ${3:+"$3"})
}

# sign TAG ROLE : addhash the current image (M_*) to ROLE and publish, as one docker push would
sign() {
    local tag=$1 role=$2
    if [ "$role" = targets ]; then
        nt "$TRUST" addhash "$GUN" "$tag" "$M_LEN" --sha256 "$M_SHA" -p >/dev/null
    else
        nt "$TRUST" addhash "$GUN" "$tag" "$M_LEN" --sha256 "$M_SHA" --roles "$role" -p >/dev/null
    fi
}

# expect TAG ROLE : in the current state, a Docker-style lookup (targets/releases, then targets)
# must resolve TAG to the current image (M_*) found in ROLE
expect() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$CUR_STATE" "$1" "$M_SHA" "$M_LEN" "$2" "$M_TYPE" >>"$EXP_TSV"
}
unsigned() { printf '%s\t%s\n' "$CUR_STATE" "$1" >>"$UNSIGNED_TSV"; }

expected_sha() { # expected_sha TAG : the last expectation for TAG in the current state
    awk -F'\t' -v s="$CUR_STATE" -v t="$1" '$1==s && $2==t {h=$3} END {print h}' "$EXP_TSV"
}

# lookup_sha TRUSTDIR TAG : the sha256 the real `notary lookup` reports
lookup_sha() {
    local out
    out=$(nt "$1" lookup "$GUN" "$2") || return 1
    # output: "<tag> sha256:<hex> <length>"
    set -- $out
    printf '%s\n' "${2#sha256:}"
}

# check_lookup TRUSTDIR TAG : `notary lookup` must agree with the expectation
check_lookup() {
    local got want
    got=$(lookup_sha "$1" "$2") || die "$SCEN: notary lookup $2 failed"
    want=$(expected_sha "$2")
    [ -n "$want" ] && [ "$got" = "$want" ] || die "$SCEN $CUR_STATE: notary lookup $2 gave '$got', expected '$want'"
}

check_unsigned() { # check_unsigned TRUSTDIR TAG : notary must not find TAG
    if nt "$1" lookup "$GUN" "$2" >/dev/null 2>&1; then die "$SCEN: unsigned tag $2 was found"; fi
}

snap() { # snap : save the current server state as $CUR_STATE
    save_state "$GUN" "$SDIR/$CUR_STATE"
    STATES+=("$CUR_STATE")
}

init_repo() { # notary init + hand the snapshot key to the server, as docker does
    nt "$TRUST" init "$GUN" -p >/dev/null
    nt "$TRUST" key rotate "$GUN" snapshot -r >/dev/null
}

finish_scenario() {
    local verify_at
    verify_at=$(date -u -d "$GENERATED_AT + 1 hour" +%Y-%m-%dT%H:%M:%SZ)
    python3 - "$SDIR" "$GUN" "$GENERATED_AT" "$verify_at" "$EXP_TSV" "$UNSIGNED_TSV" "$NOTES" \
        "$NOTARY_PKG_VERSION" "${STATES[@]}" <<'PY'
import json, sys, os
sdir, gun, gen, ver, exp_tsv, uns_tsv, notes, nver = sys.argv[1:9]
states = sys.argv[9:]
by_state = {st: {"tags": {}, "unsigned_tags": []} for st in states}
for line in open(exp_tsv):
    st, tag, sha, length, role, mt = line.rstrip("\n").split("\t")
    by_state[st]["tags"][tag] = {"sha256": sha, "length": int(length), "role": role, "media_type": mt}
for line in open(uns_tsv):
    st, tag = line.rstrip("\n").split("\t")
    if tag not in by_state[st]["tags"] and tag not in by_state[st]["unsigned_tags"]:
        by_state[st]["unsigned_tags"].append(tag)
manifests = {}
for line in open(os.path.join(sdir, ".manifests.tsv")):
    f, sha, length, mt, tag = line.rstrip("\n").split("\t")
    manifests[f] = {"digest": "sha256:" + sha, "length": int(length), "media_type": mt,
                    "tag": None if tag == "-" else tag}
os.remove(os.path.join(sdir, ".manifests.tsv"))
last = by_state[states[-1]]
doc = {"gun": gun, "generated_at": gen, "verify_at": ver,
       "tags": last["tags"], "unsigned_tags": last["unsigned_tags"],
       "states": states, "notes": notes,
       "by_state": by_state if len(states) > 1 else None,
       "manifests": manifests,
       "notary_version": nver}
if doc["by_state"] is None:
    del doc["by_state"]
with open(os.path.join(sdir, "expected.json"), "w") as f:
    json.dump(doc, f, indent=2)
    f.write("\n")
PY
}

mkdir -p "$GOLD"

# =============================================================================================
# 1. basic
# =============================================================================================
begin_scenario basic
init_repo
for tag in v1 v2 latest; do
    image schema2 "$tag"; sign "$tag" targets; expect "$tag" targets
done
image schema2 unsigned; unsigned unsigned    # a registry may serve it, but it has no trust data
snap
for tag in v1 v2 latest; do check_lookup "$TRUST" "$tag"; done
check_unsigned "$TRUST" unsigned
NOTES="notary init -p, then 'notary key rotate GUN snapshot -r' (snapshot key moves to the server: ed25519, so root.json is version 2 and 1.root.json still lists the client's ecdsa snapshot key), then one 'notary addhash ... -p' per tag (v1, v2, latest) into the base targets role (client-held ecdsa P-256 targets key). Tag 'unsigned' has a manifest in manifests/ but no trust data: a verifier must refuse it (docker: 'No valid trust data for unsigned')."
finish_scenario

# =============================================================================================
# 2. releases
# =============================================================================================
begin_scenario releases
init_repo
openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/releases.key" 2>/dev/null
openssl req -new -x509 -key "$WORK/releases.key" -out "$WORK/releases.crt" -days 3650 -sha256 \
    -subj "/CN=golden-signer" 2>/dev/null
nt "$TRUST" key import "$WORK/releases.key" --role golden-signer >/dev/null
nt "$TRUST" delegation add "$GUN" targets/releases "$WORK/releases.crt" --all-paths -p >/dev/null
for tag in v1 latest; do
    image schema2 "$tag"; sign "$tag" targets/releases; expect "$tag" targets/releases
done
image schema2 base-only; sign base-only targets; expect base-only targets
# 'shadowed' is signed in targets with one manifest and in targets/releases with another.
image schema2 shadowed shadowed.in-targets; sign shadowed targets; SHADOWED_TARGETS=$M_SHA
image schema2 shadowed; sign shadowed targets/releases; expect shadowed targets/releases
image schema2 unsigned; unsigned unsigned
snap
for tag in v1 latest base-only; do check_lookup "$TRUST" "$tag"; done
check_unsigned "$TRUST" unsigned
SHADOWED_NOTARY=$(lookup_sha "$TRUST" shadowed)
if [ "$SHADOWED_NOTARY" = "$SHADOWED_TARGETS" ]; then
    SHADOWED_NOTE="plain 'notary lookup' (no role order given) walks from targets and returned the targets one (manifests/shadowed.in-targets.json)"
elif [ "$SHADOWED_NOTARY" = "$(expected_sha shadowed)" ]; then
    SHADOWED_NOTE="plain 'notary lookup' also returned the targets/releases one"
else
    die "releases: notary lookup shadowed gave an unknown hash $SHADOWED_NOTARY"
fi
NOTES="Delegation set up as docker does for a signer: a P-256 key and a self-signed certificate made with openssl, 'notary key import KEY --role golden-signer', 'notary delegation add GUN targets/releases CERT --all-paths -p' (so the delegation key is ecdsa-x509 and paths is [\"\"]). Tags v1 and latest are published with '--roles targets/releases' (signed by the delegation key); base-only only in targets. Tag 'shadowed' is in BOTH roles with different manifests: targets -> manifests/shadowed.in-targets.json, targets/releases -> manifests/shadowed.json. Docker searches targets/releases first, so the expected answer is the targets/releases one; $SHADOWED_NOTE. 'unsigned' has a manifest but no trust data."
finish_scenario

# =============================================================================================
# 3. multiarch
# =============================================================================================
begin_scenario multiarch
init_repo
image index multi; sign multi targets; expect multi targets
image schema2 single; sign single targets; expect single targets
image schema2 unsigned; unsigned unsigned
snap
for tag in multi single; do check_lookup "$TRUST" "$tag"; done
check_unsigned "$TRUST" unsigned
NOTES="Tag 'multi' is an OCI image index (manifests/multi.json, application/vnd.oci.image.index.v1+json) over two OCI image manifests (manifests/multi.linux-amd64.json, manifests/multi.linux-arm64.json). The signed sha256/length are those of the index bytes only; the platform manifests are reached by digest from the index and are not targets themselves. Tag 'single' is a plain Docker schema2 manifest. 'unsigned' has a manifest but no trust data."
finish_scenario

# =============================================================================================
# 4. rotated
# =============================================================================================
begin_scenario rotated
READER="$WORK/reader-rotated"   # a second client that only reads: it pins state1 on first use
init_repo
image schema2 v1; sign v1 targets; expect v1 targets
image schema2 latest latest.state1; sign latest targets; expect latest targets
image schema2 unsigned; unsigned unsigned
snap
check_lookup "$READER" v1
check_lookup "$READER" latest
ROOT1=$(jq -r '.signed.roles.root.keyids[0]' "$SDIR/state1/root.json")
TARGETS1=$(jq -r '.signed.roles.targets.keyids[0]' "$SDIR/state1/root.json")
next_state
nt "$TRUST" key rotate "$GUN" targets >/dev/null
# root rotation asks "Are you sure you want to proceed? (yes/no)" on stdin (and exits 0 on "no")
echo yes | nt "$TRUST" key rotate "$GUN" root >/dev/null
image schema2 v2; sign v2 targets; expect v2 targets
image schema2 latest; sign latest targets; expect latest targets    # latest moves to a new manifest
snap
ROOT2=$(jq -r '.signed.roles.root.keyids[0]' "$SDIR/state2/root.json")
TARGETS2=$(jq -r '.signed.roles.targets.keyids[0]' "$SDIR/state2/root.json")
[ "$ROOT1" != "$ROOT2" ] || die "rotated: root key did not change"
[ "$TARGETS1" != "$TARGETS2" ] || die "rotated: targets key did not change"
# The reader that pinned state1 must follow the rotation.
for tag in v1 v2 latest; do check_lookup "$READER" "$tag"; done
check_unsigned "$READER" unsigned
RV1=$(jq .signed.version "$SDIR/state1/root.json"); RV2=$(jq .signed.version "$SDIR/state2/root.json")
NOTES="state1: init -p, snapshot key handed to the server (root v$RV1), tags v1 and latest (manifests/latest.state1.json) in targets. Then 'notary key rotate GUN targets' (new client-held ecdsa targets key) and 'notary key rotate GUN root' (new ecdsa-x509 root certificate; the new root is signed by BOTH the old and the new root key and still lists the old root certificate in its keys), then v2 added and latest re-pointed to manifests/latest.json. state2: root v$RV2, with every N.root.json from 1 to $RV2 (each rotation published one root version). Root key $ROOT1 -> $ROOT2, targets key $TARGETS1 -> $TARGETS2. A verifier that pinned state1 must accept state2 through root rotation: the real notary client did (a reader trust dir that looked up tags at state1 then looked up v1, v2, latest at state2 successfully). by_state holds the expected answers per state; tags/unsigned_tags are those of state2."
finish_scenario

# =============================================================================================
# 5. recreated
# =============================================================================================
begin_scenario recreated
READER="$WORK/reader-recreated"
init_repo
image schema2 v1 v1.state1; sign v1 targets; expect v1 targets
image schema2 latest; sign latest targets; expect latest targets
image schema2 unsigned; unsigned unsigned
snap
check_lookup "$READER" v1
ROOT1=$(jq -r '.signed.roles.root.keyids[0]' "$SDIR/state1/root.json")
nt "$TRUST" delete "$GUN" --remote >/dev/null
code=$(curl -s --cacert "$WORK/ca.crt" -o /dev/null -w '%{http_code}' "$URL/v2/$GUN/_trust/tuf/root.json")
[ "$code" = 404 ] || die "recreated: root.json still served after delete ($code)"
next_state fresh
# A fresh trust dir = a brand-new root key (init would otherwise reuse the old private root key).
TRUST="$WORK/trust-recreated-2"
mkdir -p "$TRUST"
init_repo
image schema2 v1; sign v1 targets; expect v1 targets
unsigned latest      # manifests/latest.json still exists in the registry but is no longer signed
unsigned unsigned
snap
ROOT2=$(jq -r '.signed.roles.root.keyids[0]' "$SDIR/state2/root.json")
[ "$ROOT1" != "$ROOT2" ] || die "recreated: root key did not change"
check_lookup "$TRUST" v1
check_unsigned "$TRUST" latest
# The reader that pinned state1 must refuse.
if REFUSAL=$(nt "$READER" lookup "$GUN" v1 2>&1); then
    die "recreated: notary accepted the recreated repository: $REFUSAL"
fi
REFUSAL=$(printf '%s' "$REFUSAL" | tr '\n' ' ' | sed 's/  */ /g; s/^ //; s/ $//')
log "recreated: reader pinned at state1 refused: $REFUSAL"
NOTES="state1: a normal repo (root key $ROOT1; tags v1 -> manifests/v1.state1.json, latest). Then 'notary delete GUN --remote' (root.json answers 404 afterwards) and 'notary init' again from a fresh trust dir, i.e. a NEW root key ($ROOT2) whose root is NOT signed by the old one; versions start again from 1 and the server hands out new timestamp/snapshot keys. v1 is re-signed with a different manifest (manifests/v1.json); latest is not re-signed. state2 = the recreated data. A verifier pinned at state1 MUST REFUSE state2 (the new root does not chain to the pinned root). A verifier with nothing pinned would accept state2 on first use: tags/unsigned_tags are what such a fresh verifier answers at state2. The real notary client that had cached state1 refused with: '$REFUSAL'."
finish_scenario

# =============================================================================================
# README, then replace tests/data/golden wholesale
# =============================================================================================
sed -e "s|@PKG@|$NOTARY_PKG_VERSION|g" -e "s|@VOUT@|$NOTARY_VERSION_OUT|g" \
    -e "s|@DATE@|$(date -u +%Y-%m-%dT%H:%M:%SZ)|g" \
    "$HERE/README.golden.md.in" >"$GOLD/README.md"

# the metadata must stay byte-exact: no end-of-line conversion by git
printf '# generated by scripts/notary-golden/generate.sh: keep every byte as served\n* -text\n' >"$GOLD/.gitattributes"

rm -rf "$OUT"
mkdir -p "$(dirname "$OUT")"
cp -a "$GOLD" "$OUT"
log "wrote $OUT"
