#!/usr/bin/env bash
# The long fault campaign of RELIABILITY.md: memory, local, a 3-member etcd
# cluster and a 3-node ZooKeeper ensemble, one after the other (about an hour
# on 2 cores), each summary in reliability/<backend>.json, then the table.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release --locked -p tenure-chaos
chaos=target/release/tenure-chaos
seed="${SEED:-20261207}"
mkdir -p reliability
status=0
campaign() {
    local backend=$1
    shift
    "$chaos" run --backend "$backend" --seed "$seed" --duration 40m --json "$@" \
        > "reliability/$backend.json" || status=1
}
campaign memory --clients 6 --faults 1000
campaign local --clients 8 --faults 4000
campaign etcd --clients 6 --faults 3000
campaign zookeeper --clients 6 --faults 3000
"$chaos" table reliability/memory.json reliability/local.json reliability/etcd.json \
    reliability/zookeeper.json
exit "$status"
