#!/bin/sh
# The whole test suite on a fresh Debian machine of this kind: installs the real upstream pieces
# and clients the interop tests use (when missing), then runs every test. Run as root.
set -eu
cd "$(dirname "$0")/.."
sh scripts/install-test-deps.sh
cargo test --all-targets --locked "$@"
