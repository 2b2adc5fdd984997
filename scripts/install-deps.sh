#!/usr/bin/env bash
# Installs the real components the tests use, from Debian's packages, when they are missing:
# PostgreSQL 15 (server), etcd, OpenSSH server (SFTP), Chromium (dashboard tests), iproute2 and
# nftables (the multi-host lab: network namespaces and partitions, src/it/lab/), promtool
# (Prometheus rules and metrics checks), Alertmanager (notification tests) and HAProxy (the
# proxy's request-smuggling tests run the same requests against it).
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "$1" ]; }
have /usr/lib/postgresql/15/bin/postgres || need+=(postgresql-15)
have etcd || need+=(etcd-server)
have etcdctl || need+=(etcd-client)
have /usr/sbin/sshd || need+=(openssh-server)
have openssl || need+=(openssl)   # vault TLS tests make a self-signed certificate
have /usr/bin/chromium || need+=(chromium)
have ip || have /usr/sbin/ip || need+=(iproute2)
have nft || have /usr/sbin/nft || need+=(nftables)
have promtool || need+=(prometheus)
have prometheus-alertmanager || need+=(prometheus-alertmanager)
have haproxy || need+=(haproxy)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing packages: ${need[*]}; run as root, or: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
mkdir -p /run/sshd 2>/dev/null || true
echo "test dependencies present: postgres, etcd, sshd, chromium, iproute2, nftables, promtool, alertmanager, haproxy"
