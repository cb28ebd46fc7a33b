#!/usr/bin/env bash
# Installs what testing tenure needs, when it is missing (building needs only
# Rust: no protoc, the etcd client's generated code is committed in
# vendor/etcd-client):
#   etcd-server, etcd-client  real etcd servers and etcdctl for the etcd tests
#   openssl                   certificates for the TLS tests
#   zookeeper                 real ZooKeeper servers (3.8) for the ZooKeeper tests
#   libcurator-*-java         Curator's LeaderLatch, the ZooKeeper interoperability peer
#   default-jdk-headless      javac, to compile the Curator test program
#   python3-venv              a virtualenv to pip-install Flink 2.3's jars from PyPI
#                             (apache-flink-libraries, about 330 MB, once per target dir)
#   curl                      HTTPS requests to the test kube-apiserver
#   golang-go                 Go 1.19, to build kube-apiserver 1.20.2 from Debian's
#                             kubernetes source package (about 3 min, once per target dir)
#   dpkg-dev                  dpkg-source, to unpack that source package
#   golang-github-modern-go-reflect2-dev
#                             reflect2 1.0.2, replacing the vendored 1.0.1 that breaks
#                             with Go >= 1.18
#   golang-etcd-server-dev    etcd 3.4's Go client sources, for tenure-bench's Go
#                             concurrency.Election peer (built in GOPATH mode)
set -euo pipefail

need=()
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
[ -f /usr/share/java/zookeeper.jar ] || need+=(zookeeper)
[ -f /usr/share/java/curator-recipes.jar ] ||
    need+=(libcurator-recipes-java libcurator-framework-java libcurator-client-java)
command -v javac >/dev/null 2>&1 || need+=(default-jdk-headless)
# `python3 -m venv --help` works without it: Debian ships ensurepip, which
# creating a virtualenv needs, in python3-venv (which pulls in python3).
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v go >/dev/null 2>&1 || need+=(golang-go)
command -v dpkg-source >/dev/null 2>&1 || need+=(dpkg-dev)
[ -f /usr/share/gocode/src/github.com/modern-go/reflect2/unsafe_link.go ] ||
    need+=(golang-github-modern-go-reflect2-dev)
[ -d /usr/share/gocode/src/go.etcd.io/etcd/clientv3/concurrency ] ||
    need+=(golang-etcd-server-dev)

if [ ${#need[@]} -gt 0 ]; then
    echo "scripts/deps.sh: installing ${need[*]}" >&2
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo="sudo"
    fi
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${need[@]}"
fi
