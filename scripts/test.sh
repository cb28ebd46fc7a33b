#!/usr/bin/env bash
# Runs every test of the workspace, the conformance suite on every backend
# included. Installs what the tests need when it is missing (see scripts/deps.sh),
# so it works the same on a fresh machine and in CI. The tests start their own
# servers (etcd) on loopback and stop them.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "scripts/test.sh: cargo is missing; install Rust (https://rustup.rs) first" >&2
    exit 1
fi
scripts/deps.sh

cargo test --workspace --all-features --locked
