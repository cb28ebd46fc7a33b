#!/usr/bin/env bash
# Runs every test of the workspace, the conformance suite on every backend
# included. Installs what the tests need when it is missing (see scripts/deps.sh),
# so it works the same on a fresh machine and in CI. The tests start their own
# servers (etcd, ZooKeeper) on loopback and stop them.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "scripts/test.sh: cargo is missing; install Rust (https://rustup.rs) first" >&2
    exit 1
fi
scripts/deps.sh

# Building needs no protoc: the etcd client's generated code is committed
# (vendor/etcd-client). A build script that still runs protoc fails here.
export PROTOC=/nonexistent/protoc-is-not-needed

# The `tenure` binary as `cargo install` builds it (default features) knows
# every backend's URL scheme: unreachable servers give "unavailable" (69),
# never "unknown scheme" (64).
cargo build -p tenure-cli --locked
tenure="${CARGO_TARGET_DIR:-target}/debug/tenure"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
for url in memory: "local://$dir" etcd://127.0.0.1:1/x "zk://127.0.0.1:1/x?connect_timeout=1s"; do
    code=0
    out="$("$tenure" status --backend "$url" probe 2>&1)" || code=$?
    case "$url:$code" in
        memory:*:0 | local:*:0 | etcd:*:69 | zk:*:69) ;;
        *)
            echo "scripts/test.sh: the default tenure binary with $url exits $code: $out" >&2
            exit 1
            ;;
    esac
done

cargo test --workspace --all-features --locked
