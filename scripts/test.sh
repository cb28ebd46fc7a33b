#!/usr/bin/env bash
# Runs every test of the workspace, the conformance suite included.
# Installs what the tests need when it is missing (backends that need servers add
# their packages here), so it works the same on a fresh machine and in CI.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "scripts/test.sh: cargo is missing; install Rust (https://rustup.rs) first" >&2
    exit 1
fi

cargo test --workspace --all-features --locked
