#!/bin/bash
# A/B: the same bench commands against the binary of 8440e1b and HEAD, alternated.
set -e
run() { # name binary port
  local n=$1 b=$2 port=$3 d=/tmp/ab/data-$1
  rm -rf $d
  $b server --dev-oidc --data $d --addr 127.0.0.1:$port --log-level warn 2>/tmp/ab/$n-server.log &
  local pid=$!
  for i in $(seq 50); do curl -sf http://127.0.0.1:$port/healthz >/dev/null && break; sleep 0.2; done
  $b bench log --server http://127.0.0.1:$port --data $d --clients 16,256 --duration 15s --warmup 3s --entries 120000 -o json > /tmp/ab/$n-log.json
  $b bench ca --server http://127.0.0.1:$port --data $d --clients 128 --duration 15s --warmup 3s --tokens 6000 -o json > /tmp/ab/$n-ca.json
  $b bench tsa --server http://127.0.0.1:$port --clients 16,128 --duration 10s --warmup 2s -o json > /tmp/ab/$n-tsa.json
  kill $pid; wait $pid || true
}
# Build the two binaries first: go build -o /tmp/ab/signet-base ./cmd/signet at 8440e1b, and -o /tmp/ab/signet-head at HEAD.
run base1 /tmp/ab/signet-base 18380
run head1 /tmp/ab/signet-head 18381
run base2 /tmp/ab/signet-base 18382
run head2 /tmp/ab/signet-head 18383
