#!/usr/bin/env bash
# The long fault campaign of RELIABILITY.md: local, a 3-member etcd cluster and
# a 3-node ZooKeeper ensemble, one after the other (about 50 minutes on 2
# cores), each summary in reliability/<backend>.json, then the table.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release --locked -p tenure-chaos
chaos=target/release/tenure-chaos
seed="${SEED:-20261207}"
mkdir -p reliability
status=0
"$chaos" run --backend local --seed "$seed" --clients 8 --faults 4000 --duration 30m --json \
    > reliability/local.json || status=1
"$chaos" run --backend etcd --seed "$seed" --clients 6 --faults 3200 --duration 30m --json \
    > reliability/etcd.json || status=1
"$chaos" run --backend zookeeper --seed "$seed" --clients 6 --faults 3200 --duration 30m --json \
    > reliability/zookeeper.json || status=1
"$chaos" table reliability/local.json reliability/etcd.json reliability/zookeeper.json
exit "$status"
