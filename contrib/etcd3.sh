#!/usr/bin/env bash
# etcd3.sh starts a three-member etcd cluster on 127.0.0.1, for trying a
# Volt dispatcher failover group on one machine (README: "Several
# dispatcher nodes"). Clients: 127.0.0.1:2379, 127.0.0.1:2381, 127.0.0.1:2383.
# Data goes under DIR (default ./.etcd). Ctrl-C stops all three.
#
#   contrib/etcd3.sh [DIR]
#
# It needs etcd 3.4 or later on PATH (Debian: apt-get install etcd-server).
set -euo pipefail
dir=${1:-.etcd}
command -v etcd >/dev/null || { echo "etcd3.sh: etcd is not on PATH (Debian: apt-get install etcd-server)" >&2; exit 1; }
mkdir -p "$dir"
cluster="e1=http://127.0.0.1:2380,e2=http://127.0.0.1:2382,e3=http://127.0.0.1:2384"
pids=()
stop() {
  trap - INT TERM EXIT
  kill "${pids[@]}" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "${pids[@]}" 2>/dev/null || break; sleep 0.1; done
  kill -9 "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT
for i in 1 2 3; do
  client=$((2377 + 2 * i)) peer=$((2378 + 2 * i))
  etcd --name "e$i" --data-dir "$dir/e$i" \
    --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token volt-etcd3 \
    --log-level warn >"$dir/e$i.log" 2>&1 &
  pids+=($!)
done
echo "etcd: 127.0.0.1:2379,127.0.0.1:2381,127.0.0.1:2383 (logs in $dir/e*.log; Ctrl-C stops it)"
wait
